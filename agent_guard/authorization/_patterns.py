"""Text patterns in linear time: ``glob`` without backtracking, ``regex`` through RE2.

``glob``: ``*`` is the only wildcard (``\\*`` is a literal star). A pattern is split at its stars
into literal segments; a value matches when it starts with the first, ends with the last and holds
the middle ones in order, found left to right with ``str.find`` (the leftmost placement is
optimal for star-only patterns, so this is exact, and linear in the value). Neither the pattern
nor the value may hold a control character: a glob never matches a value with CR, LF, NUL, any
other C0 or C1 control, DEL, or a Unicode line/paragraph separator.

``regex``: compiled by RE2 (no backtracking: time linear in the input for a given pattern), full
match, run as a one-pattern ``re2.Set`` (DFA only: should RE2's DFA ever run out of memory on an
input, that input is refused rather than retried on the slower NFA). RE2 runs on UTF-8 with its default options, under which ``\\d``, ``\\w``, ``\\s``, ``\\b``
and the POSIX classes (``[[:alpha:]]``) are ASCII only (``C-\\d+`` refuses ``C-٤٢``); ``.`` and
negated classes match any one code point; Unicode applies only where asked for (``\\pL``,
``\\p{Greek}``) and in ``(?i)``, which folds case by Unicode simple folding (``(?i)k`` also matches
the Kelvin sign ``K``). Backreferences, lookaround, possessive and atomic groups and ``\\Z`` cannot
run in linear time and are refused when the policy is loaded.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, Final

import re2

from agent_guard.authorization._values import MAX_MATCH_INPUT
from agent_guard.exceptions import ConfigError

__all__ = [
    "CONTROL_CHARACTERS",
    "MAX_REGEX_LEN",
    "MAX_REGEX_PROGRAM",
    "compile_glob",
    "compile_regex",
    "glob_segments",
]

MAX_REGEX_LEN: Final = 256
"""Longest regex pattern, in characters."""
MAX_REGEX_PROGRAM: Final = 1_000
"""Largest compiled RE2 program (instructions); bounds the worst case at O(input * program)."""
CONTROL_CHARACTERS: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""C0 and C1 controls, DEL, and the Unicode line and paragraph separators (a plain character class)."""

_OPTIONS: Final = re2.Options()
_OPTIONS.never_capture = True  # a yes/no answer needs no submatches, which keeps RE2 on its DFA
_OPTIONS.log_errors = False  # a refused pattern is reported as a ConfigError, not on stderr


def glob_segments(pattern: str) -> list[str]:
    """The literal segments between the unescaped stars of ``pattern`` (one more than the stars)."""
    segments: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and pattern[i + 1 : i + 2] == "*":
            current.append("*")
            i += 2
            continue
        if ch == "*":
            segments.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    segments.append("".join(current))
    return segments


def compile_glob(pattern: str, field: str) -> Callable[[Any], bool]:
    """A linear-time full-match predicate for a glob; :class:`ConfigError` for a control character."""
    if CONTROL_CHARACTERS.search(pattern):
        raise ConfigError(f"{field}: a glob never matches control characters; remove them from the pattern")
    segments = glob_segments(pattern)
    control = CONTROL_CHARACTERS.search
    if len(segments) == 1:
        literal = segments[0]
        return lambda v: type(v) is str and v == literal
    head, *middle, tail = segments
    middle = [m for m in middle if m]
    fixed = len(head) + len(tail)

    def check(v: Any) -> bool:
        if type(v) is not str or len(v) > MAX_MATCH_INPUT or len(v) < fixed:
            return False
        if not (v.startswith(head) and v.endswith(tail)) or control(v):
            return False
        pos, end = len(head), len(v) - len(tail)
        for segment in middle:
            found = v.find(segment, pos, end)
            if found < 0:
                return False
            pos = found + len(segment)
        return True

    return check


@functools.lru_cache(maxsize=512)
def _regex_predicate(pattern: str) -> Callable[[Any], bool] | str:
    """The predicate for a valid pattern, else why it is refused (cached: policies repeat patterns)."""
    try:
        compiled = re2.compile(pattern, _OPTIONS)
        matcher = re2.Set.FullMatchSet(_OPTIONS)  # the same program, a yes/no answer at half the call cost
        matcher.Add(pattern)
        matcher.Compile()
    except re2.error as err:
        detail = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else str(err)
        return (
            f"is not a valid RE2 regular expression ({detail}); matching must stay linear-time, so "
            r"backreferences (\1), lookaround ((?=, (?!, (?<=, (?<!), possessive/atomic groups and \Z are "
            r"not supported (the match is always full, so \Z is not needed)"
        )
    if compiled.programsize > MAX_REGEX_PROGRAM:
        return (
            f"the pattern compiles to {compiled.programsize} RE2 instructions, above the limit of "
            f"{MAX_REGEX_PROGRAM}; bound lengths with max_len instead of a counted repetition such as .{{1,500}}"
        )
    match = matcher.Match

    def check(v: Any) -> bool:
        if type(v) is not str or len(v) > MAX_MATCH_INPUT:
            return False
        try:
            return match(v.encode()) is not None
        except UnicodeEncodeError:  # a lone surrogate is no text a tool could receive intact
            return False

    return check


def compile_regex(pattern: str, field: str) -> Callable[[Any], bool]:
    """A full-match RE2 predicate; :class:`ConfigError` for a pattern RE2 cannot run or that is too big."""
    if len(pattern) > MAX_REGEX_LEN:
        raise ConfigError(f"{field}: pattern is longer than {MAX_REGEX_LEN} characters; simplify it")
    found = _regex_predicate(str.__str__(pattern))
    if isinstance(found, str):
        raise ConfigError(f"{field}: {found}")
    return found
