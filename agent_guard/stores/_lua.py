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

The key itself expires with the grant (TTL = ``exp`` + a small skew), so a crashed issuer leaves
nothing alive. Redis runs a script atomically, so the consume check-and-charge cannot race.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["CONSUME", "CONSUME_SHA", "REVOKE", "REVOKE_SHA", "STATUS", "STATUS_SHA"]

# KEYS[1] = run key; ARGV[1] = now; ARGV[2..] = candidate step indices in plan order.
# Returns {status, step} with step -1 when no step was charged. Mirrors InMemoryGrantStore.consume.
CONSUME: Final = """
local key = KEYS[1]
local run = redis.call('HMGET', key, 'status', 'exp', 'ordered', 'cursor', 'remaining')
if not run[1] then return {'revoked', -1} end
if run[1] ~= 'active' or tonumber(run[2]) <= tonumber(ARGV[1]) then return {'revoked', -1} end
local ordered = run[3] == '1'
local cursor = tonumber(run[4])
local saw_budget = false
for i = 2, #ARGV do
  local step = tonumber(ARGV[i])
  local bu = redis.call('HMGET', key, 'b' .. step, 'u' .. step)
  if not bu[1] then return redis.error_reply('ERR agent_guard: step ' .. step .. ' is not in this run') end
  local budget = tonumber(bu[1])
  local used = tonumber(bu[2])
  if used < budget then
    saw_budget = true
    if (not ordered) or step == cursor or step == cursor + 1 then
      if ordered and step ~= cursor then
        if cursor >= 0 then
          -- moving on closes the previous step: its leftover budget is dead
          local prev = redis.call('HMGET', key, 'b' .. cursor, 'u' .. cursor)
          redis.call('HINCRBY', key, 'remaining', tonumber(prev[2]) - tonumber(prev[1]))
        end
        redis.call('HSET', key, 'cursor', step)
      end
      redis.call('HINCRBY', key, 'u' .. step, 1)
      local remaining = redis.call('HINCRBY', key, 'remaining', -1)
      if remaining == 0 then
        redis.call('HSET', key, 'status', 'completed')
        return {'completed', step}
      end
      return {'ok', step}
    end
  end
end
if saw_budget then return {'out_of_order', -1} end
return {'exhausted', -1}
"""

# KEYS[1] = run key. Returns 1 when the run was active until now, else 0.
REVOKE: Final = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'active' then
  redis.call('HSET', KEYS[1], 'status', 'revoked')
  return 1
end
return 0
"""

# KEYS[1] = run key; ARGV[1] = now. Returns 1 while the run is active and unexpired.
STATUS: Final = """
local run = redis.call('HMGET', KEYS[1], 'status', 'exp')
if run[1] == 'active' and tonumber(run[2]) > tonumber(ARGV[1]) then return 1 end
return 0
"""


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


CONSUME_SHA: Final = _sha(CONSUME)
REVOKE_SHA: Final = _sha(REVOKE)
STATUS_SHA: Final = _sha(STATUS)
