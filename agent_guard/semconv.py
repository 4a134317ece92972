"""Span names, attribute keys and event names agent_guard emits (one place, plain strings).

The ``gen_ai.*`` names follow the OpenTelemetry GenAI conventions (Development stability);
authorization facts live in the private ``agent_guard.*`` namespace.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGENT_ID",
    "AUDIT_HEAD",
    "AGENT_NAME",
    "CONVERSATION_ID",
    "DECISION_LIMIT",
    "DECISION_OUTCOME",
    "DECISION_REASON",
    "ENDUSER_ID",
    "ERROR_TYPE",
    "EVENT_GRANT_ISSUED",
    "EVENT_GRANT_REVOKED",
    "GRANT_EXPIRES_AT",
    "GRANT_ID",
    "GRANT_REVOCATION_REASON",
    "GRANT_TOOLS",
    "METRIC_DECISIONS",
    "METRIC_GRANTS_ISSUED",
    "METRIC_GRANTS_REVOKED",
    "METRIC_TOOL_DURATION",
    "OPERATION_NAME",
    "PLAN_STEP",
    "TASK_ID",
    "TOOL_CALL_ARGUMENTS",
    "TOOL_CALL_ID",
    "TOOL_CALL_RESULT",
    "TOOL_DESCRIPTION",
    "TOOL_ERROR_TYPE",
    "TOOL_NAME",
    "TOOL_TYPE",
    "execute_tool_span_name",
    "invoke_agent_span_name",
    "OPENINFERENCE_SPAN_KIND",
    "OPENINFERENCE_KIND_AGENT",
    "OPENINFERENCE_KIND_TOOL",
]

OPERATION_NAME: Final = "gen_ai.operation.name"
"""``execute_tool`` on tool spans, ``invoke_agent`` on task spans."""
TOOL_NAME: Final = "gen_ai.tool.name"
"""Name of the tool the call targets."""
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
"""Tool call id given by the model or framework, when there is one."""
TOOL_TYPE: Final = "gen_ai.tool.type"
"""Always ``function`` for agent_guard."""
TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
"""Tool description, when an adapter knows it."""
TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
"""JSON of the arguments; only with ``record_arguments=True`` (customer data)."""
TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
"""JSON of the result; only with ``record_arguments=True`` (customer data)."""
AGENT_ID: Final = "gen_ai.agent.id"
"""The agent's id (``AgentIdentity.agent_id``)."""
AGENT_NAME: Final = "gen_ai.agent.name"
"""The agent's name (same as its id unless the host says otherwise)."""
CONVERSATION_ID: Final = "gen_ai.conversation.id"
"""Conversation or thread id, when the host supplies one."""
ENDUSER_ID: Final = "enduser.id"
"""The user the grant was issued for.

``enduser.id`` is current (Development): the conventions deprecated it for ``user.id`` in v1.26.0
and undeprecated it in v1.31.0; ``user.id`` names an account of the system (e.g. an OS user), not
the end user an application acts for.
"""
ERROR_TYPE: Final = "error.type"
"""On a denial: ``agent_guard.ToolCallDenied``; on a tool failure: the exception's class."""
TOOL_ERROR_TYPE: Final = "agent_guard.ToolError"
"""``error.type`` of an allowed call whose tool answered with an error value instead of raising."""

DECISION_OUTCOME: Final = "agent_guard.decision.outcome"
"""``allow`` or ``deny``; ``would_deny`` in shadow mode (the call ran, enforcement would have refused it)."""
DECISION_REASON: Final = "agent_guard.decision.reason"
"""The reason code of a denial (see :mod:`agent_guard.reasons`)."""
GRANT_ID: Final = "agent_guard.grant.id"
"""The grant's ``jti``."""
TASK_ID: Final = "agent_guard.task.id"
"""The task (run) id, the grant's ``txn``."""
PLAN_STEP: Final = "agent_guard.plan.step"
"""Index of the plan step the call was matched to."""
GRANT_TOOLS: Final = "agent_guard.grant.tools"
"""Tools the grant covers (on grant events)."""
GRANT_EXPIRES_AT: Final = "agent_guard.grant.expires_at"
"""RFC 3339 UTC expiry of the grant (on grant events)."""
GRANT_REVOCATION_REASON: Final = "agent_guard.grant.revocation.reason"
"""``plan_completed``, ``task_exit``, ``expired``, ``replanned`` or ``manual``."""
AUDIT_HEAD: Final = "agent_guard.audit.head"
"""``SEQ:HASH`` of the decision log's last record when a task closes (``DecisionLog.head``).

Kept outside the agent's host, it lets ``agent-guard audit verify --expect-head`` find a log that
was cut short or emptied."""

METRIC_DECISIONS: Final = "agent_guard.decisions"
"""Counter of decisions, by outcome, reason (denials only) and tool."""
METRIC_TOOL_DURATION: Final = "gen_ai.execute_tool.duration"
"""Histogram (seconds) of allowed tool calls' run time: the GenAI conventions' tool-execution metric."""
METRIC_GRANTS_ISSUED: Final = "agent_guard.grants.issued"
"""Counter of grants minted."""
METRIC_GRANTS_REVOKED: Final = "agent_guard.grants.revoked"
"""Counter of grants revoked, by revocation reason."""

EVENT_GRANT_ISSUED: Final = "agent_guard.grant.issued"
"""Span event when a grant is minted or attached."""
EVENT_GRANT_REVOKED: Final = "agent_guard.grant.revoked"
"""Span event when a grant is revoked."""


def execute_tool_span_name(tool: str) -> str:
    """Span name of a tool-call decision: ``execute_tool {tool}``."""
    return f"execute_tool {tool}"


def invoke_agent_span_name(agent: str) -> str:
    """Span name of a task: ``invoke_agent {agent}``."""
    return f"invoke_agent {agent}"


# -- OpenInference (Arize Phoenix) ------------------------------------------------------------
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
"""OpenInference's span role, which Phoenix uses to render a trace (distinct from the OTel SpanKind)."""
OPENINFERENCE_KIND_AGENT: Final = "AGENT"
"""``openinference.span.kind`` of a task span (``invoke_agent``): one agent run acting on tools."""
OPENINFERENCE_KIND_TOOL: Final = "TOOL"
"""``openinference.span.kind`` of a decision span (``execute_tool``): the guarded tool call.

Under a framework's own instrumentation (OpenInference's LangChain or LlamaIndex tracer) the
decision span is a child of the framework's ``TOOL`` span of the same call.
"""


# -- limits over time and money ----------------------------------------------------------------
DECISION_LIMIT: Final = "agent_guard.decision.limit"
"""On a ``limit_exceeded`` refusal (or would-deny): the limit's name, ``transfer: sum_of amount per user per 86400 s``."""
