"""Runs that pause and resume stay inside their plan: on a fresh middleware, after a long pause, in a new process.

The checkpoint holds the run record (the plan, its hash, the grant's identifiers, the calls spent),
never the grant. A resumed run finds its live task in this process, or continues under a successor
grant minted from the recorded plan with the calls already made taken off: the remaining planned
calls run, a repeated completed call is refused ``budget_exhausted``, an out-of-plan call is refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agent_guard_langchain import AgentGuardMiddleware, LLMPlanner, interrupt_approver
from agent_guard_langchain.testing import ScriptedChatModel, calls, plan_reply, tool_call
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agent_guard import Guard, InMemoryGrantStore, KeySet, PlanRejected, reasons
from agent_guard.stores import RedisGrantStore

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import _resume_scenario as sc  # noqa: E402


async def _pause(guard: Guard, saver: Any, ran: list[Any], run: Any, mode: str, thread: str) -> dict[str, Any]:
    agent, _mw = sc.build(guard, saver, sc.before_pause(), ran)
    config = {"configurable": {"thread_id": thread}}
    first = await run(agent, {"messages": [HumanMessage(sc.REQUEST)]}, mode, config)
    assert first["__interrupt__"][0].value["action_requests"][0]["name"] == "send_email"
    assert ran == [("crm_lookup", {"customer_id": "C-42"})]
    return config


def _check(out: dict[str, Any], ran: list[Any]) -> None:
    assert ran == [("send_email", sc.EMAIL)]  # the plan's remaining call, and nothing else
    result = sc.outcome(out["messages"])
    assert result["answers"] == sc.EXPECTED and result["last"] == "done"


@pytest.mark.parametrize("how", ["fresh middleware", "fresh guard, shared store", "grant expired"])
async def test_a_paused_run_resumes_inside_its_plan(how, policy, clock, spans, run, mode):
    """Resume after a HITL pause on a fresh middleware (the live task is found), on a fresh guard sharing
    the store (a successor grant takes over the store's budget), after the grant expired (a successor
    minted from the recorded plan with the calls already made -- counted from the record and the
    checkpointed messages -- taken off)."""
    store = InMemoryGrantStore(clock=clock)
    guard = Guard(sc.POLICY, store=store, clock=clock, tracer_provider=spans.provider)
    saver = InMemorySaver()
    ran: list[Any] = []
    config = await _pause(guard, saver, ran, run, mode, f"{how}-{mode}")
    (first_task,) = {r["task"] for r in spans.decisions()}
    if how == "fresh guard, shared store":
        guard = Guard(sc.POLICY, store=store, clock=clock, keys=KeySet.generate(), tracer_provider=spans.provider)
    elif how == "grant expired":
        clock.advance(guard.default_ttl_s + 1)
    ran.clear()
    agent, mw = sc.build(guard, saver, sc.after_pause(), ran, planner=sc.no_planner)
    out = await run(agent, Command(resume=sc.APPROVE), mode, config)
    _check(out, ran)
    assert mw.active_runs == 0 and len(store) == 0  # every grant of the run is closed
    tasks = [r["task"] for r in spans.decisions()]
    if how == "fresh middleware":
        assert set(tasks) == {first_task}  # the same grant went on
    else:
        assert tasks[0] == first_task and set(tasks[1:]) != {first_task}  # a successor grant
    assert all(s.end_time is not None for s in spans.named("invoke_agent"))


def test_a_paused_run_resumes_in_a_new_process(redis_url, tmp_path, mode):
    """Pause here (SqliteSaver on a real file, RedisGrantStore on a real server); resume in a new process
    with its own guard and a planner that must not be called: the remaining planned call runs, the
    repeated completed call is refused budget_exhausted, the refund is refused; the old grant's run is
    taken over (revoked) and no grant is left live. No checkpoint holds the grant."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = str(tmp_path / "threads.sqlite")
    store = RedisGrantStore(redis_url)
    guard = Guard(sc.POLICY, store=store)
    ran: list[Any] = []
    thread = f"cross-{mode}"
    with SqliteSaver.from_conn_string(path) as saver:
        agent, mw = sc.build(guard, saver, sc.before_pause(), ran)
        first = agent.invoke({"messages": [HumanMessage(sc.REQUEST)]}, {"configurable": {"thread_id": thread}})
        assert "__interrupt__" in first and ran == [("crm_lookup", {"customer_id": "C-42"})]
        (task,) = [e.current() for e in mw._registry.entries()]  # the live task (this process only)
        record = agent.get_state({"configurable": {"thread_id": thread}}).values["agent_guard_run"]
    assert record["plan_hash"] == sc.PLAN.plan_hash and record["grant_id"] == task.grant_id
    assert record["spent"] == [1, 0] and task.grant not in json.dumps(record)
    assert store.is_active(task.run_id)
    blob = Path(path).read_bytes()
    assert task.grant.encode() not in blob and task.grant.split(".")[1].encode() not in blob

    done = subprocess.run(
        [sys.executable, str(HERE / "_resume_worker.py"), path, redis_url, thread, mode, task.run_id],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ran"] == [["send_email", sc.EMAIL]]
    assert report["answers"] == sc.EXPECTED and report["last"] == "done"
    assert report["active_runs"] == 0 and report["old_run_active"] is False
    assert report["record"] is None  # after_agent cleared it
    store.close()


async def test_an_approval_resumed_on_a_fresh_middleware_runs_the_plan_shown(policy, spans, support_tools,
                                                                                calls_seen, run, mode):
    """The human is shown `refund amount = 20`; the thread is resumed with a bare True on a NEW middleware
    whose planner would now plan 95: the plan shown (20) is the one approved and run -- it was kept in the
    checkpoint, and the planner is not asked again."""
    guard = Guard(policy, tracer_provider=spans.provider, approver=interrupt_approver)
    draft = {"goal": "refund O-7", "steps": [{"tool": "refund", "arguments": [
        {"name": "order_id", "pinned": True, "value": "O-7"}, {"name": "amount", "pinned": True, "value": 20}]}]}
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": f"approve-fresh-{mode}"}}

    def agent_with(amount: int, model_script: list[Any]) -> tuple[Any, ScriptedChatModel]:
        planner_model = ScriptedChatModel([plan_reply({**draft, "steps": [{**draft["steps"][0], "arguments": [
            {"name": "order_id", "pinned": True, "value": "O-7"},
            {"name": "amount", "pinned": True, "value": amount}]}]})] * 3)
        mw = AgentGuardMiddleware(guard, planner=LLMPlanner(planner_model), catalog=support_tools)
        agent = create_agent(ScriptedChatModel(model_script), support_tools, middleware=[mw], checkpointer=saver)
        return agent, planner_model

    agent, planner = agent_with(20, [])
    first = await run(agent, {"messages": [HumanMessage("Refund 20 on O-7")]}, mode, config)
    (intr,) = first["__interrupt__"]
    assert intr.value["plan"][0]["args"]["amount"] == {"eq": 20} and len(planner.prompts) == 1

    agent, planner = agent_with(95, [calls(tool_call("refund", {"order_id": "O-7", "amount": 95}, "r95"),
                                           tool_call("refund", {"order_id": "O-7", "amount": 20}, "r20")), "done"])
    out = await run(agent, Command(resume=True), mode, config)
    assert planner.prompts == []  # the fresh middleware did not plan again
    assert calls_seen.ran == [("refund", {"order_id": "O-7", "amount": 20})]
    statuses = {m.tool_call_id: m.status for m in out["messages"] if getattr(m, "tool_call_id", None)}
    assert statuses == {"r95": "error", "r20": "success"}
    (issued,) = [s for s in spans.named("invoke_agent")]
    assert out["messages"][-1].content == "done" and issued.end_time is not None


async def test_a_resume_that_cannot_continue_ends_the_run(spans, clock, run, mode):
    """A paused run resumed by another user (the identity differs from the recorded one) gets no grant:
    its pending call is refused and the run ends with a final AI message -- no loop of refused calls."""
    from agent_guard import AgentIdentity

    guard = Guard(sc.POLICY, clock=clock, tracer_provider=spans.provider)
    saver = InMemorySaver()
    ran: list[Any] = []
    config = await _pause(guard, saver, ran, run, mode, f"stranger-{mode}")
    ran.clear()
    mw = AgentGuardMiddleware(guard, planner=sc.no_planner, identity=AgentIdentity(agent_id="support-bot",
                                                                                     user_id="someone-else"))
    from langchain.agents.middleware import HumanInTheLoopMiddleware

    model = ScriptedChatModel([calls(tool_call("send_email", sc.EMAIL, "again"))] * 5)
    agent = create_agent(model, sc.make_tools(ran), checkpointer=saver,
                         middleware=[mw, HumanInTheLoopMiddleware(interrupt_on={"send_email": True})])
    out = await run(agent, Command(resume=sc.APPROVE), mode, config)
    assert ran == [] and model.remaining == 5  # nothing ran, and the model was not asked again
    result = sc.outcome(out["messages"])
    assert result["answers"]["e1"] == ["error", reasons.NO_GRANT]
    assert "cannot continue" in result["last"] and "another identity" in result["last"]
    assert out["messages"][-1].response_metadata["agent_guard"]["ended"] is True


def test_pending_approval_is_refused_on_resume_with_no(policy, support_tools, calls_seen):
    """The recorded plan waits for approval: a no on resume refuses it (PlanRejected), nothing runs."""
    guard = Guard(policy, approver=interrupt_approver)
    plan_ = sc.PLAN.model_copy()
    from agent_guard import Plan, Step

    plan_ = Plan(goal="refund", steps=[Step("refund", args={"order_id": "O-7", "amount": 20})])
    mw = AgentGuardMiddleware(guard, planner=plan_)
    agent = create_agent(ScriptedChatModel(["never"]), support_tools, middleware=[mw], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "no"}}
    agent.invoke({"messages": [HumanMessage("refund")]}, config)
    with pytest.raises(PlanRejected) as err:
        agent.invoke(Command(resume=False), config)
    assert err.value.reason == reasons.APPROVAL_DENIED and calls_seen.ran == []


