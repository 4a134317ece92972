"""``guard.wrap``: guard a plain callable, deciding on exactly the arguments it will receive."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from agent_guard.exceptions import ConfigError
from agent_guard.execution._call import ToolCall

__all__ = ["call_arguments", "signature_defaults", "with_defaults", "wrap_callable"]

_F = TypeVar("_F", bound=Callable[..., Any])
ToolCallOpener = Callable[..., ToolCall]
AsyncToolCallOpener = Callable[..., Awaitable[ToolCall]]


def with_defaults(given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments a tool will receive: ``given`` plus every default it applies to what was left out.

    A parameter whose default is ``None`` and whose value is ``None`` (left out, or passed as
    ``None``: the function cannot tell the two apart) counts as absent. Any other default is decided
    as though the caller passed it, so a default outside the ceiling is refused and a parameter with
    a non-``None`` default must be listed in the plan (``{"any": true}`` when it is free). The one
    rule of ``guard.wrap`` and both framework adapters.
    """
    out = {k: v for k, v in given.items() if not (v is None and k in defaults and defaults[k] is None)}
    for name, value in defaults.items():
        if name not in given and value is not None:
            out[name] = value
    return out


def signature_defaults(signature: inspect.Signature) -> dict[str, Any]:
    """``{name: default}`` of the parameters of ``signature`` that have one (``*args``/``**kwargs`` never do)."""
    return {
        name: p.default for name, p in signature.parameters.items()
        if p.default is not inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def call_arguments(signature: inspect.Signature, tool: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``{name: value}`` of every parameter the function will receive, defaults filled in (see :func:`with_defaults`).

    ``**kwargs`` parameters are flattened into the mapping (their names are the names the function
    sees); a ``*args`` parameter appears under its own name as a list. A call the signature cannot
    bind raises :class:`ConfigError` naming the tool (the function would raise ``TypeError``).
    """
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as err:
        raise ConfigError(f"{tool}: {err}") from None
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(cast(Mapping[str, Any], value))
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            out[name] = list(value)
        else:
            out[name] = value
    return with_defaults(out, signature_defaults(signature))


def wrap_callable(
    fn: _F, name: str | None, tool_call: ToolCallOpener, atool_call: AsyncToolCallOpener
) -> _F:
    """Guard ``fn``: decide each call with ``tool_call`` (``atool_call`` for a coroutine function)."""
    if not callable(fn):
        raise ConfigError(f"fn: expected a function to guard, got {type(fn).__name__}")
    tool = name or getattr(fn, "__name__", None)
    if not tool:
        raise ConfigError("name: this callable has no __name__; pass guard.wrap(fn, name='tool_name')")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        raise ConfigError(f"{tool}: its signature cannot be read, so its arguments cannot be checked") from None
    description = (inspect.getdoc(fn) or "").split("\n", 1)[0] or None

    if inspect.iscoroutinefunction(fn):
        afn = cast(Callable[..., Awaitable[Any]], fn)

        @functools.wraps(fn)
        async def aguarded(*args: Any, **kwargs: Any) -> Any:
            arguments = call_arguments(signature, tool, args, kwargs)
            with await atool_call(tool, arguments, description=description) as call:
                call.raise_if_denied()
                result = await afn(*args, **kwargs)
                call.record_result(result)
                return result

        return cast(_F, aguarded)

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        arguments = call_arguments(signature, tool, args, kwargs)
        with tool_call(tool, arguments, description=description) as call:
            call.raise_if_denied()
            result = fn(*args, **kwargs)
            call.record_result(result)
            return result

    return cast(_F, guarded)
