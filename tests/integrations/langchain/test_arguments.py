"""Decisions are made on exactly what the tool's function receives: defaults, coercion, injected parameters."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from agent_guard_langchain import AgentGuardMiddleware, GuardedTool, tool_node_wrappers
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, InjectedToolArg, StructuredTool, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from pydantic import BaseModel

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step, ToolCallDenied, reasons

ME = AgentIdentity(agent_id="bank")
ANY = {"any": True}


class Decisions:
    """An audit sink keeping the arguments of every decision (with record_arguments=True)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, bool, dict[str, Any]]] = []

    def decision(self, decision: Any, *, task: Any, call_id: Any, arguments: Any) -> None:
        self.rows.append((decision.tool, decision.allowed, copy.deepcopy(dict(arguments))))

    def grant_issued(self, task: Any) -> None:
        pass

    def grant_revoked(self, task: Any, reason: str) -> None:
        pass


@pytest.fixture
def ran() -> list[dict[str, Any]]:
    """What the tool bodies received."""
    return []


@pytest.fixture
def bank_tools(ran: list[dict[str, Any]]) -> list[BaseTool]:
    """transfer (amount defaults to 10000), pay (amount defaults to 50), send (an injected bcc)."""

    @tool
    def transfer(to: str, amount: int = 10000) -> str:
        """Transfer money."""
        ran.append({"tool": "transfer", "to": to, "amount": amount})
        return "sent"

    @tool
    def pay(to: str, amount: int = 50) -> str:
        """Pay a bill."""
        ran.append({"tool": "pay", "to": to, "amount": amount})
        return "paid"

    @tool
    def send(to: str, cc: str | None = None, bcc: Annotated[list[str], InjectedToolArg] = []) -> str:  # noqa: B006
        """Send an email; bcc is supplied by the application, never by the model."""
        ran.append({"tool": "send", "to": to, "cc": cc, "bcc": bcc})
        return "mailed"

    return [transfer, pay, send]


POLICY = Policy(agent_id="bank", capabilities=[
    Capability("transfer", args={"to": ANY, "amount": {"max": 100}}),
    Capability("pay", args={"to": ANY, "amount": {"max": 100}}),
    Capability("send", args={"to": {"glob": "*@example.com"}, "cc": ANY}),
])
PLAN = Plan(goal="bank", steps=[
    Step("transfer", args={"to": ANY, "amount": ANY}, max_calls=10),
    Step("pay", args={"to": ANY, "amount": ANY}, max_calls=10),
    Step("send", args={"to": ANY}, max_calls=10),  # cc defaults to None: absent unless the model passes one
])


@pytest.fixture
def sink() -> Decisions:
    """The decisions' arguments."""
    return Decisions()


@pytest.fixture
def bank(sink: Decisions) -> Guard:
    """A guard recording each decision's arguments."""
    return Guard(POLICY, decision_log=sink, record_arguments=True)


@pytest.fixture
def in_task(bank: Guard) -> Iterator[None]:
    """The bank plan's task, current for the test."""
    with bank.task(PLAN, identity=ME):
        yield


async def _invoke(t: BaseTool, value: Any, mode: str) -> Any:
    return t.invoke(value) if mode == "sync" else await t.ainvoke(value)


def _call(name: str, args: dict[str, Any], call_id: str = "c1") -> dict[str, Any]:
    return {"type": "tool_call", "name": name, "args": args, "id": call_id}


# -- defaults ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_missing_argument_is_decided_with_its_default(bank, bank_tools, sink, ran, in_task, mode):
    """The model leaves amount out: the decision sees the default the function receives (50 ok, 10000 not)."""
    transfer, pay, _ = (GuardedTool(t, bank) for t in bank_tools)
    ok = await _invoke(pay, _call("pay", {"to": "bob"}), mode)
    assert ok.status == "success" and ran == [{"tool": "pay", "to": "bob", "amount": 50}]
    refused = await _invoke(transfer, _call("transfer", {"to": "bob"}), mode)
    assert refused.status == "error" and reasons.ARGUMENT_MISMATCH in refused.content and "'amount'" in refused.content
    assert len(ran) == 1  # the 10000 default never ran
    assert [row[2] for row in sink.rows] == [{"to": "bob", "amount": 50}, {"to": "bob", "amount": 10000}]


