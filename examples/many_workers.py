"""Many workers: one process plans and mints, worker processes run the tools with the grant.

    python examples/many_workers.py --redis-url redis://127.0.0.1:6379/0 --workers 3

The planning process holds the signing key. Each job sent to the worker pool carries the grant (a
short-lived JWT); a worker holds only the public JWKS and the shared Redis store, attaches the grant
and runs the tool through ``guard.wrap``. Budgets and revocation are enforced across the whole pool.
Needs ``pip install 'agent-guard[redis]'`` and a Redis server (``AGENT_GUARD_REDIS_URL`` works too).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from typing import Any

from agent_guard import (
    AgentIdentity,
    Capability,
    GrantError,
    Guard,
    KeySet,
    Plan,
    Policy,
    Step,
    ToolCallDenied,
)
from agent_guard.stores import RedisGrantStore

POLICY = Policy(
    agent_id="support-bot",
    capabilities=[
        Capability("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}),
        Capability("send_email", args={"to": {"glob": "*@example.com"}, "body": {"max_len": 2000}}),
    ],
)

# -- worker side: public keys + the shared store, no signing key ------------------------------
_guard: Guard | None = None


def crm_lookup(customer_id: str) -> dict[str, str]:
    """Look a customer up (a stand-in for a real CRM call)."""
    return {"id": customer_id, "name": f"customer {customer_id}"}


def init_worker(redis_url: str, jwks: dict[str, Any]) -> None:
    """Runs once per worker process: a verify-only guard on the shared Redis store."""
    global _guard
    _guard = Guard(jwks=jwks, store=RedisGrantStore(redis_url))


def run_job(grant: str, customer_id: str) -> tuple[int, str, str]:
    """One job: attach the grant that came with it and run the guarded tool."""
    assert _guard is not None
    lookup = _guard.wrap(crm_lookup)
    try:
        with _guard.attach(grant):  # refused at once when the grant's run is no longer active
            result = lookup(customer_id=customer_id)
            return os.getpid(), customer_id, f"allowed -> {result['name']}"
    except (ToolCallDenied, GrantError) as denied:
        return os.getpid(), customer_id, f"denied ({denied.reason})"


# -- planning side --------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Plan, mint, fan the lookups out to the pool, finish the plan, show that the grant is dead."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--redis-url", default=os.environ.get("AGENT_GUARD_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args(argv)

    keys = KeySet.generate()                                   # the signing key never leaves this process
    store = RedisGrantStore(args.redis_url)                    # shared by the planner and every worker
    planner = Guard(POLICY, keys=keys, store=store)
    me = AgentIdentity(agent_id="support-bot", user_id="u-1")
    plan = Plan(
        goal="summarise three customers and email the summary",
        steps=[
            Step("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}, max_calls=3),
            Step("send_email", args={"to": "team@example.com", "body": {"any": True}}),
        ],
    )
    outcomes: list[str] = []
    ctx = multiprocessing.get_context("spawn")
    pool_args = {"initializer": init_worker, "initargs": (args.redis_url, planner.jwks())}
    with ctx.Pool(args.workers, **pool_args) as pool, planner.task(plan, identity=me) as task:
        print(f"task {task.id}: grant for {list(task.tools)}, expires in {int(task.expires_at - planner.clock())} s")
        jobs = [pool.apply_async(run_job, (task.grant, f"C-{n}")) for n in (1, 2, 3, 4)]
        for pid, customer, outcome in (job.get(timeout=60) for job in jobs):
            print(f"  worker {pid}: crm_lookup {customer}: {outcome}")
            outcomes.append(outcome.split(" ")[0] if outcome.startswith("allowed") else outcome)
        send = planner.wrap(lambda to, body: f"sent to {to}", name="send_email")
        print(f"  planner: send_email: {send(to='team@example.com', body='3 customers looked up')}")
        print(f"  grant revoked: {task.revocation_reason}")    # the plan is complete
        pid, customer, late = pool.apply(run_job, (task.grant, "C-5"))
        print(f"  worker {pid}: crm_lookup {customer} after completion: {late}")
        outcomes.append(late)
    store.close()
    expected = ["allowed"] * 3 + ["denied (budget_exhausted)", "denied (revoked)"]
    ok = sorted(outcomes) == sorted(expected)
    print("OK: 3 lookups allowed across the pool, the 4th over budget, all denied after completion" if ok
          else f"UNEXPECTED: {outcomes}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
