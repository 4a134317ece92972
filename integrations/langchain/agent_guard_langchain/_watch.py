"""Close a run's grant when the graph run executing it ends without ``after_agent``.

A consumer that breaks out of ``agent.stream(...)`` (a client disconnect), a cancelled
``ainvoke``, or an exception in another node ends the graph run before the middleware's
``after_agent``; a graph paused by ``interrupt()`` ends the same way. LangGraph reports the end of
the graph run to the run's callback handlers: ``on_chain_end`` (finished or paused) and
``on_chain_error`` (``GeneratorExit`` when a stream is closed, ``CancelledError`` when cancelled,
the exception otherwise). :class:`RunWatcher` is such a handler; ``mw.watch(agent)`` binds it to
the compiled agent (``agent.with_config(callbacks=[...])``), so every invoke/stream of that agent
carries it.

It follows the parent links of the chain runs it sees, so a hook of the middleware (inside a node
run) can tell which graph run executes it (:meth:`RunWatcher.root_of`). When that graph run ends:

- with an error (abandoned, cancelled, failed): the run's task is closed -- grant revoked in the
  store, ``invoke_agent`` span ended (reason ``abandoned``, ``cancelled`` or ``failed``);
- paused (``interrupt()``), or finished while the task is still open: the task is released -- its
  span ends, its grant stays active in the store until its expiry so that a resume continues with
  the exact budget left (a resume mints a successor grant, see :mod:`._resolve`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langgraph.errors import GraphBubbleUp

from agent_guard import Guard
from agent_guard_langchain._runs import RunRegistry

__all__ = ["RunWatcher"]

_log = logging.getLogger("agent_guard")
_MAX_TRACKED = 100_000


def _reason(error: BaseException) -> str:
    if isinstance(error, GeneratorExit):
        return "abandoned"
    if isinstance(error, (asyncio.CancelledError, KeyboardInterrupt)):
        return "cancelled"
    return "failed"


class RunWatcher(BaseCallbackHandler):
    """A callback handler that ends the grants of graph runs that stop before ``after_agent``."""

    run_inline = True
    raise_error = False
    ignore_llm = True
    ignore_agent = True
    ignore_retriever = True
    ignore_chat_model = True
    ignore_custom_event = True

    def __init__(self, guard: Guard, registry: RunRegistry) -> None:
        self.guard = guard
        self.registry = registry
        self._parents: dict[UUID, UUID | None] = {}
        self._lock = threading.Lock()

    def root_of(self, run_id: UUID | None) -> UUID | None:
        """The outermost run this watcher saw start above ``run_id`` (``None`` when it saw none of them)."""
        root = None
        with self._lock:
            seen: set[UUID] = set()
            while run_id is not None and run_id in self._parents and run_id not in seen:
                seen.add(run_id)
                root = run_id
                run_id = self._parents[run_id]
        return root

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                       **kwargs: Any) -> None:
        """Remember the run's parent."""
        with self._lock:
            if len(self._parents) < _MAX_TRACKED:
                self._parents[run_id] = parent_run_id

    def on_chain_end(self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        """A run finished (or a graph paused): release what its graph run left open."""
        self._ended(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None,
                       **kwargs: Any) -> None:
        """A run failed, was cancelled or abandoned: close what its graph run left open."""
        self._ended(run_id, error)

    def _ended(self, run_id: UUID, error: BaseException | None) -> None:
        with self._lock:
            self._parents.pop(run_id, None)
        for entry in self.registry.attached_to(run_id):
            entry.root = None
            task = entry.current()
            if task.closed:
                continue
            try:
                if error is None or isinstance(error, GraphBubbleUp):
                    self.guard.release(task)  # paused: the grant lives on for the resume, the span ends
                else:
                    self.registry.forget(entry.key)
                    self.guard.close(entry.task, _reason(error))
            except Exception:  # a watcher must never break the run's own error handling
                _log.exception("agent_guard: could not end the grant of a run that stopped")
