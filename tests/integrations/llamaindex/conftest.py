"""Fixtures for the LlamaIndex adapter: real tools that record every body run, a policy, a guard."""

# No `from __future__ import annotations` here: LlamaIndex detects a tool's `ctx: Context`
# parameter by comparing the live annotation with the Context class, so string annotations hide it.
from typing import Any

import pytest
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context

from agent_guard import Capability, Plan, Policy, Step


class Ledger:
    """Records every tool body that actually ran (tool name, arguments)."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        """The tools whose body ran, in order."""
        return [name for name, _ in self.ran]


@pytest.fixture
def ledger() -> Ledger:
    """A fresh record of tool bodies that ran."""
    return Ledger()


@pytest.fixture
def raw_tools(ledger: Ledger) -> list[FunctionTool]:
    """Unguarded tools: sync lookup, async email, a Context tool, and a destructive tool."""

    def crm_lookup(customer_id: str) -> str:
        """Look a customer up by id."""
        ledger.ran.append(("crm_lookup", {"customer_id": customer_id}))
        return f"customer {customer_id}: Alice <alice@example.com>"

    async def send_email(to: str, subject: str, body: str) -> str:
        """Send an email."""
        ledger.ran.append(("send_email", {"to": to, "subject": subject, "body": body}))
        return f"sent to {to}"

    async def remember(ctx: Context, key: str, value: str) -> str:
        """Store a note in the workflow state."""
        await ctx.store.set(f"note:{key}", value)
        ledger.ran.append(("remember", {"key": key, "value": value}))
        return f"remembered {key}"

    def delete_db(name: str) -> str:
        """Delete a database."""
        ledger.ran.append(("delete_db", {"name": name}))
        return f"deleted {name}"

    return [
        FunctionTool.from_defaults(crm_lookup),
        FunctionTool.from_defaults(send_email),
        FunctionTool.from_defaults(remember),
        FunctionTool.from_defaults(delete_db),
    ]


@pytest.fixture
def policy() -> Policy:
    """The ceiling: lookups of C-ids, email to example.com, notes, and (never planned) delete_db."""
    return Policy(
        agent_id="support-bot",
        capabilities=[
            Capability("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}),
            Capability("send_email", args={"to": {"glob": "*@example.com"}, "subject": {"max_len": 200},
                                           "body": {"max_len": 2000}}),
            Capability("remember", args={"key": {"any": True}, "value": {"max_len": 100}}),
            Capability("delete_db", args={"name": {"any": True}}),
        ],
    )


@pytest.fixture
def plan() -> Plan:
    """Look C-42 up, note it, then email Alice."""
    return Plan(
        goal="email Alice her summary",
        steps=[
            Step("crm_lookup", args={"customer_id": "C-42"}),
            Step("remember", args={"key": {"any": True}, "value": {"any": True}}),
            Step("send_email", args={"to": "alice@example.com", "subject": {"any": True}, "body": {"any": True}}),
        ],
    )


@pytest.fixture(autouse=True)
async def no_lost_task_errors():
    """Fail a test whose run leaves an asyncio error nobody retrieved (e.g. a lost task exception)."""
    import asyncio
    import gc

    loop = asyncio.get_running_loop()
    lost = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: lost.append(context.get("message")))
    yield
    await asyncio.sleep(0)
    gc.collect()
    loop.set_exception_handler(previous)
    assert lost == []
