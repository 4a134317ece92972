"""One run that pauses mid-way for a human (LangChain's HITL) and resumes: shared by the in-process
tests and the worker process of the cross-process test (imported by path, so only top-level names).

Plan: look C-42 up once, then email Alice (at most twice). The model looks C-42 up (runs), then asks, in one
turn, to email Alice and to look C-42 up again: HITL pauses on the email. After the resume (the
human approves), the email runs (the plan's remaining call), the repeated lookup is refused
``budget_exhausted``, and the model's next call, a refund, is refused (not in the plan).
"""

from __future__ import annotations

from typing import Any

from agent_guard_langchain import AgentGuardMiddleware
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.tools import BaseTool, tool

from agent_guard import AgentIdentity, Capability, Plan, Policy, Step

POLICY = Policy(agent_id="support-bot", max_ttl_s=900, capabilities=[
    Capability("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}),
    Capability("send_email", args={"to": {"glob": "*@example.com"}, "subject": {"max_len": 200},
                                   "body": {"max_len": 2000}}),
    Capability("refund", args={"amount": {"min": 0, "max": 500}, "order_id": {"prefix": "O-"}}),
])
PLAN = Plan(goal="email Alice her summary", steps=[
    Step("crm_lookup", args={"customer_id": "C-42"}),
    Step("send_email", args={"to": "alice@example.com", "subject": {"any": True}, "body": {"any": True}},
         max_calls=2),
])
ME = AgentIdentity(agent_id="support-bot", user_id="u-1")
EMAIL = {"to": "alice@example.com", "subject": "Summary", "body": "Hi"}
REQUEST = "Look up C-42 and email Alice her summary"
APPROVE = {"decisions": [{"type": "approve"}]}


def make_tools(ran: list[tuple[str, dict[str, Any]]]) -> list[BaseTool]:
    """crm_lookup, send_email, refund: each records its run in ``ran``."""

    @tool
    def crm_lookup(customer_id: str) -> str:
        """Look a customer up in the CRM."""
        ran.append(("crm_lookup", {"customer_id": customer_id}))
        return f"Customer {customer_id}: Alice, alice@example.com"

    @tool
    def send_email(to: str, subject: str, body: str) -> str:
        """Send an email."""
        ran.append(("send_email", {"to": to, "subject": subject, "body": body}))
        return f"sent to {to}"

    @tool
    def refund(order_id: str, amount: float) -> str:
        """Refund an order."""
        ran.append(("refund", {"order_id": order_id, "amount": amount}))
        return "refunded"

    return [crm_lookup, send_email, refund]


def before_pause() -> list[Any]:
    """The model's turns up to the pause."""
    return [
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")),
        calls(tool_call("send_email", EMAIL, "e1"), tool_call("crm_lookup", {"customer_id": "C-42"}, "c2")),
    ]


def after_pause() -> list[Any]:
    """The model's turns after the resume."""
    return [calls(tool_call("refund", {"order_id": "O-1", "amount": 5}, "r1")), "done"]


def no_planner(messages: list[BaseMessage], tools: list[BaseTool]) -> Plan:
    """A resumed run never plans again: its plan comes from the checkpoint."""
    raise AssertionError("the resumed run planned again")


def build(guard: Any, checkpointer: Any, script: list[Any], ran: list[tuple[str, dict[str, Any]]],
          planner: Any = PLAN, watch: bool = False) -> tuple[Any, AgentGuardMiddleware]:
    """The agent: the guard's middleware, then HITL on send_email, over a checkpointer."""
    mw = AgentGuardMiddleware(guard, planner=planner, identity=ME)
    hitl = HumanInTheLoopMiddleware(interrupt_on={"send_email": True})
    agent = create_agent(ScriptedChatModel(script), make_tools(ran), middleware=[mw, hitl], checkpointer=checkpointer)
    return (mw.watch(agent) if watch else agent), mw


def outcome(messages: list[BaseMessage]) -> dict[str, Any]:
    """What the run's tool calls came to: id -> status / agent_guard reason; and the last message."""
    answers = {}
    for m in messages:
        if isinstance(m, ToolMessage):
            info = m.artifact.get("agent_guard") if isinstance(m.artifact, dict) else None
            answers[m.tool_call_id] = [m.status, info.get("reason") if isinstance(info, dict) else None]
    return {"answers": answers, "last": str(messages[-1].content)}


EXPECTED = {
    "c1": ["success", None],
    "e1": ["success", None],
    "c2": ["error", "budget_exhausted"],
    "r1": ["error", "tool_not_in_scope"],
}
