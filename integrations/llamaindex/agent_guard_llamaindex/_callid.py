"""Expose the agent's tool-call id to guarded tools.

LlamaIndex's agents do not pass the model's tool-call id to ``tool.acall``. Every workflow step
runs inside an instrumentation span whose bound arguments include the step's input event, and the
span handler is entered in the same execution context as the step body. A span handler that sees
a ``ToolCall`` event sets a ContextVar for the duration of that step, so the guarded tool can
read the id (``gen_ai.tool.call.id``) without touching any private agent API.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import threading
from typing import Any

from llama_index.core.agent.workflow.workflow_events import ToolCall
from llama_index_instrumentation import get_dispatcher
from llama_index_instrumentation.span.base import BaseSpan
from llama_index_instrumentation.span_handlers.base import BaseSpanHandler
from pydantic import PrivateAttr

__all__ = ["current_tool_call", "install_call_id_handler"]

_CALL: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar(
    "agent_guard_llamaindex_tool_call", default=None
)
_install_lock = threading.Lock()


def current_tool_call() -> tuple[str, str | None] | None:
    """``(tool_name, tool_id)`` of the agent step running in this context, if any."""
    return _CALL.get()


class _ToolCallIdHandler(BaseSpanHandler[BaseSpan]):
    """Sets the current tool call while a step handling a ``ToolCall`` event runs."""

    _tokens: dict[str, contextvars.Token[tuple[str, str | None] | None]] = PrivateAttr(default_factory=dict)

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "AgentGuardToolCallIdHandler"

    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the tool call of a step that receives a ``ToolCall`` event."""
        for value in bound_args.arguments.values():
            if isinstance(value, ToolCall):
                self._tokens[id_] = _CALL.set((value.tool_name, value.tool_id))
                return

    def _reset(self, id_: str) -> None:
        token = self._tokens.pop(id_, None)
        if token is not None:
            with contextlib.suppress(ValueError):  # another context: it ends with the step anyway
                _CALL.reset(token)

    def span_exit(self, id_: str, *args: Any, **kwargs: Any) -> None:
        """Forget the tool call when its step ends."""
        self._reset(id_)

    def span_drop(self, id_: str, *args: Any, **kwargs: Any) -> None:
        """Forget the tool call when its step fails."""
        self._reset(id_)

    def new_span(self, *args: Any, **kwargs: Any) -> BaseSpan | None:
        """No spans of our own."""
        return None

    def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> BaseSpan | None:
        """No spans of our own."""
        return None

    def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> BaseSpan | None:
        """No spans of our own."""
        return None


def install_call_id_handler() -> None:
    """Register the handler on the root instrumentation dispatcher (once per process)."""
    root = get_dispatcher()
    with _install_lock:
        if not any(isinstance(h, _ToolCallIdHandler) for h in root.span_handlers):
            root.add_span_handler(_ToolCallIdHandler())
