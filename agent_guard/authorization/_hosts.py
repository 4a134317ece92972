"""Hosts, URLs and e-mail addresses, decided only when every reader would agree.

One canonical host form is compared everywhere: lowercase, IDNA 2008 A-labels (``xn--``), no
trailing dot; an IPv4 address in dotted decimal, an IPv6 address bracketed and compressed. Policy
operands are canonicalized once, at load (:func:`canonical_host`); a value is never repaired at
call time: it is accepted only when it is already unambiguous, and its host, lowercased and
without one trailing dot, must then be *exactly* one of the canonical operands.

``host_in`` (URLs): ``https`` only; the authority (between ``https://`` and the first ``/``, ``?``
or ``#``) must be ASCII with no userinfo (``@``), no percent-encoding, a non-empty host and an
optional numeric port; the whole URL may hold no backslash, whitespace or control character
(they are where parsers disagree: ``https://127.0.0.1:9\\@good.com/`` is good.com to
``urllib.parse`` and 127.0.0.1 to ``urllib3``).

``email_domain_in`` (addresses): exactly one plain ``local@domain`` (no display name, list,
angle brackets, quotes, comments, whitespace or control characters); the local part is an RFC
5322 dot-atom; the domain is ASCII (write an internationalized one as its A-label) and must equal
a listed domain: a subdomain is another domain.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

import idna

from agent_guard.authorization._values import MAX_MATCH_INPUT
from agent_guard.exceptions import ConfigError

__all__ = ["MAX_EMAIL_LEN", "canonical_host", "compile_email_domain_in", "compile_host_in", "url_host"]

MAX_EMAIL_LEN: Final = 254
"""Longest address (RFC 5321 path limit); the local part is at most 64 characters."""

_LDH: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC: Final = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")
_ATOM: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM: Final = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_PORT: Final = re.compile(r"[0-9]{1,5}")
_DEVIATIONS: Final = frozenset("\u00df\u03c2\u200c\u200d")
"""ß, ς, ZWNJ, ZWJ: the characters IDNA 2003 (and transitional UTS #46) map differently from IDNA 2008."""


def _domain(host: str) -> str:
    mapped = idna.uts46_remap(host, std3_rules=False)
    if any(c in _DEVIATIONS for c in mapped):
        raise ValueError("it holds a character (ß, ς, ZWJ, ZWNJ) that IDNA 2003 and 2008 map to different "
                         "domains; write the A-label (xn--...) you mean")
    mapped = mapped[:-1] if mapped.endswith(".") else mapped
    labels = mapped.split(".")
    if _NUMERIC.fullmatch(labels[-1]):  # WHATWG reads a host ending in a number as an IPv4 address
        address = ipaddress.IPv4Address(mapped)  # strict dotted decimal: ValueError for 127.1 or 0x7f...
        return str(address)
    out = []
    for label in labels:
        if label.isascii() and not label.startswith("xn--"):
            if not _LDH.fullmatch(label):
                raise ValueError(f"label {label!r} is not letters, digits and inner hyphens")
            out.append(label)
        else:
            out.append(idna.alabel(label).decode("ascii"))
    name = ".".join(out)
    if len(name) > 253:
        raise ValueError("it is longer than 253 characters")
    return name


def canonical_host(host: object, field: str) -> str:
    """The canonical form of a host name or IP address; :class:`ConfigError` naming ``field`` if invalid."""
    if not isinstance(host, str) or not host:
        raise ConfigError(f"{field}: needs host names (non-empty strings)")
    try:
        if not host.isprintable() or " " in host:
            raise ValueError("it holds whitespace or a control character")
        if host.startswith("[") or ":" in host:
            inner = host[1:-1] if host.startswith("[") and host.endswith("]") else host
            if "%" in inner:
                raise ValueError("an IPv6 zone id (%...) names an interface, not a host")
            return f"[{ipaddress.IPv6Address(inner).compressed}]"
        return _domain(host)
    except (ValueError, UnicodeError) as err:  # idna.IDNAError is a UnicodeError
        raise ConfigError(
            f"{field}: {host!r} is not a valid host name ({err}); write a DNS name such as "
            "'api.example.com', an IPv4 address such as '192.0.2.1' or an IPv6 address such as '[2001:db8::1]'"
        ) from None


def url_host(url: object) -> str | None:
    """The host of an unambiguous ``https`` URL, lowercased, without one trailing dot; else ``None``."""
    if type(url) is not str or len(url) > MAX_MATCH_INPUT:
        return None
    scheme = url[:8]
    if not url.isprintable() or " " in url or "\\" in url or not scheme.isascii() or scheme.lower() != "https://":
        return None
    rest = url[8:]
    end = len(rest)
    for sep in "/?#":
        found = rest.find(sep, 0, end)
        if found >= 0:
            end = found
    authority = rest[:end]
    if not authority.isascii() or "@" in authority or "%" in authority:
        return None
    if authority.startswith("["):
        close = authority.find("]")
        host, port = (authority[: close + 1], authority[close + 1 :]) if close > 0 else ("", "")
    else:
        host, colon, number = authority.partition(":")
        port = colon + number
    if port and not (port[0] == ":" and _PORT.fullmatch(port, 1) and int(port[1:]) <= 65535):
        return None
    host = host.lower()
    host = host[:-1] if host.endswith(".") else host
    return host or None


def compile_host_in(hosts: Sequence[str]) -> Callable[[Any], bool]:
    """``host_in``: an unambiguous ``https`` URL whose host is one of ``hosts`` (canonical forms)."""
    allowed = frozenset(hosts)
    return lambda v: url_host(v) in allowed


def compile_email_domain_in(domains: Sequence[str]) -> Callable[[Any], bool]:
    """``email_domain_in``: one plain ``local@domain`` whose domain is one of ``domains`` (canonical)."""
    allowed = frozenset(domains)
    dot_atom = _DOT_ATOM.fullmatch

    def check(v: Any) -> bool:
        if type(v) is not str or len(v) > MAX_EMAIL_LEN or v.count("@") != 1:
            return False
        local, _, domain = v.partition("@")
        if len(local) > 64 or not domain.isascii() or dot_atom(local) is None:
            return False
        return domain.lower() in allowed

    return check