def test_a_record_copied_to_another_thread_is_not_used(spans):
    """A run record read on another thread (a copied checkpoint) finds and mints nothing: the call is refused
    and marked to end the run; the model hook ends it with a final message."""
    from agent_guard_langchain import STATE_KEY
    from langchain.agents.middleware.types import ModelRequest
    from langchain_core.messages import ToolCall
    from langgraph.prebuilt.tool_node import ToolCallRequest

    guard = Guard(sc.POLICY, tracer_provider=spans.provider)
    mw = AgentGuardMiddleware(guard, planner=sc.PLAN, identity=sc.ME)

    class Info:
        def __init__(self, thread: str) -> None:
            self.thread_id = thread

    class Rt:
        def __init__(self, thread: str) -> None:
            self.execution_info = Info(thread)
            self.context = None

    state = {"messages": [HumanMessage(sc.REQUEST)]}
    state.update(mw.before_agent(state, Rt("original")) or {})
    ran: list[Any] = []
    (lookup, *_) = sc.make_tools(ran)
    request = ToolCallRequest(tool_call=ToolCall(name="crm_lookup", args={"customer_id": "C-42"}, id="x1",
                                                 type="tool_call"), tool=lookup, state=state, runtime=Rt("copy"))
    answer = mw.wrap_tool_call(request, lambda req: req.tool.invoke(req.tool_call))
    assert answer.status == "error" and "another thread" in answer.content and ran == []
    assert answer.artifact["agent_guard"]["end_run"]
    model_request = ModelRequest(model=ScriptedChatModel([]), messages=state["messages"], system_prompt=None,
                                 tool_choice=None, tools=[], response_format=None, state=state, runtime=Rt("copy"),
                                 model_settings={})
    final = mw.wrap_model_call(model_request, lambda r: pytest.fail("the model must not be called"))
    assert "another thread" in final.content
    assert mw.task_for(state, Rt("original")) is not None and mw.task_for(state, Rt("copy")) is None
    assert mw.close() == 1 and STATE_KEY in state
