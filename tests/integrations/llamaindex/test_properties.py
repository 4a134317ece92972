"""Property: whenever a guarded call is allowed, the tool received exactly the arguments decided on.

Generated model arguments mix known parameters, parameters left out (defaults, pydantic Field
defaults, partial_params), unknown names, the Context parameter's name and hostile values.
"""

# No `from __future__ import annotations`: LlamaIndex finds a tool's `ctx: Context` parameter by
# comparing the live annotation with the Context class.
import asyncio
import copy
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from agent_guard_llamaindex import CTX_PARAM, guard_tools
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context
from pydantic import Field

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step

BODIES_RAN: list[tuple[str, dict[str, Any]]] = []
"""What each tool body received, by parameter name (the function's own locals)."""


def transfer(to: str, amount: int = 10000, memo: str = "") -> str:
    """Move money."""
    BODIES_RAN.append(("transfer", {"to": to, "amount": amount, "memo": memo}))
    return "sent"


def search(query: str, limit: int = Field(default=50, description="how many"), user: str = "anyone") -> str:
    """Search."""
    BODIES_RAN.append(("search", {"query": query, "limit": limit, "user": user}))
    return "found"


def note(ctx: Context, key: str, value: str = "v", **extra: Any) -> str:
    """Note something."""
    BODIES_RAN.append(("note", {"key": key, "value": value, **extra}))
    return "noted"


async def ping(host: str, count: int = 3) -> str:
    """Ping a host."""
    BODIES_RAN.append(("ping", {"host": host, "count": count}))
    return "pong"


PARAMS = {
    "transfer": ("to", "amount", "memo"),
    "search": ("query", "limit", "user"),
    "note": ("key", "value", "x", "y"),  # x, y: allowed extras, received through **extra
    "ping": ("host", "count"),
}
ANY = {"any": True}


class Decisions:
    """An audit sink keeping the arguments of every decision (argument recording on)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, bool, Mapping[str, Any], dict[str, Any]]] = []

    def decision(self, decision: Any, *, task: Any, call_id: Any, arguments: Any) -> None:
        self.rows.append((decision.tool, decision.allowed, arguments, copy.deepcopy(dict(arguments))))

    def grant_issued(self, task: Any) -> None:
        pass

    def grant_revoked(self, task: Any, reason: str) -> None:
        pass


class Setup:
    """One guard, its sink, the guarded tools and a plan allowing any value of the named parameters."""

    def __init__(self) -> None:
        policy = Policy(agent_id="bot", capabilities=[
            Capability(tool, args={name: ANY for name in names}) for tool, names in PARAMS.items()
        ])
        self.sink = Decisions()
        self.guard = Guard(policy, decision_log=self.sink, record_arguments=True)
        self.plan = Plan(goal="anything", steps=[
            Step(tool, args={name: ANY for name in names}) for tool, names in PARAMS.items()
        ])
        self.identity = AgentIdentity(agent_id="bot")
        raw = [
            FunctionTool.from_defaults(transfer),
            FunctionTool.from_defaults(search, partial_params={"user": "u-1"}),
            FunctionTool.from_defaults(note),
            FunctionTool.from_defaults(ping),
        ]
        self.tools = {t.metadata.get_name(): t for t in guard_tools(raw, self.guard)}
        self.loop = asyncio.new_event_loop()


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    """Built once for all examples (hypothesis runs many examples per test)."""
    built = Setup()
    yield built
    built.loop.run_until_complete(built.loop.shutdown_default_executor())
    built.loop.close()


_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from(["", "\x1b[2K\r", "\u202e", "a" * 300, "../../etc/passwd"])
)
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
_known = sorted({name for names in PARAMS.values() for name in names} | {"ctx", "extra", "self"})


@st.composite
def _calls(draw: st.DrawFn) -> tuple[str, dict[str, Any], bool]:
    """A tool, the model's arguments for it and the path: its own parameters (each maybe left out),
    sometimes with extra names (other tools' parameters, ``ctx``, ``self``, anything)."""
    tool = draw(st.sampled_from(sorted(PARAMS)))
    own = draw(st.fixed_dictionaries({}, optional={name: _values for name in PARAMS[tool]}))
    extra_names = st.sampled_from(_known) | st.text(min_size=1, max_size=6)
    extra = draw(st.just({}) | st.dictionaries(extra_names, _values, min_size=1, max_size=2))
    return tool, {**own, **extra}, draw(st.booleans())


class FakeContext:
    """Stands in for the workflow Context the agent passes (never compared with the arguments)."""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=_calls())
def test_allowed_calls_receive_exactly_the_decided_arguments(setup, call):
    """For any model arguments: allowed -> the body got the decided mapping (same names, same objects)."""
    tool_name, model_kwargs, use_async = call
    tool = setup.tools[tool_name]
    kwargs = {**model_kwargs, CTX_PARAM: FakeContext()}  # the agent sets the Context after the model's arguments
    BODIES_RAN.clear()
    setup.sink.rows.clear()
    with setup.guard.task(setup.plan, identity=setup.identity):
        try:
            out = setup.loop.run_until_complete(tool.acall(**kwargs)) if use_async else tool.call(**kwargs)
        except TypeError:
            out = None  # the arguments cannot be bound to the function: no decision, nothing ran
    if out is None:
        event("unbindable")
        assert setup.sink.rows == [] and BODIES_RAN == []
        return
    ((decided_tool, allowed, decided, snapshot),) = setup.sink.rows
    assert decided_tool == tool_name
    assert CTX_PARAM not in decided  # the Context is never an argument
    if tool_name == "note":
        assert "ctx" not in decided  # a model value under the Context's own name is dropped
    event("allowed" if allowed else "denied")
    if not allowed:
        assert out.is_error and BODIES_RAN == []
        return
    assert not out.is_error
    ((ran, received),) = BODIES_RAN
    assert ran == tool_name
    assert received.keys() == decided.keys()
    assert all(received[name] is decided[name] for name in decided)  # the very objects decided on
    assert received == snapshot  # and nothing changed between the decision and the call
    for name, value in model_kwargs.items():  # what the model passed is what was decided (unless dropped)
        if name in decided and not (tool_name == "note" and name == "ctx"):
            assert decided[name] is value


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.none() | st.integers(min_value=-(10**30), max_value=10**30), memo=st.none() | st.text(max_size=8))
def test_a_left_out_argument_is_decided_as_its_default(setup, amount, memo):
    """Leaving out amount/memo decides (and runs) with the function's defaults, never unchecked."""
    passed = {k: v for k, v in (("amount", amount), ("memo", memo)) if v is not None}
    BODIES_RAN.clear()
    setup.sink.rows.clear()
    with setup.guard.task(setup.plan, identity=setup.identity):
        setup.tools["transfer"].call(to="acct-1", **passed, **{CTX_PARAM: FakeContext()})
    ((_, allowed, decided, _),) = setup.sink.rows
    assert allowed and decided == {"to": "acct-1", "amount": 10000, "memo": "", **passed}
    ((ran, received),) = BODIES_RAN
    assert ran == "transfer" and received == decided
