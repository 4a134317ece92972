"""What a wrapped tool will receive: the model's arguments with the tool's own defaults filled in.

A guarded call is decided on exactly this mapping, and the wrapped tool is then called with
exactly this mapping (every default passed explicitly), so no value reaches the tool unchecked:
``transfer(to="acct-1")`` is decided as ``{"to": "acct-1", "amount": 10000}`` when ``amount``
defaults to 10000. As in ``guard.wrap``, a parameter whose default is ``None`` counts as absent while
its value is ``None`` (the tool gets its ``None`` all the same).

For a ``FunctionTool`` the mapping is what its function will be bound to. ``FunctionTool.call`` /
``acall`` (llama-index-core 0.14) neither validate nor coerce against ``fn_schema``: they call
the function with ``{**pydantic Field defaults, **partial_params, **model kwargs}``, and Python
fills in the signature's other defaults. Any other tool gets the ``fn_schema`` field defaults
for the arguments the model left out.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

from llama_index.core.tools import BaseTool, FunctionTool
from llama_index.core.tools.function_tool import async_to_sync, sync_to_async
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from agent_guard import ConfigError

__all__ = ["ToolInput"]


def _sync_probe() -> None:
    return None


async def _async_probe() -> None:
    return None


_GENERATED: Final = frozenset(
    getattr(fn, "__code__", None) for fn in (sync_to_async(_sync_probe), async_to_sync(_async_probe))
)
"""The code of the sync/async shims FunctionTool generates around a function given only one way."""
_SHOWN: Final = 3


def _runs_function_tool_call(tool: BaseTool) -> bool:
    """True when ``tool.call`` and ``tool.acall`` are FunctionTool's own (so its contract holds)."""
    if not isinstance(tool, FunctionTool):
        return False
    for name in ("call", "acall"):
        owner = next(cls for cls in type(tool).__mro__ if name in vars(cls))
        if owner is not FunctionTool:
            return False
    return True


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n)[:40] for n in names[:_SHOWN])  # model-chosen names: repr escapes controls
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


class _Binding:
    """One function's parameters (without the ``Context`` one) and how a call binds to them."""

    __slots__ = ("defaults", "keywords", "none_defaults", "plain", "required", "signature", "var_keyword")

    def __init__(self, fn: Callable[..., Any], ctx_name: str | None, tool: str) -> None:
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            raise ConfigError(
                f"tools: {tool!r}: its function's signature cannot be read, so the arguments it would receive "
                "cannot be checked; wrap a Python function (FunctionTool.from_defaults(fn))"
            ) from None
        self.signature = signature.replace(
            parameters=[p for p in signature.parameters.values() if p.name != ctx_name]
        )
        params = self.signature.parameters.values()
        self.var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        self.plain = all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)
        """Keyword-bindable parameters only (no ``*args``/``**kwargs``/positional-only): the fast path applies."""
        self.keywords = frozenset(p.name for p in params)
        self.required = frozenset(
            p.name for p in params if p.default is p.empty or (isinstance(p.default, FieldInfo) and p.default.is_required())
        )
        self.defaults = {
            p.name: p.default for p in params
            if p.default is not p.empty and p.default is not None and not isinstance(p.default, FieldInfo)
        }
        self.none_defaults = frozenset(p.name for p in params if p.default is None)

    def problem(self, kwargs: Mapping[str, Any]) -> str:
        """Why ``kwargs`` cannot be bound, naming the arguments (never their values)."""
        params = self.signature.parameters
        keyword = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        parts = []
        unexpected = [n for n in kwargs if n not in keyword and not (self.var_keyword and n not in params)]
        if unexpected:
            parts.append(f"unexpected {_names(unexpected)}")
        missing = [n for n, p in params.items() if n in keyword and p.default is p.empty and n not in kwargs]
        if missing:
            parts.append(f"missing {_names(missing)}")
        return "; ".join(parts) or "the arguments do not fit its parameters"

    def bind(self, tool: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``{name: value}`` the function will be bound to, defaults filled in; ``TypeError`` if none."""
        names = kwargs.keys()
        if self.plain and names <= self.keywords and self.required <= names:  # the common case, no binder
            fast = {n: v for n, v in self.defaults.items() if n not in kwargs}
            for name, value in kwargs.items():
                if not (value is None and name in self.none_defaults):
                    fast[name] = value
            return fast
        try:
            bound = self.signature.bind(**kwargs)
        except TypeError:
            raise TypeError(f"{tool}: the call does not fit the tool's parameters ({self.problem(kwargs)}); "
                            "nothing ran") from None
        bound.apply_defaults()
        out: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            if value is None and self.signature.parameters[name].default is None:
                continue  # None where the default is None counts as absent (agent_guard's rule)
            if kind is inspect.Parameter.VAR_KEYWORD:
                out.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                continue  # the tool is called by keyword only: always empty
            elif isinstance(value, FieldInfo):  # a required pydantic Field the model left out
                raise TypeError(f"{tool}: the call does not fit the tool's parameters (missing {_names([name])}); "
                                "nothing ran")
            else:
                out[name] = value
        return out


class ToolInput:
    """Turns the model's keyword arguments into exactly what a wrapped tool receives.

    :meth:`resolve` returns the full mapping (defaults included) that the guard decides on and
    that the tool is then called with. A call that cannot be bound to a ``FunctionTool``'s
    function (an unknown argument, a missing required one) raises ``TypeError`` before any
    decision, as the function itself would: it could never run.
    """

    __slots__ = ("_async", "_fixed", "_schema", "_sync", "name")

    def __init__(self, tool: BaseTool, name: str, ctx_name: str | None) -> None:
        self.name = name
        self._sync: _Binding | None = None
        self._async: _Binding | None = None
        self._fixed: dict[str, Any] = {}
        self._schema: dict[str, FieldInfo] = {}
        if _runs_function_tool_call(tool):
            assert isinstance(tool, FunctionTool)
            real = tool.real_fn
            self._sync = _Binding(self._target(tool.fn, real), ctx_name, name)
            self._async = _Binding(self._target(tool.async_fn, real), ctx_name, name)
            # What FunctionTool merges under the model's kwargs: pydantic Field defaults of its
            # function's signature (evaluated once, as FunctionTool does), then partial_params.
            defaults = {
                p.name: p.default.get_default(call_default_factory=True)
                for p in inspect.signature(real).parameters.values()
                if isinstance(p.default, FieldInfo) and not p.default.is_required()
            }
            self._fixed = {**defaults, **tool.partial_params}
        else:
            schema = tool.metadata.fn_schema
            if isinstance(schema, type) and issubclass(schema, BaseModel):
                self._schema = {n: f for n, f in schema.model_fields.items() if not f.is_required()}

    @staticmethod
    def _target(fn: Callable[..., Any], real: Callable[..., Any]) -> Callable[..., Any]:
        """The function a path really runs: ``real`` behind FunctionTool's generated shims."""
        return real if getattr(fn, "__code__", None) in _GENERATED else fn

    def resolve(self, kwargs: dict[str, Any], *, is_async: bool) -> dict[str, Any]:
        """Every argument the tool will receive on the sync or async path, by name."""
        binding = self._async if is_async else self._sync
        if binding is not None:
            return binding.bind(self.name, {**self._fixed, **kwargs})
        missing = {n: f.get_default(call_default_factory=True) for n, f in self._schema.items() if n not in kwargs}
        out = {**{n: v for n, v in missing.items() if v is not None}, **kwargs}
        none_default = {n for n, f in self._schema.items() if f.get_default(call_default_factory=True) is None}
        return {k: v for k, v in out.items() if not (v is None and k in none_default)}
