"""The arguments a call is decided on: exactly what the wrapped tool's function receives.

A guarded LangChain tool decides inside its ``_run``/``_arun``, after LangChain has validated
and coerced the input with the tool's ``args_schema`` (a ``"5"`` for an ``int`` field arrives as
``5``) and filled in the schema's defaults. The function's own signature defaults then apply to
what is still missing (a custom ``args_schema`` may omit a parameter the function defaults), so
the decision binds the received values to the function's signature, defaults included.

Framework-supplied parameters are not the model's and are left out: ``run_manager``,
``callbacks``, a ``RunnableConfig`` parameter, and injected ones (``InjectedToolArg``,
``InjectedState``, ``InjectedStore``, ``ToolRuntime``, ``InjectedToolCallId``). A plain-JSON value
that the *caller's input* put in an injected parameter is another matter: a model can write one,
and LangChain passes it to the function, so it is decided like any other argument (see
:func:`forged_values`).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from langchain_core.tools import BaseTool, StructuredTool, Tool
from langchain_core.tools.base import FILTERED_ARGS, _get_runnable_config_param

__all__ = ["Target", "decision_args", "forged_values", "injected_keys", "is_plain_json", "target_of"]

_JSON_SCALARS: Final = (str, int, float, bool, type(None))
_INJECTED_CACHE: dict[int, tuple[BaseTool, frozenset[str]]] = {}


def injected_keys(tool: BaseTool) -> frozenset[str]:
    """Argument names the framework supplies to ``tool`` (state, runtime, store, call id, callbacks, ...).

    Computed once per tool with the tool's own ``_filter_injected_args``.
    """
    hit = _INJECTED_CACHE.get(id(tool))
    if hit is not None and hit[0] is tool:
        return hit[1]
    names: set[str] = set(FILTERED_ARGS)
    names.update(getattr(tool, "_injected_args_keys", ()))
    with contextlib.suppress(Exception):  # an unusual schema: fall back to the known names
        names.update(getattr(tool.get_input_schema(), "model_fields", {}))
    keys = frozenset(names - set(tool._filter_injected_args(dict.fromkeys(names))))
    if len(_INJECTED_CACHE) > 4096:
        _INJECTED_CACHE.clear()
    _INJECTED_CACHE[id(tool)] = (tool, keys)
    return keys


def is_plain_json(value: object) -> bool:
    """True when ``value`` is made only of what a JSON parser returns (dict with str keys, list, scalars).

    A model's tool-call arguments are always plain JSON; a ``ToolRuntime``, a store or a graph
    state holding message objects never is. Iterative, so a deep value cannot exhaust the stack.
    """
    stack: list[object] = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        kind = type(item)
        if kind in _JSON_SCALARS:
            continue
        if kind is list:
            stack.extend(cast("list[object]", item))
        elif kind is dict:
            for key, child in cast("dict[object, object]", item).items():
                if type(key) is not str:
                    return False
                stack.append(child)
        else:
            return False
        if seen > 100_000:  # a value this large is no framework object either: treat it as the model's
            return True
    return True


def forged_values(tool_input: Mapping[str, Any], injectable: frozenset[str]) -> dict[str, Any] | None:
    """The caller's plain-JSON values for ``tool``'s injected parameters (``None`` when there are none).

    Such a value reaches the function unchanged (LangChain's ``_parse_input`` passes injected keys
    through), and it may be the model's: it is decided like a model argument.
    """
    if injectable.isdisjoint(tool_input):
        return None
    found = {k: v for k, v in tool_input.items() if k in injectable and is_plain_json(v)}
    return found or None


@dataclass(frozen=True)
class Target:
    """The function a tool call ends in, as the decision needs it (built once per tool and sync/async path)."""

    signature: inspect.Signature | None
    """Its signature (``None`` when it cannot be read: the decision then uses the validated input as is)."""
    defaults: tuple[tuple[str, Any], ...]
    """``(name, default)`` of each named parameter with a default."""
    skip: frozenset[str]
    """Framework-supplied names, never part of a decision."""
    single: str
    """The name a positional (string) input is decided under when the signature cannot bind it."""
    run_kwargs: tuple[bool, str | None]
    """Whether the tool's ``_run``/``_arun`` takes ``run_manager``, and its ``RunnableConfig`` parameter."""
    none_defaults: frozenset[str] = frozenset()
    """Parameters whose default is ``None``: a ``None`` there counts as absent."""