async def test_defaults_in_a_real_agent_loop(bank, bank_tools, ran, run, mode):
    """Through the middleware: a default within the ceiling runs, one beyond it is refused."""
    mw = AgentGuardMiddleware(bank, planner=PLAN, identity=ME)
    model = ScriptedChatModel([calls(tool_call("pay", {"to": "bob"}, "p1"), tool_call("transfer", {"to": "bob"}, "t1")),
                               "done"])
    out = await run(create_agent(model, bank_tools, middleware=[mw]), {"messages": [("user", "pay bob")]}, mode)
    status = {m.tool_call_id: m.status for m in out["messages"] if isinstance(m, ToolMessage)}
    assert status == {"p1": "success", "t1": "error"}
    assert ran == [{"tool": "pay", "to": "bob", "amount": 50}]


class _Amount(BaseModel):
    to: str
    amount: int = 20


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_schema_default_wins_over_the_function_default(bank, sink, ran, in_task, mode):
    """LangChain fills a schema field's default before the function's own: the decision sees that one."""

    def pay_fn(to: str, amount: int = 10000) -> str:
        ran.append({"to": to, "amount": amount})
        return "paid"

    async def apay_fn(to: str, amount: int = 10000) -> str:
        return pay_fn(to, amount)

    pay = StructuredTool.from_function(pay_fn, coroutine=apay_fn, name="pay", description="Pay.", args_schema=_Amount)
    out = await _invoke(GuardedTool(pay, bank), _call("pay", {"to": "bob"}), mode)
    assert out.status == "success" and ran == [{"to": "bob", "amount": 20}]
    assert sink.rows[-1][2] == {"to": "bob", "amount": 20}


class _NoDefault(BaseModel):
    to: str
    amount: int | None = None


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_function_default_applies_when_the_schema_omits_the_field(bank, sink, ran, in_task, mode):
    """A custom args_schema without the field: the function's signature default is what runs, and is decided."""

    def transfer_fn(to: str, fee: int = 70) -> str:
        ran.append({"to": to, "fee": fee})
        return "sent"

    async def atransfer_fn(to: str, fee: int = 70) -> str:
        return transfer_fn(to, fee)

    class _To(BaseModel):
        to: str

    policy = Policy(agent_id="bank", capabilities=[Capability("transfer", args={"to": ANY, "fee": {"max": 50}})])
    guard = Guard(policy, decision_log=sink, record_arguments=True)
    transfer = StructuredTool.from_function(transfer_fn, coroutine=atransfer_fn, name="transfer",
                                            description="Transfer.", args_schema=_To)
    plan = Plan(goal="t", steps=[Step("transfer", args={"to": ANY, "fee": ANY})])
    with guard.task(plan, identity=ME):
        out = await _invoke(GuardedTool(transfer, guard), _call("transfer", {"to": "bob"}), mode)
    assert out.status == "error" and "'fee'" in out.content and ran == []
    assert sink.rows[-1][2] == {"to": "bob", "fee": 70}


# -- coercion ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_decided_on_the_coerced_value_the_tool_receives(bank, bank_tools, sink, ran, in_task, mode):
    """"5" for an int field reaches the function as 5: decided as 5 (allowed), "5000" as 5000 (refused)."""
    pay = GuardedTool(bank_tools[1], bank)
    ok = await _invoke(pay, _call("pay", {"to": "bob", "amount": "5"}), mode)
    assert ok.status == "success" and ran == [{"tool": "pay", "to": "bob", "amount": 5}]
    assert sink.rows[-1][2] == {"to": "bob", "amount": 5} and type(sink.rows[-1][2]["amount"]) is int
    refused = await _invoke(pay, _call("pay", {"to": "bob", "amount": "5000"}, "c2"), mode)
    assert refused.status == "error" and len(ran) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_plan_pinning_the_raw_string_refuses_the_coerced_int(bank_tools, ran, mode):
    """The other direction: the plan allows the string "7", but the tool would receive the int 7 -- refused."""
    policy = Policy(agent_id="bank", capabilities=[Capability("pay", args={"to": ANY, "amount": ANY})])
    guard = Guard(policy)
    plan = Plan(goal="p", steps=[Step("pay", args={"to": ANY, "amount": "7"})])
    with guard.task(plan, identity=ME):
        out = await _invoke(GuardedTool(bank_tools[1], guard), _call("pay", {"to": "bob", "amount": "7"}), mode)
    assert out.status == "error" and reasons.ARGUMENT_MISMATCH in out.content and ran == []


