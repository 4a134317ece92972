"""host_in against four URL parsers: every URL it allows has one host for all of them, in the list.

The parsers are the stdlib (``urllib.parse.urlsplit``), urllib3 (what requests connects to),
httpx, and a WHATWG parser (``ada_url``, what browsers and Node do). A URL on which any two of
them disagree must be refused; hypothesis mixes the characters where they do disagree.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import urllib3.util
from ada_url import URL as WhatwgURL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_guard import compile_constraint

ALLOWED = ["good.com", "Bücher.example", "127.0.0.1", "::1"]
CANONICAL = {"good.com", "xn--bcher-kva.example", "127.0.0.1", "[::1]"}
host_in = compile_constraint({"host_in": ALLOWED})


def canonical(host: str | None) -> str | None:
    """Lowercase, one trailing dot dropped, IPv6 bracketed: the form the four readings are compared in."""
    if not host:
        return None
    host = host.lower()
    host = host[:-1] if host.endswith(".") else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host


def readings(url: str) -> dict[str, Any]:
    """The host each parser reads from ``url`` (an exception counts as a reading of its own)."""
    out: dict[str, Any] = {}
    parsers = {
        "urllib.parse": lambda: urlsplit(url).hostname,
        "urllib3": lambda: urllib3.util.parse_url(url).host,
        "httpx": lambda: httpx.URL(url).raw_host.decode("ascii"),
        "whatwg": lambda: WhatwgURL(url).hostname,
    }
    for name, read in parsers.items():
        try:
            out[name] = canonical(read())
        except Exception as err:  # a parser refusing the URL is a reading too
            out[name] = f"<{type(err).__name__}>"
    return out


def assert_unambiguous_if_allowed(url: str) -> None:
    """If host_in allows ``url``, all four parsers read the same host, and it is listed."""
    if not host_in(url):
        return
    found = readings(url)
    assert len(set(found.values())) == 1, (url, found)
    assert next(iter(found.values())) in CANONICAL, (url, found)


HOSTILE = [
    "https://127.0.0.1:9\\@good.com/",  # urllib.parse: good.com; urllib3/requests: 127.0.0.1
    "https://good.com\\@evil.com/",
    "https://evil.com\\@good.com/",
    "https://evil.com\\.good.com/",
    "https://good.com@evil.com/",
    "https://evil.com@good.com/",  # userinfo is refused whatever host follows
    "https://user:pass@good.com/",
    "https://good.com%2f@evil.com/",
    "https://go%6fd.com/",
    "https://%67ood.com/",
    "https://good.com%00.evil.com/",
    "https://good.com /",
    "https:// good.com/",
    " https://good.com/",
    "https://good.com/\r\nHost: evil.com",
    "https://go\tod.com/",
    "https://goo\nd.com/",
    "https://good.com\x00/",
    "https://good.com\u200b/",
    "https://good.com\u202e/",
    "https:good.com",
    "https:/good.com",
    "https:///good.com",
    "https:\\\\good.com",
    "http://good.com/",
    "ftp://good.com/",
    "//good.com/",
    "https://good\u3002com/",
    "https://\uff47\uff4f\uff4f\uff44.com/",
    "https://good.com\uff20evil.com/",
    "https://evil.com\uff0f@good.com/",
    "https://b\u00fccher.example/",
    "https://good.com:99999/",
    "https://good.com:80:443/",
    "https://good.com:/",
    "https://good.com:+443/",
    "https://good.com:0x1bb/",
    "https://0x7f.1/",
    "https://0x7f.0.0.1/",
    "https://2130706433/",
    "https://127.1/",
    "https://0177.0.0.1/",
    "https://127.0.0.1.nip.io/",
    "https://[::ffff:127.0.0.1]/",
    "https://[0:0::1]/",
    "https://[::1%25eth0]/",
    "https://[::1]@good.com/",
    "https://[good.com]/",
    "https://good.com../",
    "https://good.com.evil.com/",
    "https://evil.com/good.com",
    "https://evil.com?good.com",
    "https://evil.com#@good.com",
    "https://good.com#\\@evil.com",
    "https://xn--zz.com/",
    "https://GOOD.COM\u0130/",
]

SAFE = [
    "https://good.com",
    "https://good.com/",
    "https://GOOD.com/x",
    "HTTPS://good.com/",
    "https://good.com./",
    "https://good.com:443/a?b#c",
    "https://good.com:8443",
    "https://good.com?x=@evil.com",
    "https://good.com#@evil.com",
    "https://good.com/@evil.com",
    "https://good.com/a%40b%2F..%2f",
    "https://good.com/\u00fc?q=\u3002",
    "https://xn--bcher-kva.example/",
    "https://XN--BCHER-KVA.example./",
    "https://127.0.0.1:8443/",
    "https://[::1]/",
    "https://[::1]:1/x",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_urls_are_refused(url: str) -> None:
    """Each hand-written trick is refused, whatever the parsers would make of it."""
    assert not host_in(url)


def test_the_hostile_corpus_is_large_and_hostile() -> None:
    """At least 30 tricks, and at least one that the parsers really do read differently."""
    assert len(HOSTILE) >= 30
    assert len(set(readings(HOSTILE[0]).values())) > 1  # the finding itself: the parsers disagree


@pytest.mark.parametrize("url", SAFE)
def test_plain_urls_are_allowed_and_read_alike(url: str) -> None:
    """Ordinary https URLs to a listed host are allowed, and every parser reads that host."""
    assert host_in(url)
    assert_unambiguous_if_allowed(url)


PIECES = [
    "\\", "@", "%", "%2e", "%40", "%00", "#", "?", "/", "//", ":", ":443", ":99999", ":0", " ", "\t", "\n",
    "\r", "\x00", "\x7f", "\u0085", "\u3002", "\uff0e", "\uff20", "\uff0f", "\uff47\uff4f\uff4f\uff44", ".",
    "..", "[", "]", "[::1]", "::1", "[::ffff:127.0.0.1]", "127.0.0.1", "127.1", "0x7f.1", "2130706433",
    "good.com", "GOOD.COM", "good.com.", "evil.com", "b\u00fccher.example", "xn--bcher-kva.example", "xn--zz",
    "user:pass@", "a", "-", "_", "\u200b", "\u202e", "\u0130", "https://", "http://",
]
TAIL = ["@", "%", "%2e", "%40", "#", "?", "/", "//", ":", "\u3002", "\uff20", "\uff0f", "[", "]", "..", "evil.com",
        "good.com", "\u00fc", "=", "&", ";", "!", "$", "'", "(", "*", "+", ",", "~", "^", "|", "`", "{", "\""]
SCHEMES = ["https://", "HTTPS://", "https:", "https:/", "https:///", "http://", "https:\\\\", " https://", ""]
HOSTS = ["good.com", "GOOD.com.", "xn--bcher-kva.example", "127.0.0.1", "[::1]", "evil.com", ""]

piece_lists = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)
hostile_text = st.text(alphabet=st.sampled_from("".join(PIECES[:30]) + "abc.:"), max_size=12)
urls = st.one_of(
    # hostile pieces anywhere
    st.tuples(st.sampled_from(SCHEMES), piece_lists, piece_lists).map("".join),
    # a plausible URL with hostile pieces before and after the host (many are allowed: the test bites)
    st.tuples(st.sampled_from(SCHEMES), piece_lists, st.sampled_from(HOSTS), st.sampled_from(["", ":443", ":8"]),
              st.sampled_from(["", "/", "?", "#"]), st.one_of(piece_lists, hostile_text)).map("".join),
    st.tuples(st.just("https://"), st.sampled_from(HOSTS), st.one_of(piece_lists, hostile_text)).map("".join),
    # a listed host, then only what may follow the authority: the parsers must still agree on the host
    st.tuples(st.just("https://"), st.sampled_from(HOSTS[:5]), st.sampled_from(["", ":443", ":1"]),
              st.sampled_from(["/", "?", "#"]), st.lists(st.sampled_from(TAIL), max_size=8).map("".join)).map("".join),
)


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(urls)
def test_every_allowed_url_has_one_host_for_every_parser(url: str) -> None:
    """Differential: whatever hypothesis builds, an allowed URL means the same listed host to all four."""
    assert_unambiguous_if_allowed(url)