def _function(tool: BaseTool, is_async: bool) -> Callable[..., Any] | None:
    """The callable that receives the arguments: ``func``/``coroutine``, else ``_run``/``_arun``."""
    if isinstance(tool, (StructuredTool, Tool)):
        return (tool.coroutine or tool.func) if is_async else tool.func
    if is_async and type(tool)._arun is not BaseTool._arun:
        return tool._arun
    return tool._run


def _runner(tool: BaseTool, is_async: bool) -> Callable[..., Any]:
    """What LangChain inspects to pass ``run_manager``/``config`` (as ``BaseTool.run``/``arun`` do)."""
    if is_async and type(tool)._arun is not BaseTool._arun:
        return tool._arun
    return tool._run


def target_of(tool: BaseTool, is_async: bool) -> Target:
    """The :class:`Target` of ``tool`` on the sync or async path."""
    fn = _function(tool, is_async)
    runner = _runner(tool, is_async)
    try:
        run_params = inspect.signature(runner).parameters
        run_kwargs = ("run_manager" in run_params, _get_runnable_config_param(runner))
    except (TypeError, ValueError):  # pragma: no cover - LangChain could not call it either
        run_kwargs = (False, None)
    skip = set(FILTERED_ARGS) | injected_keys(tool)
    names = list(tool.args)
    single = names[0] if len(names) == 1 else "input"
    signature = None
    defaults: tuple[tuple[str, Any], ...] = ()
    if fn is not None:
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None
        else:
            config_param = _get_runnable_config_param(fn)
            if config_param:
                skip.add(config_param)
            defaults = tuple(
                (p.name, p.default) for p in signature.parameters.values()
                if p.default is not p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            )
    none_defaults = frozenset(name for name, default in defaults if default is None)
    for name, field in getattr(tool.get_input_schema(), "model_fields", {}).items():
        if not field.is_required() and field.default is None:
            none_defaults |= {name}
    return Target(signature, defaults, frozenset(skip), single, run_kwargs, none_defaults)


def _bound(target: Target, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``{name: value}`` of positional (string) input bound to the signature, defaults filled in."""
    if target.signature is None:
        return {target.single: args[0]} if len(args) == 1 else {"input": list(args)}
    try:
        bound = target.signature.bind_partial(*args, **kwargs)
    except TypeError:  # the function would refuse the call too: decide on what it was given
        return {target.single: args[0], **kwargs} if len(args) == 1 else {"input": list(args), **kwargs}
    bound.apply_defaults()
    out: dict[str, Any] = {}
    params = target.signature.parameters
    for name, value in bound.arguments.items():
        kind = params[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            out[name] = list(value)
        else:
            out[name] = value
    return out


def decision_args(
    target: Target, args: tuple[Any, ...], kwargs: Mapping[str, Any], forged: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The arguments to decide on: what the function receives, without framework-supplied names.

    ``args``/``kwargs`` are what LangChain passes the tool's ``_run`` (validated input; a string
    input is positional). ``forged`` are the caller's plain-JSON values for injected parameters
    (see :func:`forged_values`): decided, with the value the function receives when it gets one.
    """
    if args:
        received = _bound(target, args, kwargs)
    else:  # the common case: keyword arguments only; the function's defaults fill what is missing
        received = dict(kwargs)
        for name, default in target.defaults:
            if name not in received:
                received[name] = default
    skip = target.skip
    out = received if skip.isdisjoint(received) else {k: v for k, v in received.items() if k not in skip}
    if forged:
        for name, value in forged.items():
            out[name] = kwargs.get(name, value)
    if target.none_defaults and not target.none_defaults.isdisjoint(out):
        # None where the default is None counts as absent: the rule of guard.wrap and both adapters
        out = {k: v for k, v in out.items() if not (v is None and k in target.none_defaults)}
    return out
