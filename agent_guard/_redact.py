"""Connection URLs made safe to print: no userinfo, no query (either may carry a credential)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """``url`` without its userinfo and query string, for reprs, error messages and logs.

    ``redis://user:pw@host:6379/0?password=pw`` becomes ``redis://***@host:6379/0?***``. A URL
    that cannot be parsed is replaced as a whole: nothing of it is echoed.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except (TypeError, ValueError):
        return "<unparseable URL>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = ("***@" if "@" in parts.netloc else "") + host + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))
