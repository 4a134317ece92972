"""Plain JSON values: the only values a decision is made on, and the limits that bound the work.

A value a tool receives is decided on only when it is *plain JSON*: an exact ``dict`` (string
keys), ``list``, ``str``, ``int``, ``float`` (finite), ``bool`` or ``None``, checked with
``type(v) is ...`` so that a subclass (a ``str`` with a lying ``__len__``, an ``int`` with its own
comparisons, a ``list`` subclass, a tuple) is never trusted. Containers are bounded in depth,
items and total size, so the work of every decision is bounded too.

Operands (the trusted side: policies and plans) are canonicalized here once, at load: tuples
become lists, subclasses of the JSON scalars become the exact type, and numbers are bounded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from agent_guard.exceptions import ConfigError

__all__ = [
    "MAX_MATCH_INPUT",
    "MAX_OPERAND_DEPTH",
    "MAX_OPERAND_NUMBER",
    "MAX_SAFE_NUMBER",
    "MAX_VALUE_DEPTH",
    "MAX_VALUE_ITEMS",
    "MAX_VALUE_SIZE",
    "SCALAR_TYPES",
    "in_safe_range",
    "is_number",
    "is_plain",
    "json_operand",
    "strict_equal",
]

MAX_MATCH_INPUT: Final = 10_000
"""Longest string the text operators (glob, regex, host_in, path_prefix, email_domain_in) look at."""
MAX_VALUE_ITEMS: Final = 1_000
"""Most elements in one value under a narrowed argument: list items and object members, all levels together.

It bounds ``each`` (a list of 1,000 items, or 10 lists of 100) and every walk over a value.
"""
MAX_VALUE_DEPTH: Final = 32
"""Deepest nesting of lists and objects in a value under a narrowed argument."""
MAX_VALUE_SIZE: Final = 100_000
"""Largest list or object value: the length of every string and key in it, plus one per element."""
MAX_OPERAND_DEPTH: Final = 32
"""Deepest nesting of a JSON operand (``eq``/``in`` literals) in a policy or plan."""
MAX_OPERAND_NUMBER: Final = 2**64
"""Largest magnitude of a number in an ``eq``/``in`` operand (covers signed and unsigned 64-bit ids)."""
MAX_SAFE_NUMBER: Final = 2**53
"""Largest magnitude ``min``/``max`` operands and values may have (the I-JSON interoperable range).

Beyond it a number is a non-match for ``min``/``max``: ``10**400`` is no amount, and a consumer
that stores numbers as doubles or 64-bit integers would round or wrap it.
"""

SCALAR_TYPES: Final = frozenset({str, int, float, bool, type(None)})
"""The exact types of JSON scalars (``type(v) in SCALAR_TYPES``; no subclass is one)."""


def is_number(value: object) -> bool:
    """True for an exact ``int`` or a finite exact ``float`` (never a bool, never a subclass).

    Huge ints are fine: ``int`` vs ``float`` comparisons in Python are exact and never overflow.
    """
    t = type(value)
    return t is int or (t is float and math.isfinite(value))  # type: ignore[arg-type]


def in_safe_range(value: object) -> bool:
    """True for a number (see :func:`is_number`) within ±:data:`MAX_SAFE_NUMBER`, compared exactly."""
    return is_number(value) and -MAX_SAFE_NUMBER <= value <= MAX_SAFE_NUMBER  # type: ignore[operator]


def is_plain(value: object) -> bool:
    """True when ``value`` is plain JSON within :data:`MAX_VALUE_DEPTH`, ``_ITEMS`` and ``_SIZE``.

    Iterative (no recursion), and it reads containers only through the exact built-in types, so
    no code of the value's own runs.
    """
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return True
    if t is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if t is not list and t is not dict:
        return False
    budget, items_left = MAX_VALUE_SIZE, MAX_VALUE_ITEMS
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        items_left -= len(node)
        if depth > MAX_VALUE_DEPTH or items_left < 0:
            return False
        budget -= len(node)
        items = node if type(node) is list else dict.values(node)
        if type(node) is dict:
            for key in dict.keys(node):
                if type(key) is not str:
                    return False
                budget -= len(key)
        for item in items:
            t = type(item)
            if t is str:
                budget -= len(item)
            elif t is list or t is dict:
                stack.append((item, depth + 1))
            elif t is float:
                if not math.isfinite(item):
                    return False
            elif not (t is int or t is bool or item is None):
                return False
        if budget < 0:
            return False
    return True


def strict_equal(a: object, b: object) -> bool:
    """JSON equality with exact types: ``1``, ``1.0`` and ``True`` differ; a tuple is no list.

    Recurses only as deep as both sides go, so its depth is bounded by the (validated) operand.
    """
    if type(a) is not type(b):
        return False
    if type(a) is list:
        assert type(b) is list
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))  # noqa: B905
    if type(a) is dict:
        assert type(b) is dict
        return len(a) == len(b) and all(k in b and strict_equal(v, b[k]) for k, v in a.items())
    return bool(a == b)


def _scalar(value: object, field: str) -> object:
    if value is None or type(value) is bool:
        return value
    if isinstance(value, bool):  # pragma: no cover - bool cannot be subclassed
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        number = int.__int__(value)
        if abs(number) > MAX_OPERAND_NUMBER:
            raise ConfigError(f"{field}: an integer beyond ±2**64 ({number.bit_length()} bits); use a smaller number")
        return number
    if isinstance(value, float):
        real = float.__float__(value)
        if not math.isfinite(real):
            raise ConfigError(f"{field}: NaN and infinity are not JSON values; use a finite number")
        if abs(real) > MAX_OPERAND_NUMBER:
            raise ConfigError(f"{field}: {real:.3e} is beyond ±2**64; use a smaller number")
        return real
    raise ConfigError(
        f"{field}: {type(value).__name__} is not a JSON value; use str, number, bool, null, list or dict"
    )


def json_operand(value: object, field: str, depth: int = 0) -> Any:
    """A canonical copy of an operand: exact JSON types, tuples as lists, numbers within ±2**64.

    Raises :class:`ConfigError` naming ``field`` for anything that is not JSON, or nested deeper than
    :data:`MAX_OPERAND_DEPTH`.
    """
    if depth > MAX_OPERAND_DEPTH:
        raise ConfigError(f"{field}: nested deeper than {MAX_OPERAND_DEPTH} levels; flatten the value")
    if isinstance(value, (list, tuple)):
        return [json_operand(item, f"{field}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{field}: object keys must be strings")
            out[str.__str__(key)] = json_operand(item, f"{field}.{key}", depth + 1)
        return out
    return _scalar(value, field)
