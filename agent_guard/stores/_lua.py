"""The server-side Lua scripts of :class:`~agent_guard.stores.RedisGrantStore`.

One run is one Redis hash ``<prefix>{<run_id>}:run`` (the ``{run_id}`` hash tag keeps every key of a
run in one Redis Cluster slot). Its fields:

``status``    ``active`` | ``revoked`` | ``completed``
``exp``       the grant's expiry (seconds since the epoch, as the store's clock counts them)
``ordered``   ``1`` for an ordered plan
``cursor``    the current step of an ordered plan (``-1`` before the first call)
``remaining`` the calls still usable (for an ordered plan, moving on to the next step drops the
              leftover budget of the step it leaves, which can no longer be used)
``b<i>``      the budget (``max_calls``) of step ``i``; ``u<i>`` the calls charged to it
``steps``     the number of steps
``parent``    (a delegated run only) the parent run's key; ``p<i>`` the parent step of step ``i``

A limit bucket is one more hash, ``<prefix>{<tag>}:limit:<key>`` (the tag is the task id for a
per-task limit, so it shares the run's slot; else the bucket's own key): ``w`` the window it
counts (``floor(now / window_s)``, 0 for the whole task) and ``t`` its running total. It expires
at the end of the window after its latest one (a whole-task bucket with the task), plus the skew.
Totals are IEEE doubles, added in the script exactly as the in-memory store adds them in Python.

The key itself expires with the grant (TTL = ``exp`` + a small skew), so a crashed issuer leaves
nothing alive. Redis runs a script atomically, so the consume check-and-charge cannot race.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["CONSUME", "CONSUME_SHA", "REMAINING", "REMAINING_SHA", "REVOKE", "REVOKE_SHA", "STATUS", "STATUS_SHA"]

# A delegated (child) run has a field ``parent`` (the parent's key, in the same hash slot: a child's
# run id is ``<txn>:<jti>`` and the hash tag is the ``txn``) and ``p<i>``: the parent step that
# child step ``i`` spends from. Every script below follows that chain (at most MAX_DEPTH links).
_CHAIN: Final = """
local function chain(key)
  local keys = {key}
  local k = key
  for _ = 1, 8 do
    local p = redis.call('HGET', k, 'parent')
    if not p then break end
    keys[#keys + 1] = p
    k = p
  end
  return keys
end
local function state(keys, now)
  -- 'revoked' when any run of the chain is revoked, gone or expired; else 'completed' when any has
  -- spent its whole plan (a call under it is over budget, not revoked); else 'active'
  local done = false
  for _, k in ipairs(keys) do
    local run = redis.call('HMGET', k, 'status', 'exp')
    if not run[1] or run[1] == 'revoked' or tonumber(run[2]) <= now then return 'revoked' end
    if run[1] == 'completed' then done = true end
  end
  if done then return 'completed' end
  return 'active'
end
local function live(keys, now)
  return state(keys, now) == 'active'
end
"""

# KEYS[1] = run key; KEYS[2..] = the limit buckets of the charges (``<prefix>{tag}:limit:<key>``).
# ARGV[1] = now; ARGV[2] = n, the number of candidates; ARGV[3..2+n] = candidate step indices in plan
# order; ARGV[3+n] = skew_s; then four per charge: amount, max, window_s (0: the whole task), until.
# Returns {status, step} with step -1 when no step was charged; for 'limit_exceeded' the second item is
# the 0-based index of the charge that did not fit. Mirrors InMemoryGrantStore.consume: the charge goes to
# the run's step, to the mapped step of every ancestor and to every limit bucket, atomically, or nothing.
CONSUME: Final = _CHAIN + """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
if redis.call('EXISTS', key) == 0 then return {'revoked', -1} end
local keys = chain(key)
local s = state(keys, now)
if s == 'revoked' then return {'revoked', -1} end
if s == 'completed' then return {'exhausted', -1} end
local run = redis.call('HMGET', key, 'ordered', 'cursor')
local ordered = run[1] == '1'
local cursor = tonumber(run[2])
local saw_budget = false
local charges = #KEYS - 1
local skew = tonumber(ARGV[3 + n])
for i = 3, 2 + n do
  local step = tonumber(ARGV[i])
  local bu = redis.call('HMGET', key, 'b' .. step, 'u' .. step)
  if not bu[1] then return redis.error_reply('ERR agent_guard: step ' .. step .. ' is not in this run') end
  local ok = tonumber(bu[2]) < tonumber(bu[1])
  local steps = {step}
  if ok then
    for d = 2, #keys do
      local s = tonumber(redis.call('HGET', keys[d - 1], 'p' .. steps[d - 1]))
      local pb = redis.call('HMGET', keys[d], 'b' .. s, 'u' .. s)
      steps[d] = s
      if tonumber(pb[2]) >= tonumber(pb[1]) then ok = false break end
    end
  end
  if ok then
    saw_budget = true
    if (not ordered) or step == cursor or step == cursor + 1 then
      -- the step has budget: every limit must have room too, or nothing is charged
      local windows, totals, ttls = {}, {}, {}
      for j = 1, charges do
        local a = 4 + n + (j - 1) * 4
        local amount, cap, window = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
        local current = 0
        if window > 0 then current = math.floor(now / window) end
        local total = 0
        local bucket = redis.call('HMGET', KEYS[j + 1], 'w', 't')
        if bucket[1] and current <= tonumber(bucket[1]) then
          -- this window, or a clock that went back: keep charging the latest window seen
          current = tonumber(bucket[1])
          total = tonumber(bucket[2])
        end
        total = total + amount
        if total > cap then return {'limit_exceeded', j - 1} end
        windows[j], totals[j] = current, total
        if window > 0 then
          ttls[j] = math.ceil((current + 2) * window - now) + skew
        else
          ttls[j] = math.ceil(tonumber(ARGV[a + 3]) - now) + skew
        end
      end
      for j = 1, charges do
        redis.call('HSET', KEYS[j + 1], 'w', windows[j], 't', totals[j])
        if ttls[j] < 1 then ttls[j] = 1 end
        if redis.call('TTL', KEYS[j + 1]) < ttls[j] then redis.call('EXPIRE', KEYS[j + 1], ttls[j]) end
      end
      if ordered and step ~= cursor then
        if cursor >= 0 then
          -- moving on closes the previous step: its leftover budget is dead
          local prev = redis.call('HMGET', key, 'b' .. cursor, 'u' .. cursor)
          redis.call('HINCRBY', key, 'remaining', tonumber(prev[2]) - tonumber(prev[1]))
        end
        redis.call('HSET', key, 'cursor', step)
      end
      local status = 'ok'
      for d = 1, #keys do
        redis.call('HINCRBY', keys[d], 'u' .. steps[d], 1)
        local remaining = redis.call('HINCRBY', keys[d], 'remaining', -1)
        if remaining <= 0 then
          redis.call('HSET', keys[d], 'status', 'completed')
          if d == 1 then status = 'completed' end
        end
      end
      return {status, step}
    end
  end
end
if saw_budget then return {'out_of_order', -1} end
return {'exhausted', -1}
"""

# KEYS[1] = run key. Marks an active or completed run revoked; returns 1 when it was active until now.
REVOKE: Final = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'active' or status == 'completed' then
  redis.call('HSET', KEYS[1], 'status', 'revoked')
end
if status == 'active' then return 1 end
return 0
"""

# KEYS[1] = run key; ARGV[1] = now. Returns 1 while the run and its ancestors are active and unexpired.
STATUS: Final = _CHAIN + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if live(chain(KEYS[1]), tonumber(ARGV[1])) then return 1 end
return 0
"""

# KEYS[1] = run key; ARGV[1] = now. Returns the calls left per step (bounded by every ancestor's
# mapped step), or an empty list when the run is not live.
REMAINING: Final = _CHAIN + """
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return {} end
local keys = chain(key)
if not live(keys, tonumber(ARGV[1])) then return {} end
local n = tonumber(redis.call('HGET', key, 'steps'))
local out = {}
for i = 0, n - 1 do
  local bu = redis.call('HMGET', key, 'b' .. i, 'u' .. i)
  local left = tonumber(bu[1]) - tonumber(bu[2])
  local s = i
  for d = 2, #keys do
    s = tonumber(redis.call('HGET', keys[d - 1], 'p' .. s))
    local pb = redis.call('HMGET', keys[d], 'b' .. s, 'u' .. s)
    left = math.min(left, tonumber(pb[1]) - tonumber(pb[2]))
  end
  out[#out + 1] = left
end
return out
"""


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


CONSUME_SHA: Final = _sha(CONSUME)
REVOKE_SHA: Final = _sha(REVOKE)
STATUS_SHA: Final = _sha(STATUS)
REMAINING_SHA: Final = _sha(REMAINING)
