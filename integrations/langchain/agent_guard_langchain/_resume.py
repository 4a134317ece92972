"""Tool calls paused by ``interrupt()`` inside the tool, so their resumed run is not decided twice."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from agent_guard import Task

__all__ = ["RESUMABLE"]


class _Resumable:
    """Calls that were allowed and then paused by ``interrupt()`` inside the tool.

    On resume LangGraph runs the tool call again; it must not be decided (and charged) twice.
    Keyed by (run key, tool call id): the run key is the middleware's run record key (it survives
    a grant minted again for the same run) or the task id. The tool name and arguments must match
    exactly, and the current task must still be live (or completed by this very call).
    """

    def __init__(self, limit: int = 4096) -> None:
        self._calls: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def remember(self, scope: str | None, call_id: str | None, tool: str, args: Mapping[str, Any]) -> None:
        """Remember an allowed call that paused (its re-run is the same call)."""
        if not scope or not call_id:
            return
        with self._lock:
            self._calls[(scope, call_id)] = (tool, repr(sorted(args.items())))
            while len(self._calls) > self._limit:
                self._calls.popitem(last=False)

    def resume(
        self, scope: str | None, task: Task | None, call_id: str | None, tool: str, args: Mapping[str, Any]
    ) -> bool:
        """True (once) when this exact call was allowed before an interrupt and the run's grant is still live."""
        if not self._calls or task is None or not scope or not call_id:  # the per-call path: nothing paused
            return False
        with self._lock:
            seen = self._calls.pop((scope, call_id), None)
        if seen != (tool, repr(sorted(args.items()))):
            return False
        # A grant whose plan completed *with* this call still covers it; any other revocation does not.
        live = task.revocation_reason in (None, "plan_completed")
        return live and task.clock() < task.expires_at


RESUMABLE = _Resumable()
