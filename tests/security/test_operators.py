"""Property tests for every constraint operator: hostile values never crash, allowed values are right.

For each operator, hypothesis throws plain JSON, oversized values and hostile Python objects at
the compiled predicate. Three properties must hold for every value:

1. the predicate returns a bool and raises nothing (no code of the value's own can make it lie);
2. a value it allows is plain JSON (checked here independently: exact types, JSON round trip);
3. a value it allows satisfies an independent reference implementation of the operator.
"""

from __future__ import annotations

import email.utils
import json
import math
import posixpath
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from email.headerregistry import Address
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_guard import OPERATORS, compile_constraint

SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class LyingStr(str):
    """A str that claims to be short, equal to anything, and to start with anything."""

    def __len__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return hash("to")

    def startswith(self, *args: Any) -> bool:  # type: ignore[override]
        return True

    def endswith(self, *args: Any) -> bool:  # type: ignore[override]
        return True


class LyingInt(int):
    """An int that compares inside every range and equal to everything."""

    def __ge__(self, other: object) -> bool:
        return True

    def __le__(self, other: object) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


class LyingList(list):  # type: ignore[type-arg]
    """A list that claims to be empty."""

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Any:
        return iter([])


class LyingDict(dict):  # type: ignore[type-arg]
    """A dict whose keys() hides everything."""

    def keys(self) -> Any:  # type: ignore[override]
        return {}.keys()

    def __len__(self) -> int:
        return 0


class Explodes:
    """Raises from every protocol a predicate might touch."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq")

    def __hash__(self) -> int:
        raise RuntimeError("hash")

    def __len__(self) -> int:
        raise RuntimeError("len")

    def __iter__(self) -> Any:
        raise RuntimeError("iter")


def deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = [
    LyingStr("alice@example.com"), LyingStr("O-1"), LyingInt(7), LyingInt(10**9), LyingList(["a"]),
    LyingDict({"a": 1}), ("alice@example.com",), ("a", "b"), (1,), {"a"}, frozenset({1}), b"O-1",
    bytearray(b"x"), object(), Explodes(), [Explodes()], {"k": Explodes()}, {1: "a"}, {("t",): 1},
    math.nan, math.inf, -math.inf, complex(1, 2), Decimal("7"), Fraction(1, 2), 10**400, -(10**400),
    2**53 + 1, "\ud800", "a" * 10_001, ["x"] * 1_001, deep(33), [[["x"] * 400] * 3], {"k": "v" * 100_001},
    "alice@example.com\r\nBcc: m@evil.com", "mallory@evil.com,alice@example.com", "<m@evil.com> a@example.com",
    "https://127.0.0.1:9\\@good.com/", "/srv/reports/../../home/alice/secrets.csv", "/srv/reports\0/x",
]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)
plain_json = st.recursive(
    json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c, max_size=4),
    max_leaves=12,
)


def values(*extra: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Plain JSON, hostile objects, containers of hostile objects, and the operator's own near-misses."""
    hostile = st.integers(0, len(HOSTILE) - 1).map(HOSTILE.__getitem__)  # sampled_from would hash them
    return st.one_of(plain_json, hostile, st.lists(hostile, max_size=3), st.dictionaries(st.text(max_size=3), hostile,
                                                                                         max_size=2), *extra)


def is_plain_reference(value: Any) -> bool:
    """Independent plain-JSON check: exact types all the way down, and an exact JSON round trip."""
    def exact(v: Any) -> bool:
        if type(v) in (str, int, bool, type(None)):
            return True
        if type(v) is float:
            return math.isfinite(v)
        if type(v) is list:
            return all(exact(x) for x in v)
        if type(v) is dict:
            return all(type(k) is str and exact(x) for k, x in v.items())
        return False

    if not exact(value):
        return False
    try:
        return bool(json.loads(json.dumps(value, allow_nan=False)) == value)
    except (ValueError, RecursionError):
        return False


def tagged(value: Any) -> Any:
    """A type-tagged form for strict equality (1, 1.0 and True all differ)."""
    if type(value) is list:
        return ("list", tuple(tagged(v) for v in value))
    if type(value) is dict:
        return ("dict", tuple(sorted((k, tagged(v)) for k, v in value.items())))
    return (type(value).__name__, value)


