"""MCP tools (coroutine-only, JSON-schema arguments) from a real stdio MCP server, through the middleware.

``langchain-mcp-adapters`` builds ``StructuredTool(coroutine=..., args_schema=<JSON schema>)``: no
sync function. Under ``ainvoke`` they are decided and run like any tool; under ``invoke`` LangChain
cannot run them -- the guard raises LangChain's own ``NotImplementedError`` *before* deciding, so
no budget is spent on a call that could not run.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from agent_guard_langchain import AgentGuardMiddleware
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step

HERE = Path(__file__).resolve().parent
POLICY = Policy(agent_id="mcp-bot", capabilities=[
    Capability("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}),
    Capability("refund", args={"order_id": {"prefix": "O-"}, "amount": {"max": 100}}),
])
PLAN = Plan(goal="look C-42 up", steps=[Step("crm_lookup", args={"customer_id": "C-42"})])
ME = AgentIdentity(agent_id="mcp-bot")


@pytest.fixture(scope="module")
def mcp_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file the MCP server logs its tool runs to."""
    return tmp_path_factory.mktemp("mcp") / "runs.log"


@pytest.fixture(scope="module")
def mcp_tools(mcp_log: Path) -> list[Any]:
    """The server's tools, loaded with langchain-mcp-adapters (each call talks to a fresh server process)."""
    from langchain_mcp_adapters.client import MultiServerMCPClient

    client = MultiServerMCPClient({"crm": {"transport": "stdio", "command": sys.executable,
                                           "args": [str(HERE / "_mcp_server.py"), str(mcp_log)]}})
    return asyncio.run(client.get_tools())


def _ran(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


async def test_mcp_tools_are_decided_and_run_under_ainvoke(mcp_tools, mcp_log):
    """Async: the planned lookup reaches the server; the refund (not planned) never does."""
    assert {t.name for t in mcp_tools} == {"crm_lookup", "refund"}
    assert all(t.coroutine is not None and getattr(t, "func", None) is None for t in mcp_tools)
    before = _ran(mcp_log)
    guard = Guard(POLICY)
    mw = AgentGuardMiddleware(guard, planner=PLAN, catalog=mcp_tools, identity=ME)
    model = ScriptedChatModel([calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "m1"),
                                     tool_call("refund", {"order_id": "O-1", "amount": 5}, "m2")), "done"])
    out = await create_agent(model, mcp_tools, middleware=[mw]).ainvoke({"messages": [HumanMessage("C-42?")]})
    answers = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert answers["m1"].status == "success" and "Alice" in str(answers["m1"].content)
    assert answers["m2"].status == "error" and "tool_not_in_scope" in answers["m2"].content
    assert _ran(mcp_log)[len(before):] == ["crm_lookup C-42"]


def test_a_coroutine_only_tool_under_invoke_is_refused_before_it_spends_budget(mcp_tools, mcp_log):
    """Sync invoke: LangChain cannot run the MCP tool; the guard raises its NotImplementedError before the
    decision, so the plan's single lookup is still unspent -- and nothing reached the server."""
    before = _ran(mcp_log)
    guard = Guard(POLICY)
    mw = AgentGuardMiddleware(guard, planner=PLAN, catalog=mcp_tools, identity=ME)
    model = ScriptedChatModel([calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "m1")), "done"])
    with pytest.raises(NotImplementedError, match="does not support sync invocation"):
        create_agent(model, mcp_tools, middleware=[mw]).invoke({"messages": [HumanMessage("C-42?")]})
    (entry,) = mw._registry.entries()
    assert guard.store.remaining(entry.current().run_id) == (1,)  # no budget spent
    assert _ran(mcp_log) == before
    assert mw.close() == 1
