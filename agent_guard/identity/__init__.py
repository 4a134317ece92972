"""The identity layer: who acts (the agent) and for whom (the user, the tenant).

The host application supplies the identity; agent_guard never invents one and holds no
long-lived credential for tools. Every other layer may import this one; it imports none of them.
"""

from __future__ import annotations

from agent_guard.identity._identity import AgentIdentity

__all__ = ["AgentIdentity"]
