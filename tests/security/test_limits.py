"""Bounded work: linear-time matching, and the size, depth and item limits of values, specs and plans."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_guard import (
    ConfigError,
    Plan,
    Policy,
    Step,
    compile_constraint,
    derive_scope,
    normalize_constraint,
    reasons,
)
from agent_guard.authorization._constraints import MAX_EACH_DEPTH
from agent_guard.authorization._matcher import CompiledScope
from agent_guard.authorization._patterns import MAX_REGEX_PROGRAM
from agent_guard.authorization._values import (
    MAX_MATCH_INPUT,
    MAX_VALUE_DEPTH,
    MAX_VALUE_ITEMS,
    MAX_VALUE_SIZE,
    is_plain,
)


def nested(depth: int, leaf: Any = "x") -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


class TestLinearTime:
    """The findings' inputs (52 s and 12 s before) are decided by linear-time matchers."""

    @pytest.mark.parametrize(
        ("spec", "value", "verdict"),
        [
            ({"glob": "*/*/*.txt"}, "/" * 9_999, False),
            ({"glob": "*/*/*.txt"}, "/" * 9_996 + ".txt", True),
            ({"glob": "*a*a*a*a*a*a*a*b"}, "a" * MAX_MATCH_INPUT, False),
            ({"glob": "*a*a*a*a*a*a*a*b"}, "a" * (MAX_MATCH_INPUT - 1) + "b", True),
            ({"regex": r"(\w+\s?)*"}, "a" * 28 + "!", False),
            ({"regex": r"(\w+\s?)*"}, "a" * (MAX_MATCH_INPUT - 1) + "!", False),
            ({"regex": r"(\w+\s?)*"}, "ab " * 3_000, True),
            ({"regex": r"(a+)+b"}, "a" * MAX_MATCH_INPUT, False),
            ({"regex": r"(a|aa)*b"}, "a" * MAX_MATCH_INPUT, False),
            ({"host_in": ["good.com"]}, "https://good.com/" + "@" * (MAX_MATCH_INPUT - 17), True),
            ({"path_prefix": "/srv"}, "/srv/" + "a/" * ((MAX_MATCH_INPUT - 5) // 2), True),
            ({"email_domain_in": ["example.com"]}, "a" * MAX_MATCH_INPUT + "@example.com", False),
        ],
    )
    def test_worst_inputs_get_the_right_verdict(self, spec: dict[str, Any], value: str, verdict: bool) -> None:
        """The findings' worst inputs get the right verdict (no backtracking engine is involved: see the next
        test). How long they take is measured, not asserted: ``benchmarks/bench_worst_case.py``."""
        assert compile_constraint(spec)(value) is verdict

    def test_no_backtracking_engine_is_used(self) -> None:
        """Neither glob nor regex compiles to Python's backtracking ``re``: the matchers hold no ``re.Pattern``."""
        import re

        for spec in ({"glob": "*/*/*.txt"}, {"regex": r"(\w+\s?)*"}):
            check = compile_constraint(spec)
            cells = [c.cell_contents for c in (check.__closure__ or ())]
            assert not any(isinstance(c, re.Pattern) for c in cells), spec

    def test_regexes_that_cannot_be_linear_are_refused_at_load(self) -> None:
        """Backreferences and lookaround would need backtracking: a ConfigError says so."""
        for pattern in (r"(a)\1", r"(?=a)a", r"(?!a)b", r"(?<=a)b", r"(?<!a)b", r"a++", r"(?>a)", r"a\Z"):
            with pytest.raises(ConfigError, match="linear-time") as info:
                normalize_constraint({"regex": pattern}, "customer_id")
            assert "customer_id.regex" in str(info.value)

    def test_regex_program_size_is_capped(self) -> None:
        """A pattern compiling to a huge RE2 program is refused, with max_len as the suggested fix."""
        with pytest.raises(ConfigError, match=f"above the limit of {MAX_REGEX_PROGRAM}.*max_len"):
            normalize_constraint({"regex": ".{1,500}"})
        normalize_constraint({"regex": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"})

    def test_regex_classes_are_ascii(self) -> None:
        r"""\d, \w, \s and \b are ASCII; Unicode only when asked for (\pN); (?i) folds by Unicode."""
        assert not compile_constraint({"regex": r"C-\d+"})("C-٤٢")
        assert not compile_constraint({"regex": r"\w+"})("é")
        assert not compile_constraint({"regex": r"a\sb"})("a\u00a0b")
        assert compile_constraint({"regex": r"C-\pN+"})("C-٤٢")
        assert compile_constraint({"regex": r"(?i)k"})("\u212a")  # documented: Kelvin sign folds to k


class TestValueLimits:
    """Values beyond the limits are not plain, so every narrowing operator refuses them."""

    def test_depth(self) -> None:
        assert is_plain(nested(MAX_VALUE_DEPTH - 1, [])) and not is_plain(nested(MAX_VALUE_DEPTH, []))
        assert is_plain(nested(200_000, 1)) is False  # no RecursionError: the walk is iterative

    def test_items_all_levels_together(self) -> None:
        assert is_plain(["x"] * MAX_VALUE_ITEMS) and not is_plain(["x"] * (MAX_VALUE_ITEMS + 1))
        assert not is_plain([["x"] * 500, ["x"] * 500])  # 1,002 elements with the two inner lists
        assert not is_plain({f"k{i}": 1 for i in range(MAX_VALUE_ITEMS + 1)})

    def test_size(self) -> None:
        assert is_plain(["x" * (MAX_VALUE_SIZE - 1)]) and not is_plain(["x" * MAX_VALUE_SIZE])
        assert not is_plain({"k" * MAX_VALUE_SIZE: 1})

    def test_each_at_the_limit(self) -> None:
        check = compile_constraint({"each": {"email_domain_in": ["example.com"]}})
        assert check(["a@example.com"] * MAX_VALUE_ITEMS)
        assert not check(["a@example.com"] * (MAX_VALUE_ITEMS + 1))

    def test_strings_beyond_the_input_limit_never_match_text_operators(self) -> None:
        for spec, ok in [({"glob": "*"}, "a"), ({"regex": "a*"}, "a"), ({"path_prefix": "/"}, "/a"),
                         ({"host_in": ["good.com"]}, "https://good.com/")]:
            check = compile_constraint(spec)
            assert check(ok + "a" * (MAX_MATCH_INPUT - len(ok)))
            assert not check(ok + "a" * (MAX_MATCH_INPUT - len(ok) + 1)), spec

    def test_huge_numbers_are_non_matches_not_errors(self) -> None:
        """10**400 (a valid JSON integer) against min/max: a plain non-match, never OverflowError."""
        for spec in ({"min": 0}, {"max": 500}, {"min": 0, "max": 500}, {"min": 0.5}, {"max": 1.5}):
            check = compile_constraint(spec)
            assert check(10**400) is False and check(-(10**400)) is False
        assert compile_constraint({"max": 10})(2**53 + 1) is False
        assert compile_constraint({"min": 0})(2**53) is True


class TestSpecLimits:
    """Policies and plans beyond the limits are ConfigErrors, never RecursionError or OverflowError."""

    def test_each_nesting(self) -> None:
        spec: Any = {"any": True}
        for _ in range(MAX_EACH_DEPTH):
            spec = {"each": spec}
        normalize_constraint(spec)
        for depth in (MAX_EACH_DEPTH + 1, 5_000):
            deep: Any = {"any": True}
            for _ in range(depth):
                deep = {"each": deep}
            with pytest.raises(ConfigError, match="nested deeper than 8"):
                normalize_constraint(deep)

    def test_operand_depth_and_numbers(self) -> None:
        normalize_constraint({"eq": nested(32)})
        with pytest.raises(ConfigError, match="nested deeper than 32"):
            normalize_constraint({"eq": nested(50_000)})
        for spec in ({"min": 10**400}, {"max": 2**53 + 1}, {"eq": 10**400}, {"in": [2**65]}, {"eq": 1e300}):
            with pytest.raises(ConfigError):
                normalize_constraint(spec)
        assert normalize_constraint({"eq": 2**64}) == {"eq": 2**64}  # 64-bit ids fit

    def test_plan_steps(self) -> None:
        policy = Policy(agent_id="a", capabilities=[{"tool": "t"}])
        derive_scope(Plan(steps=[Step("t")] * 1_000), policy)
        with pytest.raises(ConfigError, match="1,000,000 steps, above the limit of 1,000; split"):
            Plan(steps=[{"tool": "t"}] * 1_000_000)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(
    st.one_of(st.text(max_size=3), st.integers(), st.just(("t",)), st.just(b"to")),
    st.one_of(st.none(), st.text(max_size=5), st.just(("a",)), st.just(10**400), st.just(float("nan")),
              st.just(nested(40)), st.just(object())),
    max_size=4,
))
def test_the_matcher_never_raises(args: dict[Any, Any]) -> None:
    """Whatever names and values a model emits, the match is a verdict with a reason code."""
    policy = Policy(agent_id="a", capabilities=[{"tool": "t", "args": {"to": {"email_domain_in": ["example.com"]},
                                                                      "n": {"min": 0, "max": 5}, "x": {"any": True}}}])
    scope = CompiledScope(derive_scope(Plan(steps=[Step("t", args={"to": {"any": True}, "n": {"any": True},
                                                                  "x": {"any": True}})]), policy))
    found = scope.match("t", args)
    assert found.reason in (None, reasons.ARGUMENT_MISMATCH, reasons.ARGUMENT_NOT_ALLOWED)
    if found.reason is None:
        assert all(type(k) is str for k in args) and type(args["to"]) is str
