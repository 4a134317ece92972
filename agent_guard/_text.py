"""Make untrusted text safe to print on an operator's terminal.

Tool names, argument names, call ids and grant claims come from a model or from a token anyone
can write. Printed raw, ``"\\x1b[2K\\r\\x1b[1A"`` erases and rewrites the lines above it, a ``\\n``
forges a row of a table, and a right-to-left override reverses what follows it. Every
human-readable output of agent_guard (``agent-guard audit show``, ``inspect``, ``demo``, the
plain-text tables of :mod:`agent_guard.telemetry` and :mod:`agent_guard.testing`) passes its
cells through :func:`printable`.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["printable"]

# C0 controls, DEL and the C1 controls; the bidirectional marks, embeddings, overrides and
# isolates (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069); the line and paragraph separators
# (U+2028/U+2029); and lone surrogates (which cannot even be encoded to UTF-8).
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``value`` as text with every control character shown as a visible escape.

    ESC becomes ``\\x1b``, a newline ``\\x0a``, U+202E ``\\u202e`` and a lone surrogate
    ``\\ud800``; everything else (letters of any script, emoji, spaces) is kept. ``None`` and
    other objects are converted with ``str`` first. Backslashes are kept as they are, so a
    literal ``\\x1b`` typed by someone and an escaped ESC look alike: the point is that
    nothing reaches the terminal as a control sequence.
    """
    text = value if isinstance(value, str) else str(value)
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape, text)
