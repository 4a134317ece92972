"""Property: whenever a guarded call is allowed, the tool's function received exactly the arguments decided on.

Generated model arguments mix known parameters, parameters left out (function defaults, schema
defaults), names the schema drops, the names of injected parameters (InjectedToolArg, state,
runtime, tool_call_id, config, callbacks) and hostile values (wrong types, coercible strings,
nested structures). Checked through GuardedTool (ToolCall and plain-dict input, sync and async)
and through LangGraph's ToolNode with the adapter's wrappers.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Annotated, Any

import pytest
from agent_guard_langchain import GuardedTool, tool_node_wrappers
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, InjectedToolArg, StructuredTool, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from pydantic import BaseModel, Field

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step, ToolCallDenied

NONE_DEFAULTS = {"transfer": {"memo"}}
"""Parameters whose default is None: a None there is decided as absent."""
RAN: list[tuple[str, dict[str, Any]]] = []
"""What each tool body received, by parameter name (injected parameters left out)."""
INJECTED_SEEN: list[tuple[str, Any]] = []
"""The value each body received for its injected parameter."""


@tool
def transfer(to: str, amount: int = 10000, memo: str | None = None,
             bcc: Annotated[list[str], InjectedToolArg] = []) -> str:  # noqa: B006
    """Move money."""
    RAN.append(("transfer", {"to": to, "amount": amount, "memo": memo}))
    INJECTED_SEEN.append(("transfer", bcc))
    return "sent"


class _SearchArgs(BaseModel):
    query: str
    limit: int = Field(default=50, description="how many")
    exact: bool = False


def _search(query: str, limit: int = 7, exact: bool = True, user: str = "anyone") -> str:
    RAN.append(("search", {"query": query, "limit": limit, "exact": exact, "user": user}))
    return "found"


async def _asearch(query: str, limit: int = 7, exact: bool = True, user: str = "anyone") -> str:
    return _search(query, limit, exact, user)


search = StructuredTool.from_function(_search, coroutine=_asearch, name="search", description="Search.",
                                      args_schema=_SearchArgs)


def _fetch(**kwargs: Any) -> str:
    RAN.append(("fetch", dict(kwargs)))
    return "fetched"


async def _afetch(**kwargs: Any) -> str:
    return _fetch(**kwargs)


fetch = StructuredTool(name="fetch", description="MCP-shaped: a JSON schema; the function gets the input as is.",
                       args_schema={"type": "object", "properties": {"url": {"type": "string"},
                                                                       "depth": {"type": "integer"}}},
                       func=_fetch, coroutine=_afetch)

TOOLS: list[BaseTool] = [transfer, search, fetch]
PARAMS = {
    "transfer": ("to", "amount", "memo"),
    "search": ("query", "limit", "exact", "user"),
    "fetch": ("url", "depth"),
}
INJECTED_NAMES = ("bcc", "state", "runtime", "tool_call_id", "config", "callbacks", "run_manager")
ANY = {"any": True}
ME = AgentIdentity(agent_id="prop")


class Decisions:
    """An audit sink keeping a deep copy of the arguments of every decision."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, bool, dict[str, Any]]] = []

    def decision(self, decision: Any, *, task: Any, call_id: Any, arguments: Mapping[str, Any]) -> None:
        self.rows.append((decision.tool, decision.allowed, copy.deepcopy(dict(arguments))))

    def grant_issued(self, task: Any) -> None:
        pass

    def grant_revoked(self, task: Any, reason: str) -> None:
        pass


SINK = Decisions()
GUARD = Guard(
    Policy(agent_id="prop", capabilities=[Capability(n, args=dict.fromkeys(p, ANY)) for n, p in PARAMS.items()]),
    decision_log=SINK, record_arguments=True,
)
PLAN = Plan(goal="prop", steps=[Step(n, args=dict.fromkeys(p, ANY), max_calls=1_000_000) for n, p in PARAMS.items()])
WRAPPED = {t.name: GuardedTool(t, GUARD) for t in TOOLS}


def _graph() -> Any:
    wrap, awrap = tool_node_wrappers(GUARD)
    g = StateGraph(MessagesState)
    g.add_node("tools", ToolNode(TOOLS, wrap_tool_call=wrap, awrap_tool_call=awrap))
    g.add_edge(START, "tools")
    g.add_edge("tools", END)
    return g.compile()


GRAPH = _graph()

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=8),
                         st.sampled_from(["5", "07", "true", "1e3", " 3 ", "", "0"]),
                         st.floats(allow_nan=False, allow_infinity=False, width=32))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)), max_leaves=6)


