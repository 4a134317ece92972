"""The base of every frozen model: strict, immutable, and errors re-raised as ``ConfigError``."""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from typing_extensions import Self

from agent_guard.exceptions import ConfigError

__all__ = ["Frozen", "canonical_hash", "config_errors"]


def canonical_hash(data: Any) -> str:
    """``sha-256:`` + base64url SHA-256 of the canonical (sorted, compact) JSON of ``data``."""
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).rstrip(b"=").decode()
    return f"sha-256:{digest}"


def _format_errors(model: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors(include_url=False):
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc or '(root)'}: {msg}")
    return f"invalid {model}:\n" + "\n".join(lines)


_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("agent_guard_validation_depth", default=0)


@contextlib.contextmanager
def config_errors(model: str) -> Iterator[None]:
    """Turn pydantic's ValidationError into ConfigError, once, at the outermost model."""
    depth = _DEPTH.get()
    token = _DEPTH.set(depth + 1)
    try:
        yield
    except ValidationError as err:
        if depth:  # nested model: let the outermost one report every error with its full path
            raise
        raise ConfigError(_format_errors(model, err)) from None
    finally:
        _DEPTH.reset(token)


class Frozen(BaseModel):
    """Base: frozen, no unknown fields, pydantic errors re-raised as ConfigError."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    def __init__(self, **data: Any) -> None:
        with config_errors(type(self).__name__):
            super().__init__(**data)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Validate a dict (or object); raises :class:`ConfigError` naming each bad field."""
        with config_errors(cls.__name__):
            return super().model_validate(obj, *args, **kwargs)

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, *args: Any, **kwargs: Any) -> Self:
        """Validate JSON text; raises :class:`ConfigError` naming each bad field."""
        with config_errors(cls.__name__):
            return super().model_validate_json(json_data, *args, **kwargs)
