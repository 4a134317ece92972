"""The framework's own span, when an instrumentor traces LangChain: where the guard's spans belong.

OpenInference's ``LangChainInstrumentor`` starts a span per LangChain run from callbacks and keeps
it in its own run map: it never makes it the current OpenTelemetry span, so a span started "under
the current span" inside a node or a tool would land in a trace of its own. Its public helpers
``get_current_span()`` / ``get_ancestor_spans()`` find the span of the run being executed (read
from LangChain's run config); the adapter makes that span the parent of the guard's spans with
:class:`agent_guard.execution.under_span`. Without the instrumentor (the module not imported, or
not instrumented) both functions return ``None`` and nothing changes.
"""

from __future__ import annotations

import sys
from typing import Any, Final

__all__ = ["framework_parent_span", "framework_span"]

_OPENINFERENCE: Final = "openinference.instrumentation.langchain"


def _openinference() -> Any:
    """The OpenInference LangChain module when it is imported and instrumenting, else ``None``."""
    module = sys.modules.get(_OPENINFERENCE)
    if module is None:
        return None
    try:
        if not module.LangChainInstrumentor().is_instrumented_by_opentelemetry:
            return None
    except Exception:  # an incompatible version: tracing must never break a tool call
        return None
    return module


def framework_span() -> Any:
    """The instrumentor's span of the LangChain run executing now (a tool's ``TOOL`` span inside the tool)."""
    module = _openinference()
    if module is None:
        return None
    try:
        return module.get_current_span()
    except Exception:
        return None


def framework_parent_span() -> Any:
    """The span of the run that contains the current one (in a graph node: the graph's span), else the current."""
    module = _openinference()
    if module is None:
        return None
    try:
        ancestors = module.get_ancestor_spans()
        return ancestors[0] if ancestors else module.get_current_span()
    except Exception:
        return None