# -- injected parameters -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("as_tool_call", [True, False])
async def test_a_value_for_an_injected_parameter_is_refused(bank, bank_tools, ran, in_task, mode, as_tool_call):
    """bcc is InjectedToolArg: a value for it in the input (the model's, for all the guard knows) is refused."""
    send = GuardedTool(bank_tools[2], bank)
    args = {"to": "alice@example.com", "bcc": ["m@evil.com"]}
    if as_tool_call:
        out = await _invoke(send, _call("send", args), mode)
        assert out.status == "error" and reasons.ARGUMENT_NOT_ALLOWED in out.content and "'bcc'" in out.content
    else:
        with pytest.raises(ToolCallDenied) as err:
            await _invoke(send, args, mode)
        assert err.value.reason == reasons.ARGUMENT_NOT_ALLOWED and err.value.decision.argument == "bcc"
    assert ran == []
    # Without it the call runs with the parameter's own default; an unplanned cc is refused as before.
    ok = await _invoke(send, _call("send", {"to": "alice@example.com"}, "c2"), mode)
    assert ok.status == "success" and ran == [{"tool": "send", "to": "alice@example.com", "cc": None, "bcc": []}]
    cc = await _invoke(send, _call("send", {"to": "alice@example.com", "cc": "x@evil.com"}, "c3"), mode)
    assert cc.status == "error" and "'cc'" in cc.content and len(ran) == 1


async def test_in_a_tool_node_the_model_value_for_an_injected_parameter_is_dropped(bank, bank_tools, ran, run, mode):
    """LangGraph's ToolNode strips the model's bcc before the tool runs: the call is decided without it."""
    mw = AgentGuardMiddleware(bank, planner=PLAN, identity=ME)
    model = ScriptedChatModel([calls(tool_call("send", {"to": "alice@example.com", "bcc": ["m@evil.com"]}, "s1")),
                               "done"])
    out = await run(create_agent(model, bank_tools, middleware=[mw]), {"messages": [("user", "mail")]}, mode)
    (msg,) = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert msg.status == "success"
    assert ran == [{"tool": "send", "to": "alice@example.com", "cc": None, "bcc": []}]


async def test_keys_the_tool_never_receives_are_not_decided(bank, bank_tools, sink, ran, in_task):
    """An argument the schema drops never reaches the function, so it is not part of the decision."""
    out = GuardedTool(bank_tools[1], bank).invoke(_call("pay", {"to": "bob", "amount": 5, "extra": "x"}))
    assert out.status == "success" and sink.rows[-1][2] == {"to": "bob", "amount": 5}


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_tool_node_wrappers_decide_on_received_arguments(bank, bank_tools, sink, ran, mode):
    """The ToolNode wrappers decide inside the tool run too: "4" arrives as 4, the default is filled."""
    wrap, awrap = tool_node_wrappers(bank)
    g = StateGraph(MessagesState)
    g.add_node("tools", ToolNode(bank_tools, wrap_tool_call=wrap, awrap_tool_call=awrap))
    g.add_edge(START, "tools")
    g.add_edge("tools", END)
    graph = g.compile()
    payload = {"messages": [AIMessage("", tool_calls=[tool_call("pay", {"to": "bob", "amount": "4"}, "w1"),
                                                      tool_call("transfer", {"to": "bob"}, "w2")])]}
    with bank.task(PLAN, identity=ME):
        out = graph.invoke(payload) if mode == "sync" else await graph.ainvoke(payload)
    status = {m.tool_call_id: m.status for m in out["messages"] if isinstance(m, ToolMessage)}
    assert status == {"w1": "success", "w2": "error"}
    assert sorted((r[0], r[1], tuple(sorted(r[2].items()))) for r in sink.rows) == [
        ("pay", True, (("amount", 4), ("to", "bob"))), ("transfer", False, (("amount", 10000), ("to", "bob"))),
    ]