TYPED: dict[str, st.SearchStrategy[Any]] = {  # what each parameter expects, or a string that coerces to it
    "to": st.text(max_size=8), "memo": st.one_of(st.none(), st.text(max_size=8)), "query": st.text(max_size=8),
    "user": st.text(max_size=8), "url": st.text(max_size=8),
    "amount": st.one_of(st.integers(-10**6, 10**6), st.sampled_from(["5", "07", " 3 ", "1e3"]), st.just(3.0)),
    "limit": st.one_of(st.integers(0, 100), st.sampled_from(["5", "07"])), "depth": st.integers(0, 5),
    "exact": st.one_of(st.booleans(), st.sampled_from(["true", "false", "1", 0])),
}
REQUIRED = {"transfer": ("to",), "search": ("query",), "fetch": ()}


@st.composite
def model_calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A tool name and the model's arguments: some known names left out, unknown and injected names added."""
    name = draw(st.sampled_from(sorted(PARAMS)))
    names = set(draw(st.lists(st.sampled_from(PARAMS[name]), unique=True)))
    if draw(st.integers(0, 9)):  # mostly with the required names, so that most calls validate
        names.update(REQUIRED[name])
    extra = draw(st.lists(st.sampled_from([*INJECTED_NAMES, "extra", "amount_", "Query"]), unique=True, max_size=2))
    args = {}
    for n in sorted(names):
        hostile = draw(st.integers(0, 4)) == 0
        args[n] = draw(json_values if hostile or n not in TYPED else TYPED[n])
    for n in extra:
        args[n] = draw(json_values)
    return name, args


def _check(name: str, rows_before: int, ran_before: int) -> None:
    """The property, for the one call just made."""
    rows = SINK.rows[rows_before:]
    ran = RAN[ran_before:]
    if not rows:  # refused by LangChain's validation before any decision: the function never ran
        event("invalid input: not decided")
        assert ran == []
        return
    ((tool_name, allowed, decided),) = rows
    assert tool_name == name
    event(f"allowed={allowed}")
    if allowed:
        ((ran_name, received),) = ran
        # decided == received, except a None where the default is None (counted as absent: the core rule)
        absent = {k for k, v in received.items() if v is None and NONE_DEFAULTS.get(name, set()) >= {k}}
        assert ran_name == name and decided == {k: v for k, v in received.items() if k not in absent}, (ran, decided)
    else:
        assert ran == []
    for who, bcc in INJECTED_SEEN:  # a model-supplied bcc never reaches the function
        assert who == "transfer" and bcc == []


def _clear() -> tuple[int, int]:
    INJECTED_SEEN.clear()
    return len(SINK.rows), len(RAN)


PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("as_tool_call", [True, False])
@PROPERTY
@given(call=model_calls())
def test_guarded_tool_decides_what_the_function_receives(call: tuple[str, dict[str, Any]], mode: str,
                                                        as_tool_call: bool) -> None:
    """GuardedTool.invoke/ainvoke with a ToolCall or a plain dict."""
    name, args = call
    value: Any = {"type": "tool_call", "name": name, "args": copy.deepcopy(args), "id": "p1"} if as_tool_call \
        else copy.deepcopy(args)
    before = _clear()
    with GUARD.task(PLAN, identity=ME):
        try:
            if mode == "sync":
                WRAPPED[name].invoke(value)
            else:
                asyncio.run(WRAPPED[name].ainvoke(value))
        except ToolCallDenied:
            pass
        except Exception as err:  # LangChain refused the input (validation, a required field, a bad kwarg)
            event(f"raised {type(err).__name__}")
    _check(name, *before)


@pytest.mark.parametrize("mode", ["sync", "async"])
@PROPERTY
@given(call=model_calls())
def test_tool_node_wrappers_decide_what_the_function_receives(call: tuple[str, dict[str, Any]], mode: str) -> None:
    """A ToolNode with the adapter's wrappers (LangGraph strips and injects, then the guard decides)."""
    name, args = call
    payload = {"messages": [AIMessage("", tool_calls=[{"name": name, "args": copy.deepcopy(args), "id": "n1",
                                                       "type": "tool_call"}])]}
    before = _clear()
    with GUARD.task(PLAN, identity=ME):
        try:
            if mode == "sync":
                GRAPH.invoke(payload)
            else:
                asyncio.run(GRAPH.ainvoke(payload))
        except Exception as err:  # e.g. a bad kwarg for the function: the ToolNode re-raises it
            event(f"raised {type(err).__name__}")
    _check(name, *before)
