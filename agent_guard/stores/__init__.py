"""Grant stores: where active runs, revocation and call budgets live.

- :class:`InMemoryGrantStore`: the embedded default (one process, nothing to start).
- :class:`RedisGrantStore`: shared by many workers (``pip install 'agent-guard[redis]'``); importing
  it without the ``redis`` package raises :class:`~agent_guard.MissingDependencyError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_guard.stores._base import ConsumeResult, GrantStore
from agent_guard.stores._memory import InMemoryGrantStore

if TYPE_CHECKING:
    from agent_guard.stores._redis import RedisGrantStore

__all__ = ["ConsumeResult", "GrantStore", "InMemoryGrantStore", "RedisGrantStore"]


def __getattr__(name: str) -> Any:
    """Import :class:`RedisGrantStore` on first use, so the ``redis`` package stays optional."""
    if name == "RedisGrantStore":
        from agent_guard.stores._redis import RedisGrantStore

        return RedisGrantStore
    raise AttributeError(f"module 'agent_guard.stores' has no attribute {name!r}")
