"""Core benchmarks: decision, guarded call with span, mint, decision cost vs plan size, then the task lifecycle.

Run: ``.venv/bin/python benchmarks/bench_core.py``. Prints medians of interleaved samples; asserts
nothing. Targets (docs/design.md): decision ≤ 5 µs; guarded call incl. span ≤ 30 µs over bare; mint ≤ 150 µs;
decision at 1,000 steps ≤ 1.2x the 1-step figure. The second section (``_lifecycle.py``): memory per
open task, open+close against one sign + one verify, the 100,000th task against the first, memory per
closed task, the decision inside ``guard.use``, and a delegated child task against a top-level one.
"""

from __future__ import annotations

import contextvars
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _lifecycle
from _scenario import ARGS, EMAIL_CAPABILITY, EMAIL_STEP, ME, POLICY, sdk_provider, send_email
from _timing import compare, row

from agent_guard import Capability, Guard, Plan, Policy, derive_scope
from agent_guard.authorization._grant import mint_grant

SMALL_POLICY = POLICY
POLICY = Policy(agent_id="bench", capabilities=[EMAIL_CAPABILITY, *[Capability(f"tool_{i}", args={"x": {"any": True}})
                                                                   for i in range(1000)]])
EMAIL = EMAIL_STEP.model_dump()


def in_task(guard: Guard, plan: Plan) -> contextvars.Context:
    """A context in which ``plan``'s task is entered (left open for the benchmark)."""
    ctx = contextvars.copy_context()
    ctx.run(guard.task(plan, identity=ME).__enter__)
    return ctx


def main() -> None:
    guard = Guard(POLICY)
    one = in_task(guard, Plan(steps=[EMAIL]))
    distinct = in_task(guard, Plan(steps=[*[{"tool": f"tool_{i}", "args": {"x": {"any": True}}} for i in range(999)],
                                          EMAIL]))
    same = in_task(guard, Plan(steps=[
        *[{"tool": "send_email", "args": {**EMAIL["args"], "to": f"user{i}@example.com"}} for i in range(999)],  # type: ignore[dict-item]
        EMAIL]))
    provider = sdk_provider()
    sdk_guard = Guard(POLICY, tracer_provider=provider)
    sdk = in_task(sdk_guard, Plan(steps=[EMAIL]))
    wrapped, sdk_wrapped = guard.wrap(send_email), sdk_guard.wrap(send_email)
    deny_args = {**ARGS, "to": "m@evil.com"}
    small_guard = Guard(SMALL_POLICY)

    def mint() -> object:
        plan = Plan.model_validate({"steps": [EMAIL]})
        return mint_grant(small_guard.keys, derive_scope(plan, SMALL_POLICY), ME, ttl_s=300, now=small_guard.clock())

    def open_task() -> None:
        with small_guard.task(Plan.model_validate({"steps": [EMAIL]}), identity=ME):
            pass

    r = compare({
        "bare": (lambda: send_email(**ARGS), 5000),
        "decide": (lambda: one.run(guard.decide, "send_email", ARGS), 2000),
        "deny": (lambda: one.run(guard.decide, "send_email", deny_args), 2000),
        "wrapped": (lambda: one.run(wrapped, **ARGS), 2000),
        "sdk": (lambda: sdk.run(sdk_wrapped, **ARGS), 1000),
        "deny_call": (lambda: one.run(guard.authorize, "send_email", deny_args), 2000),
        "sdk_deny_call": (lambda: sdk.run(sdk_guard.authorize, "send_email", deny_args), 1000),
        "distinct": (lambda: distinct.run(guard.decide, "send_email", ARGS), 2000),
        "same": (lambda: same.run(guard.decide, "send_email", ARGS), 2000),
        "mint": (mint, 100),
        "open": (open_task, 50),
    })
    provider.shutdown()
    bare = r["bare"]
    print("agent_guard core benchmarks (median µs per call, 15 interleaved rounds)")
    print(row("bare call send_email(**3 kwargs)", bare))
    print(row("decision, allowed, 3-arg tool, cached grant (target ≤ 5)", r["decide"]))
    print(row("decision, denied (argument_mismatch)", r["deny"]))
    print(row("guarded call, OTel API only (no SDK)", r["wrapped"], note=f"+{r['wrapped'] - bare:.2f} over bare"))
    print(row("guarded call incl. span, SDK + BatchSpanProcessor", r["sdk"],
              note=f"+{r['sdk'] - bare:.2f} over bare (target ≤ 30); the span: +{r['sdk'] - r['wrapped']:.2f}"))
    print(row("denied call (authorize), OTel API only (no SDK)", r["deny_call"]))
    print(row("denied call incl. span (status ERROR), SDK + batch processor", r["sdk_deny_call"],
              note=f"+{r['sdk_deny_call'] - r['deny_call']:.2f} over the denial without an SDK"))
    print(row("mint: new plan + derive_scope + sign, EdDSA (target ≤ 150)", r["mint"]))
    print(row("open+close a task: derive, sign, verify, activate, spans", r["open"]))
    print(row("decision at 1,000 steps, distinct tools", r["distinct"],
              note=f"{r['distinct'] / r['decide']:.2f}x the 1-step decision (target ≤ 1.2x)"))
    print(row("decision at 1,000 steps of the same tool, pinned values", r["same"],
              note=f"{r['same'] / r['decide']:.2f}x"))


if __name__ == "__main__":
    main()
    print()
    _lifecycle.main()