CONTROL = {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cc"} | {"\u2028", "\u2029"}


def glob_reference(pattern: str) -> Callable[[Any], bool]:
    """fnmatch-free reference: the glob as a Python regex, full match, no control characters."""
    parts, i = [], 0
    while i < len(pattern):
        if pattern.startswith("\\*", i):
            parts.append(re.escape("*"))
            i += 2
        else:
            parts.append(".*" if pattern[i] == "*" else re.escape(pattern[i]))
            i += 1
    rx = re.compile("".join(parts), re.DOTALL)
    return lambda v: type(v) is str and not (set(v) & CONTROL) and rx.fullmatch(v) is not None


def email_reference(domains: set[str]) -> Callable[[Any], bool]:
    """The stdlib's reading: one address, no display name, exactly this addr-spec, listed domain."""
    def check(v: Any) -> bool:
        if type(v) is not str or any(c.isspace() or c in CONTROL for c in v):
            return False
        if email.utils.getaddresses([v]) != [("", v)]:
            return False
        address = Address(addr_spec=v)
        return address.addr_spec == v and address.domain.lower() in domains and '"' not in v

    return check


def path_reference(root: str) -> Callable[[Any], bool]:
    """posixpath's reading: absolute, no NUL, no '..', normalized inside ``root`` on a component boundary."""
    def check(v: Any) -> bool:
        if type(v) is not str or not v.startswith("/") or "\0" in v or ".." in v.split("/"):
            return False
        path = posixpath.normpath(v)
        return posixpath.commonpath([root, path]) == root

    return check


def host_reference(hosts: set[str]) -> Callable[[Any], bool]:
    """urllib.parse's reading: https, and a listed host."""
    def check(v: Any) -> bool:
        parts = urlsplit(v)
        host = (parts.hostname or "").rstrip(".")
        return parts.scheme == "https" and host in hosts

    return check


def number_reference(low: int, high: int) -> Callable[[Any], bool]:
    """Exact rational comparison, and within ±2**53."""
    def check(v: Any) -> bool:
        if type(v) not in (int, float) or (type(v) is float and not math.isfinite(v)):
            return False
        exact = Fraction(v)
        return low <= exact <= high and abs(exact) <= 2**53

    return check


emails = st.tuples(
    st.sampled_from(["alice", "a.b", "o'neil", "x+tag", ".a", "a..b", '"q"', "a b", "é", "<m", "", "a" * 65]),
    st.sampled_from(["@"]), st.sampled_from(["example.com", "EXAMPLE.COM", "sub.example.com", "example.com.",
                                             "evil.com", "example.com>", "[127.0.0.1]", "example.com,b@evil.com"]),
).map("".join)
paths = st.tuples(
    st.sampled_from(["/srv/reports", "/srv/reports/", "//srv/reports", "/srv/./reports", "/srv/reports-evil", "/srv",
                     "srv/reports", "/srv/reports/.", "/srv/reports/.."]),
    st.lists(st.sampled_from(["reports", "..", ".", "", "home", "a.csv", "\0", "\\", "x"]), max_size=5).map("/".join),
).map("/".join)
globbish = st.text(alphabet=st.sampled_from("ab@.com\r\n\x00*"), max_size=16)
urls = st.tuples(st.sampled_from(["https://", "http://", "https:"]),
                 st.sampled_from(["good.com", "GOOD.com.", "evil.com", "good.com@evil.com", "a\\@good.com"]),
                 st.sampled_from(["", "/", "/x?y#z", ":443/", ":bad/"])).map("".join)

CASES: dict[str, tuple[dict[str, Any], Callable[[Any], bool], st.SearchStrategy[Any]]] = {
    "eq": ({"eq": {"a": [1, "x", None, 1.5, True]}},
           lambda v: tagged(v) == tagged({"a": [1, "x", None, 1.5, True]}),
           st.sampled_from([{"a": [1, "x", None, 1.5, True]}, {"a": [1.0, "x", None, 1.5, True]},
                            {"a": [True, "x", None, 1.5, True]}, {"a": (1, "x", None, 1.5, True)}])),
    "in": ({"in": ["a", 1, 2.5, True, None, [1]]},
           lambda v: tagged(v) in {tagged(c) for c in ["a", 1, 2.5, True, None, [1]]},
           st.sampled_from(["a", 1, 1.0, True, 2.5, None, [1], (1,), [True], 0])),
    "prefix": ({"prefix": "O-"}, lambda v: type(v) is str and v[:2] == "O-",
               st.text(alphabet="O-1x", max_size=6)),
    "glob": ({"glob": "*@example.com"}, glob_reference("*@example.com"), globbish),
    "regex": ({"regex": r"C-\d+"}, lambda v: type(v) is str and re.fullmatch(r"C-[0-9]+", v) is not None,
              st.tuples(st.sampled_from(["C-", "c-", "C", "xC-", ""]),
                        st.text(alphabet="0123456789\u0664\u0662\n-", max_size=4)).map("".join)),
    "min": ({"min": -5}, number_reference(-5, 2**53), st.one_of(st.integers(), st.floats())),
    "max": ({"max": 500}, number_reference(-(2**53), 500), st.one_of(st.integers(), st.floats())),
    "max_len": ({"max_len": 3}, lambda v: type(v) in (str, list) and len(v) <= 3,
                st.one_of(st.text(max_size=5), st.lists(st.integers(), max_size=5))),
    "host_in": ({"host_in": ["good.com"]}, host_reference({"good.com"}), urls),
    "email_domain_in": ({"email_domain_in": ["example.com"]}, email_reference({"example.com"}), emails),
    "path_prefix": ({"path_prefix": "/srv/reports"}, path_reference("/srv/reports"), paths),
    "each": ({"each": {"prefix": "a"}}, lambda v: type(v) is list and all(type(x) is str and x[:1] == "a" for x in v),
             st.lists(st.integers(0, 5).map(["a", "ab", "b", 1, ("a",), LyingStr("a")].__getitem__), max_size=4)),
    "any": ({"any": True}, lambda v: True, st.none()),
    "optional": ({"optional": True}, lambda v: True, st.none()),
}


def test_every_operator_has_a_property_test() -> None:
    """The table above covers the whole vocabulary."""
    assert set(CASES) == set(OPERATORS)


@pytest.mark.parametrize("op", sorted(CASES))
def test_operator_properties(op: str) -> None:
    """Never raises; what it allows is plain JSON (when narrowing) and satisfies the reference."""
    spec, reference, near = CASES[op]
    check = compile_constraint(spec)
    narrowing = op not in ("any", "optional")
    seen = {"allowed": 0}

    @SETTINGS
    @given(values(near, near, near))
    def run(value: Any) -> None:
        verdict = check(value)
        assert type(verdict) is bool
        if verdict:
            seen["allowed"] += 1
            if narrowing:
                assert is_plain_reference(value), value
            assert reference(value), value

    run()
    assert seen["allowed"] > 0, f"{op}: no generated value was allowed; the property never ran"


PLAIN_BOUNDARY = [
    ({"eq": "a"}, "a", [LyingStr("a")]),
    ({"in": ["a", "b"]}, "a", [LyingStr("zzz")]),
    ({"eq": 5}, 5, [LyingInt(5)]),
    ({"in": [5]}, 5, [LyingInt(5)]),
    ({"min": 0, "max": 10}, 5, [LyingInt(10**9), LyingInt(-3)]),
    ({"max_len": 2}, "ab", [LyingStr("abcdef")]),
    ({"max_len": 2}, ["a"], [LyingList(["a", "b", "c"]), ("a",)]),
    ({"prefix": "O-"}, "O-1", [LyingStr("X-1")]),
    ({"glob": "*.txt"}, "a.txt", [LyingStr("a.exe")]),
    ({"regex": "a+"}, "aa", [LyingStr("aa")]),
    ({"host_in": ["good.com"]}, "https://good.com/", [LyingStr("https://good.com/")]),
    ({"email_domain_in": ["example.com"]}, "a@example.com", [LyingStr("a@example.com")]),
    ({"path_prefix": "/srv"}, "/srv/a", [LyingStr("/srv/a")]),
    ({"each": {"any": True}}, ["a"], [LyingList(["a"]), ("a",), [object()], ["a", ("b",)]]),
    ({"each": {"eq": "a"}}, ["a"], [[LyingStr("a")]]),
    ({"eq": ["a", 1]}, ["a", 1], [("a", 1), LyingList(["a", 1]), ["a", LyingInt(1)]]),
    ({"eq": {"k": "v"}}, {"k": "v"}, [LyingDict({"k": "v"}), {"k": LyingStr("v")}, {LyingStr("k"): "v"}]),
]


@pytest.mark.parametrize(("spec", "good", "hostile"), PLAIN_BOUNDARY)
def test_subclasses_and_tuples_are_never_plain(spec: dict[str, Any], good: Any, hostile: list[Any]) -> None:
    """Every narrowing operator refuses a subclass or tuple that looks like (or lies its way into) a match."""
    check = compile_constraint(spec)
    assert check(good)
    for value in hostile:
        assert check(value) is False, (spec, value)


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab*\\."), max_size=8), st.text(alphabet=st.sampled_from("ab*\\."), max_size=10))
def test_glob_agrees_with_a_regex_reference(pattern: str, value: str) -> None:
    """On small inputs without control characters, the linear glob matches exactly what re.fullmatch does."""
    assert compile_constraint({"glob": pattern})(value) is glob_reference(pattern)(value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab\r\n\x00\x7f\x85\u2028 "), max_size=8))
def test_glob_never_matches_a_control_character(value: str) -> None:
    """Not even '*' alone: a value holding CR, LF, NUL, DEL, a C1 control or a line separator is refused."""
    verdict = compile_constraint({"glob": "*"})(value)
    assert verdict is not bool(set(value) & CONTROL)
