"""The constraint vocabulary: validation errors and fail-closed predicates."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pytest

from agent_guard import ConfigError, compile_constraint, normalize_constraint
from agent_guard.authorization._constraints import compile_conjunction, is_narrowing, is_optional


def ok(spec: Any, value: Any) -> bool:
    return compile_constraint(spec)(value)


class TestOperators:
    """Each operator accepts what it should and refuses the rest."""

    @pytest.mark.parametrize(
        ("spec", "good", "bad"),
        [
            ({"eq": "a"}, "a", ["b", None, 1]),
            ({"eq": 1}, 1, [1.0, True, "1"]),
            ({"eq": True}, True, [1, "true"]),
            ({"eq": [1, "x"]}, [1, "x"], [[1], [True, "x"], "1x"]),
            ({"eq": {"k": 1}}, {"k": 1}, [{"k": True}, {"k": 1, "j": 2}]),
            ({"in": ["a", "b"]}, "b", ["c", None, ["a"]]),
            ({"in": [1, 2]}, 2, [True, 2.5, "2"]),
            ({"prefix": "O-"}, "O-17", ["X-O-17", 17, None]),
            ({"glob": "*@example.com"}, "alice@example.com", ["alice@example.com.evil.net", "a@evil.com", 5]),
            ({"glob": "[report] *"}, "[report] q3", ["r x", "e x"]),
            ({"glob": r"a\*b"}, "a*b", ["axxb"]),
            ({"regex": r"C-\d+"}, "C-42", ["C-42\n", "xC-42", "C-", 42, "C-٤٢", "C-\ud800"]),
            ({"min": 0, "max": 500}, 500, [-1, 500.5, True, math.nan, math.inf, "5"]),
            ({"max": 10}, 2.5, [11, None]),
            ({"max_len": 3}, "abc", ["abcd", 123]),
            ({"max_len": 2}, [1, 2], [[1, 2, 3], (1,), [object()]]),
            ({"host_in": ["api.example.com"]}, "https://api.example.com/v1",
             ["http://api.example.com/", "https://good@evil.com/", "https://api.example.com.evil.com/",
              "https://api.example.com:notaport/", 7]),
            ({"path_prefix": "/srv/data/p42"}, "/srv/data/p42/a.csv",
             ["/srv/data/p42-evil/x", "/srv/data/p42/../../etc/passwd", "relative/p42", "/srv/data/p42/\0x"]),
            ({"each": {"glob": "*@example.com"}}, ["a@example.com", "b@example.com"],
             [["a@example.com", "m@evil"], "a", ("a@example.com",)]),
            ({"email_domain_in": ["example.com"]}, "alice@example.com",
             ["mallory@evil.com,alice@example.com", "mallory@evil.com\r\nBcc: a@example.com",
              "<mallory@evil.com> a@example.com", "Alice <alice@example.com>", '"a b"@example.com',
              "alice@sub.example.com", "alice@example.com.", "alice(x)@example.com", " alice@example.com", 7]),
            ({"any": True}, object(), []),
            ({"glob": "*.txt", "max_len": 8}, "a.txt", ["abcdefgh.txt", "a.csv"]),
        ],
    )
    def test_operator(self, spec: dict[str, Any], good: Any, bad: list[Any]) -> None:
        """The good value passes and every bad value is refused."""
        assert ok(spec, good)
        for value in bad:
            assert not ok(spec, value), value

    def test_path_prefix_accepts_the_root_itself_and_refuses_any_dotdot(self) -> None:
        """The prefix itself is allowed; any '..' is refused, even one that stays inside the root.

        '/srv/data/a/../b' is '/srv/data/b' only when 'a' is no symlink; the kernel resolves it
        through the link, so a lexical check cannot vouch for it.
        """
        assert ok({"path_prefix": "/srv/data/"}, "/srv/data")
        assert ok({"path_prefix": "/srv/data"}, "/srv/data/./b//c")
        assert not ok({"path_prefix": "/srv/data"}, "/srv/data/a/../b")

    def test_regex_input_is_bounded(self) -> None:
        """Overlong input is a non-match rather than unbounded matching work."""
        assert not ok({"regex": "a*"}, "a" * 20_000)

    def test_literal_means_eq(self) -> None:
        """A non-object spec is a literal: must equal."""
        assert normalize_constraint("x") == {"eq": "x"}
        assert ok("x", "x") and not ok("x", "y")


class TestValidation:
    """Bad specs are refused with the field named, and compile to deny-all."""

    @pytest.mark.parametrize(
        ("spec", "fragment"),
        [
            ({"startswith": "a"}, "unknown operator 'startswith'"),
            ({}, "empty constraint"),
            ({"in": []}, "non-empty list"),
            ({"regex": "("}, "not a valid RE2 regular expression"),
            ({"regex": "a" * 300}, "longer than"),
            ({"min": True}, "finite number"),
            ({"min": math.nan}, "finite number"),
            ({"max_len": -1}, ">= 0"),
            ({"path_prefix": "srv"}, "absolute"),
            ({"any": False}, "must be true"),
            ({"optional": "yes"}, "true or false"),
            ({"min": 5, "max": 1}, "greater than max"),
            ({"host_in": [1]}, "host names"),
            ({"eq": math.inf}, "NaN and infinity"),
            ({"eq": object()}, "not a JSON value"),
        ],
    )
    def test_bad_spec(self, spec: dict[str, Any], fragment: str) -> None:
        """The error names the field and what is wrong."""
        with pytest.raises(ConfigError, match="to") as info:
            normalize_constraint(spec, "to")
        assert fragment in str(info.value)

    def test_unknown_operator_compiles_to_deny_all(self) -> None:
        """A spec that arrives malformed (e.g. from a grant) refuses every value."""
        check = compile_constraint({"bogus": 1})
        assert not check("anything") and not check(None)
        assert compile_conjunction([{"any": True}, {"weird": 1}]) is not None
        assert not compile_conjunction([{"any": True}, {"weird": 1}])("x")  # type: ignore[misc]

    def test_flags(self) -> None:
        """any/optional do not narrow; optional marks an argument that may be absent."""
        assert not is_narrowing({"any": True, "optional": True})
        assert is_narrowing({"eq": 1})
        assert is_optional({"any": True, "optional": True}) and not is_optional({"any": True})
        assert compile_conjunction([{"any": True}]) is None


class TestConjunctionWithALiteral:
    """A step that pins a literal ANDed with the ceiling folds to one equality check, same verdicts."""

    @pytest.mark.parametrize(
        ("specs", "values"),
        [
            (["alice@example.com", {"glob": "*@example.com"}],
             ["alice@example.com", "bob@example.com", "alice@example.com.evil.net", 5, None]),
            ([{"eq": 7}, {"min": 0, "max": 10}], [7, 7.0, True, 8, "7", -0.0]),
            ([{"eq": 0.0}, {"min": 0}], [0.0, -0.0, 0, False, 1e-9]),
            ([{"eq": True}, {"in": [True, False]}], [True, 1, False, "true"]),
            ([{"eq": None}, {"any": True}], [None, 0, "", False]),
            ([{"max_len": 5}, {"eq": "abc", "prefix": "a"}], ["abc", "abcd", "ab"]),
        ],
    )
    def test_same_verdicts_as_each_predicate_anded(self, specs: list[Any], values: list[Any]) -> None:
        folded = compile_conjunction(specs)
        assert folded is not None
        for value in values:
            expected = all(compile_constraint(spec)(value) for spec in specs)
            assert folded(value) is expected, (specs, value)

    def test_a_literal_outside_the_ceiling_refuses_everything(self) -> None:
        """A pinned value the ceiling refuses cannot be passed at all, not even the value itself."""
        check = compile_conjunction(["alice@evil.com", {"glob": "*@example.com"}])
        assert check is not None
        assert not check("alice@evil.com") and not check("alice@example.com")

    def test_a_malformed_literal_from_a_grant_refuses_everything(self) -> None:
        """A NaN (not JSON) pinned in a grant compiles to deny-all, folded or not."""
        for specs in ([{"eq": math.nan}, {"min": 0}], [{"eq": math.inf}], [{"eq": 1, "bogus": 2}, {"max": 5}]):
            check = compile_conjunction(specs)
            assert check is not None
            assert not any(check(v) for v in (math.nan, math.inf, 1, 0)), specs


class TestEmailDomainIn:
    """email_domain_in: exactly one plain address whose domain is listed; glob on addresses is not enough."""

    SPEC: ClassVar[dict[str, Any]] = {"email_domain_in": ["example.com", "Bücher.example"]}
    BYPASSES = ("mallory@evil.com,alice@example.com", "mallory@evil.com\r\nBcc: a@example.com",
                "<mallory@evil.com> a@example.com")

    def test_the_glob_findings_are_refused(self) -> None:
        """The three values that passed glob '*@example.com' are refused; glob itself still passes two."""
        for value in self.BYPASSES:
            assert not ok(self.SPEC, value), value
        glob = compile_constraint({"glob": "*@example.com"})
        assert [glob(v) for v in self.BYPASSES] == [True, False, True]  # why addresses need email_domain_in

    @pytest.mark.parametrize("value", ["alice@example.com", "ALICE@Example.COM", "a.b+tag@example.com",
                                       "o'neil@example.com", "x@xn--bcher-kva.example", "{}|~!#$%&*/=?^_`@example.com"])
    def test_plain_addresses(self, value: str) -> None:
        assert ok(self.SPEC, value)

    @pytest.mark.parametrize("value", [
        "Alice <alice@example.com>", "alice@example.com (Alice)", '"alice"@example.com', '"a@evil.com"@example.com',
        "alice@example.com,", "alice@example.com;b@example.com", " alice@example.com", "alice@example.com ",
        "alice@example.com\n", "ali\x00ce@example.com", "alice@sub.example.com", "alice@example.com.",
        "alice@example.com.evil.com", "alice@[127.0.0.1]", "alice@", "@example.com", "alice", ".alice@example.com",
        "alice.@example.com", "a..b@example.com", "a@b@example.com", "é@example.com", "alice@bücher.example",
        "alice@example\u3002com", "alice@\uff45xample.com", "a" * 65 + "@example.com", ["alice@example.com"], None,
    ])
    def test_everything_else_is_refused(self, value: object) -> None:
        assert not ok(self.SPEC, value), value

    def test_operand_is_canonicalized_and_validated(self) -> None:
        assert normalize_constraint({"email_domain_in": ["Example.COM.", "bücher。example"]}) == {
            "email_domain_in": ["example.com", "xn--bcher-kva.example"]}
        for bad, fragment in [([], "non-empty list"), (["1.2.3.4"], "not IP addresses"), (["[::1]"], "not IP"),
                              (["a b.com"], "not a valid host name"), (["*.example.com"], "not a valid host name"),
                              ("example.com", "non-empty list")]:
            with pytest.raises(ConfigError, match=fragment):
                normalize_constraint({"email_domain_in": bad}, "to")


class TestHostIn:
    """host_in: the operand is canonicalized at load; the URL must be unambiguous (see tests/security)."""

    def test_operand_canonical_form(self) -> None:
        assert normalize_constraint({"host_in": ["API.Example.com.", "bücher.example", "[0:0::1]", "192.0.2.1"]}) == {
            "host_in": ["api.example.com", "xn--bcher-kva.example", "[::1]", "192.0.2.1"]}

    @pytest.mark.parametrize("host", ["127.1", "0x7f.0.0.1", "1.2.3.04", "a.b.09", "faß.de", "a_b.com", "-a.com",
                                      "a..b", "a b", "[fe80::1%eth0]", "xn--zz.com", "", "x" * 64 + ".com"])
    def test_invalid_hosts_are_config_errors(self, host: str) -> None:
        with pytest.raises(ConfigError, match=r"url\.host_in"):
            normalize_constraint({"host_in": [host]}, "url")

    def test_the_finding(self) -> None:
        """urllib.parse reads good.com here, urllib3/requests connect to 127.0.0.1: refused."""
        assert not ok({"host_in": ["good.com"]}, "https://127.0.0.1:9\\@good.com/")
        assert ok({"host_in": ["good.com"]}, "https://good.com:9/a@b")


class TestPathPrefix:
    """path_prefix: absolute, no '..', no NUL or backslash, compared on component boundaries."""

    ROOT: ClassVar[dict[str, Any]] = {"path_prefix": "/srv/reports"}

    @pytest.mark.parametrize("value", ["/srv/reports", "/srv/reports/", "/srv/reports/q3.csv", "/srv/reports/./q3.csv",
                                       "/srv//reports//q3.csv", "//srv/reports/q3.csv", "/srv/reports/.", "/srv/./reports"])
    def test_inside(self, value: str) -> None:
        assert ok(self.ROOT, value)

    @pytest.mark.parametrize("value", [
        "/srv/reports/../../home/alice/secrets.csv", "/srv/reports/..", "/srv/reports/../reports/q3.csv",
        "/srv/reports/a/../../x", "/srv/reports-evil/x", "/srv/report", "/srv", "/", "srv/reports/q3.csv",
        "./srv/reports", "", "/srv/reports/q3.csv\0.txt", "/srv/reports\0", "/srv/reports/..\\..\\etc\\passwd",
        "\\srv\\reports\\x", "~/srv/reports", b"/srv/reports/x", ["/srv/reports/x"],
    ])
    def test_outside(self, value: object) -> None:
        assert not ok(self.ROOT, value), value

    def test_operand(self) -> None:
        assert normalize_constraint({"path_prefix": "/srv//reports/./"}) == {"path_prefix": "/srv/reports"}
        for bad in ("srv", "/srv/../etc", "/srv\0", "C:\\srv", 5):
            with pytest.raises(ConfigError, match="absolute POSIX path"):
                normalize_constraint({"path_prefix": bad})


class TestGlobAndControlCharacters:
    """A glob never matches a value with a control character, and refuses a pattern holding one."""

    @pytest.mark.parametrize("value", ["a\r\nb.txt", "a\n.txt", "\x00.txt", "a\x7f.txt", "a\x85.txt", "a\u2028.txt",
                                       "a\x1b[31m.txt"])
    def test_control_characters_never_match(self, value: str) -> None:
        assert not ok({"glob": "*.txt"}, value)
        assert not ok({"glob": "*"}, value)

    def test_pattern_with_a_control_character(self) -> None:
        with pytest.raises(ConfigError, match="never matches control characters"):
            normalize_constraint({"glob": "*\n*"})

    def test_literal_stars_and_segments(self) -> None:
        assert ok({"glob": r"a\*b*"}, "a*bc") and not ok({"glob": r"a\*b*"}, "axbc")
        assert ok({"glob": "a*b*a"}, "aba") and not ok({"glob": "a*b*a"}, "ab")
        assert ok({"glob": "**"}, "") and ok({"glob": ""}, "") and not ok({"glob": ""}, "x")


class TestExactTypes:
    """No coercion: tuples are not lists, subclasses are not their base type, operands are canonical."""

    def test_tuples_never_equal_lists(self) -> None:
        assert ok({"eq": [1, 2]}, [1, 2]) and not ok({"eq": [1, 2]}, (1, 2))
        assert not ok({"in": [[1]]}, (1,))
        assert not ok({"each": {"min": 0}}, (1, 2))

    def test_operand_tuples_become_lists(self) -> None:
        assert normalize_constraint({"eq": (1, (2, 3))}) == {"eq": [1, [2, 3]]}
        assert normalize_constraint((1, 2)) == {"eq": [1, 2]}

    def test_folded_literal_is_exact(self) -> None:
        """A step literal ANDed with a ceiling folds to an exact-type equality."""

        class Sub(str):
            pass

        check = compile_conjunction(["alice@example.com", {"email_domain_in": ["example.com"]}])
        assert check is not None and check("alice@example.com") and not check(Sub("alice@example.com"))
