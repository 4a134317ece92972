"""The constraint vocabulary: validation of specs and compilation into plain predicates.

A constraint spec is a JSON object whose keys are operators, all of which must hold::

    {"glob": "*@example.com", "max_len": 200}

A non-object value is a literal and means ``{"eq": value}``. Predicates fail closed: a value of the
wrong type is a non-match (no coercion), and an operator the compiler does not know makes the whole
predicate refuse every value.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from agent_guard.exceptions import ConfigError

__all__ = [
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
    {"eq", "in", "prefix", "glob", "regex", "min", "max", "max_len", "host_in", "path_prefix", "each", "any",
     "optional"}
)
_NON_NARROWING: Final = frozenset({"any", "optional"})
MAX_REGEX_LEN: Final = 256
MAX_MATCH_INPUT: Final = 10_000
_JSON_SCALARS = (str, int, float, bool, type(None))


def _fail(field: str, message: str) -> ConfigError:
    return ConfigError(f"{field}: {message}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_json(value: object, field: str) -> None:
    if isinstance(value, _JSON_SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(field, "NaN and infinity are not JSON values; use a finite number")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{field}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(field, "object keys must be strings")
            _check_json(item, f"{field}.{key}")
        return
    raise _fail(field, f"{type(value).__name__} is not a JSON value; use str, number, bool, null, list or dict")


def normalize_constraint(spec: object, field: str = "constraint") -> Constraint:
    """Validate a constraint spec and return it in normalized form.

    Raises :class:`ConfigError` naming ``field`` and the fix for an unknown operator or an operand
    of the wrong type.
    """
    if not isinstance(spec, Mapping):
        _check_json(spec, field)
        return {"eq": list(spec) if isinstance(spec, tuple) else spec}
    if not spec:
        raise _fail(field, 'an empty constraint object allows nothing; write {"any": true} to allow any value')
    out: Constraint = {}
    for op, operand in spec.items():
        where = f"{field}.{op}"
        if op not in OPERATORS:
            known = ", ".join(sorted(OPERATORS))
            raise _fail(field, f"unknown operator {op!r}; use one of: {known}")
        if op == "eq":
            _check_json(operand, where)
        elif op in ("in", "host_in"):
            if not isinstance(operand, (list, tuple)) or not operand:
                raise _fail(where, "needs a non-empty list of values")
            _check_json(operand, where)
            if op == "host_in" and not all(isinstance(h, str) and h for h in operand):
                raise _fail(where, "needs a list of host names (strings)")
            operand = [h.lower() for h in operand] if op == "host_in" else list(operand)
        elif op in ("prefix", "glob"):
            if not isinstance(operand, str):
                raise _fail(where, "needs a string")
        elif op == "regex":
            if not isinstance(operand, str):
                raise _fail(where, "needs a string pattern")
            if len(operand) > MAX_REGEX_LEN:
                raise _fail(where, f"pattern is longer than {MAX_REGEX_LEN} characters; simplify it")
            try:
                re.compile(operand)
            except re.error as err:
                raise _fail(where, f"is not a valid regular expression ({err})") from None
        elif op in ("min", "max"):
            if not _is_number(operand):
                raise _fail(where, "needs a finite number (not bool, NaN or infinity)")
        elif op == "max_len":
            if not isinstance(operand, int) or isinstance(operand, bool) or operand < 0:
                raise _fail(where, "needs a whole number >= 0")
        elif op == "path_prefix":
            if not isinstance(operand, str) or not operand.startswith("/") or "\0" in operand:
                raise _fail(where, "needs an absolute POSIX path such as '/srv/data'")
        elif op == "each":
            operand = normalize_constraint(operand, where)
        elif op == "any":
            if operand is not True:
                raise _fail(where, 'must be true ({"any": true}); to refuse an argument, leave it out')
        elif op == "optional" and not isinstance(operand, bool):
            raise _fail(where, "must be true or false")
        out[op] = operand
    if "min" in out and "max" in out and out["min"] > out["max"]:
        raise _fail(field, f"min ({out['min']}) is greater than max ({out['max']}); nothing could match")
    return out


def is_narrowing(spec: Constraint) -> bool:
    """True when the spec restricts values (has an operator other than ``any``/``optional``)."""
    return any(op not in _NON_NARROWING for op in spec)


def is_optional(spec: Constraint) -> bool:
    """True when the spec marks its argument as one that may be absent."""
    return spec.get("optional") is True


def _strict_equal(a: object, b: object) -> bool:
    if type(a) is not type(b):
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            pass
        else:
            return False
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple))
        return len(a) == len(b) and all(_strict_equal(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(_strict_equal(a[k], b[k]) for k in a)
    return a == b


def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] == "*":
            parts.append(re.escape("*"))
            i += 2
            continue
        parts.append(".*" if ch == "*" else re.escape(ch))
        i += 1
    return re.compile("".join(parts), re.DOTALL)


def _eq(expected: Any) -> Predicate:
    if isinstance(expected, str):
        return lambda v: type(v) is str and v == expected
    return lambda v: _strict_equal(v, expected)


def _in(choices: Sequence[Any]) -> Predicate:
    if all(isinstance(c, str) for c in choices):
        allowed = frozenset(choices)
        return lambda v: type(v) is str and v in allowed
    return lambda v: any(_strict_equal(v, c) for c in choices)


def _host_in(hosts: Sequence[str]) -> Predicate:
    allowed = frozenset(hosts)

    def check(v: Any) -> bool:
        if type(v) is not str or len(v) > MAX_MATCH_INPUT:
            return False
        try:
            parts = urlsplit(v)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            return False
        return parts.scheme == "https" and host is not None and host in allowed

    return check


def _path_prefix(prefix: str) -> Predicate:
    root = posixpath.normpath(prefix)
    boundary = root if root.endswith("/") else root + "/"

    def check(v: Any) -> bool:
        if type(v) is not str or "\0" in v or not v.startswith("/") or len(v) > MAX_MATCH_INPUT:
            return False
        path = posixpath.normpath(v)
        return path == root or path.startswith(boundary)

    return check


def _regex(pattern: str) -> Predicate:
    compiled = re.compile(pattern)
    return lambda v: type(v) is str and len(v) <= MAX_MATCH_INPUT and compiled.fullmatch(v) is not None


def _glob(pattern: str) -> Predicate:
    compiled = _glob_regex(pattern)
    return lambda v: type(v) is str and len(v) <= MAX_MATCH_INPUT and compiled.fullmatch(v) is not None


def _min(bound: float) -> Predicate:
    return lambda v: _is_number(v) and v >= bound


def _max(bound: float) -> Predicate:
    return lambda v: _is_number(v) and v <= bound


def _max_len(limit: int) -> Predicate:
    return lambda v: isinstance(v, (str, list, tuple)) and len(v) <= limit


def _prefix(prefix: str) -> Predicate:
    return lambda v: type(v) is str and v.startswith(prefix)


def _each(spec: Any) -> Predicate:
    inner = compile_constraint(spec)
    return lambda v: isinstance(v, (list, tuple)) and all(inner(item) for item in v)


_COMPILERS: Final[dict[str, Callable[[Any], Predicate]]] = {
    "eq": _eq,
    "in": _in,
    "prefix": _prefix,
    "glob": _glob,
    "regex": _regex,
    "min": _min,
    "max": _max,
    "max_len": _max_len,
    "host_in": _host_in,
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


def compile_constraint(spec: Any) -> Predicate:
    """Compile one constraint spec into a predicate.

    Fails closed: a spec that is not a valid constraint (unknown operator, wrong operand type)
    compiles to a predicate that refuses every value.
    """
    try:
        spec = normalize_constraint(spec)
    except ConfigError:
        return _deny
    predicates: list[Predicate] = []
    for op, operand in spec.items():
        if op in _NON_NARROWING:
            continue
        predicates.append(_COMPILERS[op](operand))
    return _all_of(predicates)


_UNPINNED: Final = object()


def _pinned_scalar(spec: Any) -> Any:
    """The scalar a spec pins with ``eq`` (a bare literal means ``eq``), else ``_UNPINNED``."""
    value = spec.get("eq", _UNPINNED) if isinstance(spec, Mapping) else spec
    return value if isinstance(value, _JSON_SCALARS) else _UNPINNED


def compile_conjunction(specs: Sequence[Any]) -> Predicate | None:
    """Compile the AND of several specs; ``None`` when none of them narrows (no check needed).

    When one spec pins a scalar literal (``eq``), the others are evaluated on that literal now:
    a value strictly equal to it (same type) gets the same verdict from every predicate, so the
    conjunction is the equality check alone, or refuses everything.
    """
    predicates: list[Predicate] = []
    literal: Any = _UNPINNED
    for spec in specs:
        if isinstance(spec, Mapping) and spec and all(op in _NON_NARROWING for op in spec):
            try:
                normalize_constraint(spec)
            except ConfigError:
                return _deny
            continue
        predicates.append(compile_constraint(spec))
        if literal is _UNPINNED:
            literal = _pinned_scalar(spec)
    if literal is not _UNPINNED:
        return _eq(literal) if all(p(literal) for p in predicates) else _deny
    return _all_of(predicates) if predicates else None
