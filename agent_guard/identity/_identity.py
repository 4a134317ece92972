"""Who acts and for whom: supplied by the host application, never invented by agent_guard."""

from __future__ import annotations

from pydantic import Field

from agent_guard._frozen import Frozen

__all__ = ["AgentIdentity"]


class AgentIdentity(Frozen):
    """Who acts and for whom. Supplied by the host application; agent_guard never invents it."""

    agent_id: str = Field(min_length=1, description="The agent's stable id (must match its policy).")
    user_id: str | None = Field(default=None, description="The user the agent acts for, if any.")
    tenant: str | None = Field(default=None, description="Tenant or organisation, if any.")

    @property
    def subject(self) -> str:
        """The grant's ``sub``: the user, or the agent itself when it acts for no one."""
        return self.user_id or self.agent_id
