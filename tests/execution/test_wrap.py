"""``guard.wrap`` decides on exactly the arguments the function receives, defaults included."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step, ToolCallDenied, reasons
from agent_guard.execution._wrap import call_arguments

POLICY = Policy(agent_id="bank-bot", capabilities=[
    Capability("transfer", args={"to": {"prefix": "acct-"}, "amount": {"max": 100}, "memo": {"any": True}}),
    Capability("send", args={"to": {"any": True}, "bcc": {"any": True}}),
])
ME = AgentIdentity(agent_id="bank-bot")


@pytest.fixture
def guard() -> Guard:
    return Guard(POLICY)


def test_a_default_outside_the_ceiling_is_refused(guard: Guard) -> None:
    """The model leaves `amount` out; the tool's default 10000 is decided as if passed, and refused."""
    ran: list[dict[str, Any]] = []

    @guard.wrap
    def transfer(to: str, amount: int = 10_000, memo: str | None = None) -> str:
        ran.append({"to": to, "amount": amount})
        return "done"

    plan = Plan(steps=[Step("transfer", args={"to": "acct-1", "amount": {"any": True}})])
    with guard.task(plan, identity=ME):
        with pytest.raises(ToolCallDenied) as denied:
            transfer(to="acct-1")
        assert denied.value.reason == reasons.ARGUMENT_MISMATCH and denied.value.decision.argument == "amount"
        assert transfer(to="acct-1", amount=20) == "done"
    assert ran == [{"to": "acct-1", "amount": 20}]


def test_a_default_inside_the_ceiling_runs(guard: Guard) -> None:
    @guard.wrap
    def transfer(to: str, amount: int = 50) -> str:
        return f"{amount} to {to}"

    with guard.task(Plan(steps=[Step("transfer", args={"to": "acct-1", "amount": {"any": True}})]), identity=ME):
        assert transfer("acct-1") == "50 to acct-1"


def test_a_non_none_default_the_plan_does_not_list_is_refused(guard: Guard) -> None:
    """A step that never mentions `amount` cannot let the tool's 10000 through."""

    @guard.wrap
    def transfer(to: str, amount: int = 10_000) -> str:
        return "done"

    with guard.task(Plan(steps=[Step("transfer", args={"to": "acct-1"})]), identity=ME):
        with pytest.raises(ToolCallDenied) as denied:
            transfer(to="acct-1")
        assert denied.value.reason == reasons.ARGUMENT_NOT_ALLOWED


def test_a_none_default_left_out_counts_as_absent(guard: Guard) -> None:
    """`bcc=None` (left out or passed as None) is absent: allowed when the step does not list it; a value is refused."""

    @guard.wrap
    def send(to: str, bcc: str | None = None) -> str:
        return f"to {to} bcc {bcc}"

    with guard.task(Plan(steps=[Step("send", args={"to": "a@example.com"}, max_calls=2)]), identity=ME):
        assert send(to="a@example.com", bcc=None) == "to a@example.com bcc None"
        with pytest.raises(ToolCallDenied) as denied:
            send(to="a@example.com", bcc="m@evil.com")
        assert denied.value.reason == reasons.ARGUMENT_NOT_ALLOWED


async def test_async_functions_get_the_same_defaults(guard: Guard) -> None:
    @guard.wrap
    async def transfer(to: str, amount: int = 10_000) -> str:
        return "done"

    async with guard.task(Plan(steps=[Step("transfer", args={"to": "acct-1", "amount": {"any": True}})]),
                          identity=ME):
        with pytest.raises(ToolCallDenied):
            await transfer(to="acct-1")


def _received(a: Any, b: Any = 1, c: Any = None, *rest: Any, **extra: Any) -> dict[str, Any]:
    got = {"a": a, "b": b, "c": c, **extra}
    if rest:
        got["rest"] = list(rest)
    return got


_VALUES = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=3), st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(
    positional=st.lists(_VALUES, min_size=1, max_size=5),
    extra=st.dictionaries(st.sampled_from(["x", "y", "zz"]), _VALUES, max_size=3),
)
def test_decided_arguments_are_what_the_function_receives(positional: list[Any], extra: dict[str, Any]) -> None:
    """For any call the signature binds: decided == received, except c=None (its default is None: absent)."""
    signature = inspect.signature(_received)
    decided = call_arguments(signature, "received", tuple(positional), dict(extra))
    received = _received(*positional, **extra)
    expected = {k: v for k, v in received.items() if not (k == "c" and v is None)}
    assert decided == expected


def test_an_unbindable_call_is_a_config_error(guard: Guard) -> None:
    @guard.wrap
    def transfer(to: str) -> str:
        return to

    from agent_guard import ConfigError

    with guard.task(Plan(steps=[Step("transfer", args={"to": "acct-1"})]), identity=ME), \
            pytest.raises(ConfigError, match="transfer"):
        transfer(to="acct-1", amount=5)  # type: ignore[call-arg]
