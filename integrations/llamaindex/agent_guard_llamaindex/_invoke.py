"""Call a wrapped tool without a second LlamaIndex instrumentation span.

LlamaIndex wraps every tool's ``call``/``acall`` in an instrumentation span (OpenInference makes
it the ``TOOL`` span). The guarded tool's own ``call``/``acall`` carry that span, so every call,
allowed or refused, has exactly one and the guard's decision span is its child. The wrapped tool
is called through its undecorated method; anything the tool itself instruments inside (an LLM, a
retriever) still nests under the guarded call's span.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from types import FunctionType
from typing import Any

from llama_index.core.tools import AsyncBaseTool, BaseTool, ToolOutput
from llama_index_instrumentation.dispatcher import DISPATCHER_SPAN_DECORATED_ATTR

__all__ = ["async_runner", "sync_runner"]


def _unspanned(tool: BaseTool, method: str) -> Callable[..., Any]:
    """``tool.<method>`` bound, minus the dispatcher's span wrapper when it has one."""
    attribute = getattr(type(tool), method)
    # The dispatcher's span decorator is a wrapt proxy (it even passes isinstance(FunctionType),
    # hence type()); the function it wraps is one level in.
    if hasattr(attribute, DISPATCHER_SPAN_DECORATED_ATTR) and type(attribute) is not FunctionType:
        raw = inspect.unwrap(attribute, stop=lambda f: f is not attribute)
        if type(raw) is FunctionType:
            return functools.partial(raw, tool)
    bound: Callable[..., Any] = getattr(tool, method)
    return bound


def sync_runner(tool: BaseTool) -> Callable[..., ToolOutput]:
    """Run ``tool`` synchronously with keyword arguments."""
    return _unspanned(tool, "call" if isinstance(tool, AsyncBaseTool) else "__call__")


def async_runner(tool: BaseTool) -> Callable[..., Awaitable[ToolOutput]]:
    """Run ``tool`` on the async path with keyword arguments (a sync-only tool in a worker thread)."""
    if isinstance(tool, AsyncBaseTool):
        return _unspanned(tool, "acall")
    run = sync_runner(tool)

    async def in_thread(**kwargs: Any) -> ToolOutput:
        return await asyncio.to_thread(run, **kwargs)  # copies the context: the task stays current

    return in_thread
