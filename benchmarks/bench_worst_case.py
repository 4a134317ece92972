"""Worst-case decision time of every constraint operator at the input limits, through ``Guard.authorize``.

Run: ``.venv/bin/python benchmarks/bench_worst_case.py``. For each operator, the input that costs
it the most at the limits (strings of MAX_MATCH_INPUT = 10,000 characters, lists of MAX_VALUE_ITEMS
= 1,000 items, values of MAX_VALUE_SIZE, the deepest allowed nesting) goes through a real
decision: scope match, budget, span (OpenTelemetry API only). Prints the median µs per decision
of interleaved samples, allowed and denied inputs alike; asserts nothing. Goal: ≤ 1,000 µs each.
"""

from __future__ import annotations

import contextvars
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import compare, row

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step, compile_constraint
from agent_guard.authorization._values import MAX_MATCH_INPUT, MAX_VALUE_DEPTH, MAX_VALUE_ITEMS

N = MAX_MATCH_INPUT
DFA_HOSTILE = "[ab]*a[ab]{20}"
"""'An a 21 characters from the end': 2**20 DFA states, so RE2 keeps resetting its DFA cache."""
ME = AgentIdentity(agent_id="worst", user_id="u-1")


def nested(depth: int, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` lists."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def each_deep(depth: int, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` ``each`` operators."""
    for _ in range(depth):
        leaf = {"each": leaf}
    return leaf


def tree(depth: int, width: int, leaf: Any) -> Any:
    """Lists ``width`` wide, ``depth`` deep, with ``leaf`` at the bottom."""
    for _ in range(depth):
        leaf = [leaf] * width
    return leaf


EACH_3 = each_deep(3, {"glob": "*@example.com"})
TREE_3 = tree(3, 9, "a" * 78 + "@example.com")  # 9 + 81 + 729 = 819 elements, 729 leaves
LONG_DOMAIN = "b" * 63 + "." + "c" * 63 + "." + "d" * 49 + ".example.com"  # a 254-char address with 64 + 1

# (case label, constraint on argument "v", value): one tool per case, so each decision checks one operator.
CASES: list[tuple[str, Any, Any]] = [
    ("glob */*/*.txt, 9,999 '/' (denied)", {"glob": "*/*/*.txt"}, "/" * (N - 1)),
    ("glob */*/*.txt, 9,996 '/' + .txt (allowed)", {"glob": "*/*/*.txt"}, "/" * (N - 4) + ".txt"),
    ("glob *aaaaaaaaaaaaaaab*, 10,000 'a'", {"glob": "*aaaaaaaaaaaaaaab*"}, "a" * N),
    ("glob *@example.com, CR at the end", {"glob": "*@example.com"}, "a" * (N - 14) + "@example.com\r"),
    (r"regex (\w+\s?)*, 'aaaa…!'", {"regex": r"(\w+\s?)*"}, "a" * (N - 1) + "!"),
    (r"regex (a+)+b, 'aaaa…a'", {"regex": r"(a+)+b"}, "a" * N),
    (r"regex (a|aa)*b, 'aaaa…a'", {"regex": r"(a|aa)*b"}, "a" * N),
    (r"regex (.*a){20}, 'aaaa…!'", {"regex": r"(.*a){20}"}, "a" * (N - 1) + "!"),
    (r"regex [a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}", {"regex": r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}"},
     "a" * (N - 1) + "@"),
    ("host_in, 10,000-char URL (allowed)", {"host_in": ["good.example"]}, "https://good.example/" + "a" * (N - 21)),
    ("host_in, 10,000-char URL, '@' in a path (allowed)", {"host_in": ["good.example"]},
     "https://good.example/" + "@/" * ((N - 21) // 2)),
    ("path_prefix, 10,000 chars of 'a/' (allowed)", {"path_prefix": "/srv/data"}, "/srv/data/" + "a/" * ((N - 10) // 2)),
    ("path_prefix, 10,000 chars of '/./' (allowed)", {"path_prefix": "/srv/data"}, "/srv/data" + "/." * ((N - 9) // 2)),
    ("email_domain_in, 254-char address (allowed)", {"email_domain_in": [LONG_DOMAIN]}, "a" * 64 + "@" + LONG_DOMAIN),
    ("email_domain_in, 10,000 chars (denied)", {"email_domain_in": ["example.com"]}, "a" * (N - 12) + "@example.com"),
    ("eq, 10,000-char string", {"eq": "a" * N}, "a" * N),
    ("eq, list nested 32 deep", {"eq": nested(MAX_VALUE_DEPTH - 1, [1])}, nested(MAX_VALUE_DEPTH - 1, [1])),
    ("in, 1,000 choices, 10,000-char value", {"in": [f"c{i}" for i in range(1000)]}, "c" * N),
    ("prefix, 10,000-char string", {"prefix": "a" * (N - 1)}, "a" * N),
    ("max_len, 1,000-item list", {"max_len": MAX_VALUE_ITEMS}, ["x"] * MAX_VALUE_ITEMS),
    ("min/max, 10**400 (denied)", {"min": 0, "max": 500}, 10**400),
    ("min/max, float", {"min": 0, "max": 500}, 499.5),
    ("each glob, 1,000 strings of 90 chars", {"each": {"glob": "*@example.com"}},
     [f"{i:03}" + "a" * 75 + "@example.com" for i in range(1000)]),
    ("each email_domain_in, 1,000 addresses", {"each": {"email_domain_in": ["example.com"]}},
     [f"user{i}@example.com" for i in range(1000)]),
    ("each regex, 1,000 strings of 90 chars", {"each": {"regex": r"(\w+\s?)*"}}, [f"{i:03}" + "a" * 87 for i in range(1000)]),
    ("each nested 3 deep, 9 items a level (729 leaves)", EACH_3, TREE_3),
    ("each nested 8 deep, 1 item a level", each_deep(8, {"max_len": 3}), tree(8, 1, "abc")),
    ("any-narrowed object: 1,000 keys x 90-char values", {"max_len": 1}, {f"k{i}": "v" * 90 for i in range(1000)}),
]


def build() -> tuple[dict[str, tuple[Callable[[], object], int]], dict[str, bool]]:
    """A guard, one task covering every case, and a decision closure per case."""
    policy = Policy(agent_id="worst", capabilities=[
        Capability(f"t{i}", args={"v": spec}) for i, (_, spec, _) in enumerate(CASES)
    ])
    plan = Plan(steps=[Step(f"t{i}", args={"v": {"any": True}}, max_calls=1_000_000) for i in range(len(CASES))])
    guard = Guard(policy)
    ctx = contextvars.copy_context()
    ctx.run(guard.task(plan, identity=ME, ttl_s=900).__enter__)
    cases: dict[str, tuple[Callable[[], object], int]] = {}
    verdicts: dict[str, bool] = {}
    for i, (label, _, value) in enumerate(CASES):
        args = {"v": value}
        tool = f"t{i}"

        def decide(tool: str = tool, args: dict[str, Any] = args) -> object:
            return ctx.run(guard.authorize, tool, args)

        verdicts[label] = bool(decide())
        cases[label] = (decide, 20)
    return cases, verdicts


def main() -> None:
    """Measure every case and print one line each, then the DFA-hostile regex for comparison."""
    cases, verdicts = build()
    found = compare(cases, rounds=9)
    print("agent_guard worst-case decisions (median µs per Guard.authorize, 9 interleaved rounds; goal ≤ 1,000)")
    for label, us in found.items():
        print(row(label, us, note="allowed" if verdicts[label] else "denied"))
    print(row("worst of all", max(found.values())))
    hostile = compile_constraint({"regex": DFA_HOSTILE})
    rng = random.Random(1)
    times = []
    for _ in range(9):  # a new input each time: a repeated one would find the DFA states already cached
        value = "".join(rng.choice("ab") for _ in range(N))
        start = time.perf_counter_ns()
        hostile(value)
        times.append((time.perf_counter_ns() - start) / 1000)
    us = statistics.median(times)
    print("\nA pattern whose RE2 DFA keeps blowing up is still linear, but slow (policy authors: avoid it):")
    print(row(f"regex {DFA_HOSTILE}, 10,000 random a/b (predicate alone)", us))


if __name__ == "__main__":
    main()
