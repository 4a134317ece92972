"""The constraint vocabulary: validation of specs and compilation into plain predicates.

A constraint spec is a JSON object whose keys are operators, all of which must hold::

    {"email_domain_in": ["example.com"], "max_len": 200}

A non-object value is a literal and means ``{"eq": value}``. Predicates fail closed: a value that
is not plain JSON (exact built-in types, within the limits of :mod:`._values`) or of the wrong
type is a non-match (no coercion; a tuple is not a list), and a spec the compiler cannot read
makes the whole predicate refuse every value. Every operator runs in time linear in its input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from agent_guard.authorization._hosts import canonical_host, compile_email_domain_in, compile_host_in
from agent_guard.authorization._patterns import MAX_REGEX_LEN, MAX_REGEX_PROGRAM, compile_glob, compile_regex
from agent_guard.authorization._values import (
    MAX_MATCH_INPUT,
    MAX_SAFE_NUMBER,
    MAX_VALUE_ITEMS,
    SCALAR_TYPES,
    in_safe_range,
    is_plain,
    json_operand,
    strict_equal,
)
from agent_guard.exceptions import ConfigError

__all__ = [
    "MAX_EACH_DEPTH",
    "MAX_MATCH_INPUT",
    "MAX_REGEX_LEN",
    "MAX_REGEX_PROGRAM",
    "MAX_VALUE_ITEMS",
    "OPERATORS",
    "Constraint",
    "Predicate",
    "compile_conjunction",
    "compile_constraint",
    "is_narrowing",
    "is_optional",
    "normalize_constraint",
]

Constraint = dict[str, Any]
"""A normalized constraint spec: operator name -> operand."""

Predicate = Callable[[Any], bool]
"""A compiled constraint: value -> allowed?"""

OPERATORS: Final = frozenset(
    {"eq", "in", "prefix", "glob", "regex", "min", "max", "max_len", "host_in", "email_domain_in",
     "path_prefix", "each", "any", "optional"}
)
"""Every operator a constraint spec may use; anything else is a ConfigError at load, deny-all in a grant."""
MAX_EACH_DEPTH: Final = 8
"""Deepest nesting of ``each`` inside one constraint."""
_NON_NARROWING: Final = frozenset({"any", "optional"})


def _fail(field: str, message: str) -> ConfigError:
    return ConfigError(f"{field}: {message}")


def _path_parts(path: str) -> list[str] | None:
    """Components of an absolute POSIX path without ``.`` and empty ones; ``None`` if it escapes or is odd.

    Any ``..`` component is refused rather than resolved: the kernel resolves ``a/..`` through a
    symlink ``a``, so only a path without ``..`` means the same file lexically and to the tool.
    A backslash is refused too (a separator to a Windows tool), and so is NUL.
    """
    if not path.startswith("/") or "\0" in path or "\\" in path:
        return None
    parts = [p for p in path.split("/") if p and p != "."]
    return None if ".." in parts else parts


def _host_list(operand: object, where: str, *, emails: bool) -> list[str]:
    what = "domain names" if emails else "host names"
    if not isinstance(operand, (list, tuple)) or not operand:
        raise _fail(where, f"needs a non-empty list of {what}")
    hosts = [canonical_host(h, where) for h in operand]
    if emails and any(h.startswith("[") or h.rsplit(".", 1)[-1].isdigit() for h in hosts):
        raise _fail(where, "needs domain names, not IP addresses")
    return list(dict.fromkeys(hosts))


def _operand(op: str, operand: Any, where: str, each_depth: int) -> Any:
    """The validated, canonical operand of one operator (ConfigError naming ``where`` otherwise)."""
    if op == "eq":
        return json_operand(operand, where)
    if op == "in":
        if not isinstance(operand, (list, tuple)) or not operand:
            raise _fail(where, "needs a non-empty list of values")
        return json_operand(operand, where)
    if op in ("host_in", "email_domain_in"):
        return _host_list(operand, where, emails=op == "email_domain_in")
    if op in ("prefix", "glob", "regex"):
        if not isinstance(operand, str):
            raise _fail(where, "needs a string" if op != "regex" else "needs a string pattern")
        operand = str.__str__(operand)
        if op == "glob":
            compile_glob(operand, where)
        elif op == "regex":
            compile_regex(operand, where)
        return operand
    if op in ("min", "max"):
        finite = isinstance(operand, int) or (isinstance(operand, float) and math.isfinite(operand))
        if isinstance(operand, bool) or not finite:
            raise _fail(where, "needs a finite number (not bool, NaN or infinity)")
        if not -MAX_SAFE_NUMBER <= operand <= MAX_SAFE_NUMBER:
            raise _fail(where, "needs a number within ±2**53 (the range JSON numbers keep exactly everywhere)")
        return json_operand(operand, where)
    if op == "max_len":
        if not isinstance(operand, int) or isinstance(operand, bool) or operand < 0:
            raise _fail(where, "needs a whole number >= 0")
        return json_operand(operand, where)
    if op == "path_prefix":
        if not isinstance(operand, str) or _path_parts(operand) is None:
            raise _fail(where, "needs an absolute POSIX path without '..', '\\' or NUL, such as '/srv/data'")
        return "/" + "/".join(_path_parts(operand) or [])
    if op == "each":
        if each_depth >= MAX_EACH_DEPTH:
            raise _fail(where, f"each is nested deeper than {MAX_EACH_DEPTH} levels; flatten the constraint")
        return _normalize(operand, where, each_depth + 1)
    if op == "any":
        if operand is not True:
            raise _fail(where, 'must be true ({"any": true}); to refuse an argument, leave it out')
        return True
    if not isinstance(operand, bool):  # optional
        raise _fail(where, "must be true or false")
    return operand


def _normalize(spec: object, field: str, each_depth: int) -> Constraint:
    if not isinstance(spec, Mapping):
        return {"eq": json_operand(spec, field)}
    if not spec:
        raise _fail(field, 'an empty constraint object allows nothing; write {"any": true} to allow any value')
    out: Constraint = {}
    for op, operand in spec.items():
        if op not in OPERATORS:
            known = ", ".join(sorted(OPERATORS))
            raise _fail(field, f"unknown operator {op!r}; use one of: {known}")
        out[str.__str__(op)] = _operand(op, operand, f"{field}.{op}", each_depth)
    if "min" in out and "max" in out and out["min"] > out["max"]:
        raise _fail(field, f"min ({out['min']}) is greater than max ({out['max']}); nothing could match")
    return out


def normalize_constraint(spec: object, field: str = "constraint") -> Constraint:
    """Validate a constraint spec and return it in normalized, canonical form.

    Raises :class:`ConfigError` naming ``field`` and the fix for an unknown operator, an operand
    of the wrong type, a regex RE2 cannot run, an invalid host, or a spec beyond the limits
    (``each`` nesting, operand depth, numbers beyond ±2**64).
    """
    return _normalize(spec, field, 0)


def is_narrowing(spec: Constraint) -> bool:
    """True when the spec restricts values (has an operator other than ``any``/``optional``)."""
    return any(op not in _NON_NARROWING for op in spec)


def is_optional(spec: Constraint) -> bool:
    """True when the spec marks its argument as one that may be absent."""
    return spec.get("optional") is True


def _eq(expected: Any) -> Predicate:
    if type(expected) is str:
        return lambda v: type(v) is str and v == expected
    return lambda v: strict_equal(v, expected)


def _in(choices: Sequence[Any]) -> Predicate:
    if all(type(c) in SCALAR_TYPES for c in choices):
        allowed = frozenset((type(c), c) for c in choices)
        return lambda v: type(v) in SCALAR_TYPES and (type(v), v) in allowed
    return lambda v: any(strict_equal(v, c) for c in choices)


def _path_prefix(prefix: str) -> Predicate:
    root = _path_parts(prefix) or []
    size = len(root)

    def check(v: Any) -> bool:
        if type(v) is not str or len(v) > MAX_MATCH_INPUT:
            return False
        parts = _path_parts(v)
        return parts is not None and parts[:size] == root

    return check


def _each(spec: Any) -> Predicate:
    inner = _compile(spec)
    return lambda v: type(v) is list and len(v) <= MAX_VALUE_ITEMS and all(map(inner, v))


_COMPILERS: Final[dict[str, Callable[[Any], Predicate]]] = {
    "eq": _eq,
    "in": _in,
    "prefix": lambda p: lambda v: type(v) is str and v.startswith(p),
    "glob": lambda p: compile_glob(p, "glob"),
    "regex": lambda p: compile_regex(p, "regex"),
    "min": lambda bound: lambda v: in_safe_range(v) and v >= bound,
    "max": lambda bound: lambda v: in_safe_range(v) and v <= bound,
    "max_len": lambda limit: lambda v: (type(v) is str or type(v) is list) and len(v) <= limit,
    "host_in": compile_host_in,
    "email_domain_in": compile_email_domain_in,
    "path_prefix": _path_prefix,
    "each": _each,
}


def _deny(_: Any) -> bool:
    return False


def _allow(_: Any) -> bool:
    return True


def _all_of(predicates: Sequence[Predicate]) -> Predicate:
    if not predicates:
        return _allow
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda v: first(v) and second(v)
    preds = tuple(predicates)
    return lambda v: all(p(v) for p in preds)


def _compile(spec: Any) -> Predicate:
    """Compile an already normalized spec (no plain-JSON check of the value: the caller does it once)."""
    return _all_of([_COMPILERS[op](operand) for op, operand in spec.items() if op not in _NON_NARROWING])


def _plain_and(check: Predicate) -> Predicate:
    def guarded(v: Any) -> bool:
        return is_plain(v) and check(v)

    return guarded


def compile_constraint(spec: Any) -> Predicate:
    """Compile one constraint spec into a predicate.

    Fails closed: a spec that is not a valid constraint (unknown operator, wrong operand type)
    compiles to a predicate that refuses every value, and a value that is not plain JSON is
    refused by every narrowing spec.
    """
    try:
        spec = normalize_constraint(spec)
    except (ConfigError, RecursionError):
        return _deny
    return _plain_and(_compile(spec)) if is_narrowing(spec) else _allow


_UNPINNED: Final = object()


def _pinned_scalar(spec: Constraint) -> Any:
    """The scalar a normalized spec pins with ``eq``, else ``_UNPINNED``."""
    value = spec.get("eq", _UNPINNED)
    return value if type(value) in SCALAR_TYPES else _UNPINNED


def compile_conjunction(specs: Sequence[Any]) -> Predicate | None:
    """Compile the AND of several specs; ``None`` when none of them narrows (no check needed).

    When one spec pins a scalar literal (``eq``), the others are evaluated on that literal now:
    a value strictly equal to it (same exact type) gets the same verdict from every predicate, so
    the conjunction is the equality check alone, or refuses everything.
    """
    predicates: list[Predicate] = []
    literal: Any = _UNPINNED
    for raw in specs:
        try:
            spec = normalize_constraint(raw)
        except (ConfigError, RecursionError):
            return _deny
        if not is_narrowing(spec):
            continue
        predicates.append(_compile(spec))
        if literal is _UNPINNED:
            literal = _pinned_scalar(spec)
    if literal is not _UNPINNED:
        return _eq(literal) if all(p(literal) for p in predicates) else _deny
    return _plain_and(_all_of(predicates)) if predicates else None
