"""A verify-only key set loaded from a JWKS URL, cached, refreshed on an unknown ``kid``."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import jwt

from agent_guard._redact import redact_url
from agent_guard.authorization._keys import Algorithm, KeySet, SigningKey
from agent_guard.exceptions import ConfigError, GrantError

__all__ = ["RemoteKeySet"]

_MAX_JWKS_BYTES: Final = 256 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a JWKS URL is configuration, it must not send us elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _JWKSClient(jwt.PyJWKClient):
    """PyJWT's JWKS client with a stricter fetch: no redirect, no proxy unless configured, a size cap.

    Caching and the refresh rate limit stay in :class:`RemoteKeySet`, which runs on an injectable
    clock; this client only fetches and parses (``cache_jwk_set=False``).
    """

    def __init__(self, url: str, *, timeout_s: float, proxies: Mapping[str, str] | None) -> None:
        super().__init__(url, cache_jwk_set=False, timeout=timeout_s, headers={
            "Accept": "application/jwk-set+json, application/json", "User-Agent": "agent-guard",
        })
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler(dict(proxies or {})), _NoRedirect())

    def fetch_data(self) -> Any:
        """GET the JWKS (at most 256 KiB of JSON); raises ``OSError``/``ValueError`` on failure."""
        request = urllib.request.Request(self.uri, headers=self.headers)
        with self._opener.open(request, timeout=self.timeout) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            body = response.read(_MAX_JWKS_BYTES + 1)
        if len(body) > _MAX_JWKS_BYTES:
            raise ValueError(f"the JWKS is larger than {_MAX_JWKS_BYTES} bytes")
        return json.loads(body)


class RemoteKeySet(KeySet):
    """Public keys fetched from an ``http(s)`` JWKS URL (e.g. :func:`agent_guard.jwks.serve_jwks`).

    Verify-only: ``Guard(keys=RemoteKeySet(url), store=...)`` enforces and attaches grants but
    cannot mint. Keys are fetched on first use and cached for ``cache_s`` seconds; an unknown
    ``kid`` triggers a refresh, at most once per ``min_refresh_interval_s`` (so a flood of bogus
    kids cannot hammer the endpoint). A failed fetch keeps the keys cached so far; a grant whose key
    is not known is refused (:class:`GrantError`, ``invalid_grant``): fail closed. Redirects are
    refused, only ``http``/``https`` URLs are accepted, and no proxy is used unless ``proxies``
    is given (a ``urllib`` proxy map). Thread-safe.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_s: float = 300,
        min_refresh_interval_s: float = 10,
        timeout_s: float = 2.0,
        proxies: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("url: expected an http:// or https:// JWKS URL, e.g. https://issuer/.well-known/jwks.json")
        if cache_s <= 0 or min_refresh_interval_s < 0 or min_refresh_interval_s > cache_s:
            raise ConfigError("cache_s/min_refresh_interval_s: need cache_s > 0 and 0 <= min_refresh_interval_s <= cache_s")
        if not 0 < timeout_s <= 30:
            raise ConfigError(f"timeout_s: {timeout_s} is outside (0, 30] seconds")
        super().__init__([])
        self.url = url
        self.cache_s = cache_s
        self.min_refresh_interval_s = min_refresh_interval_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._client = _JWKSClient(url, timeout_s=timeout_s, proxies=proxies)
        self._refresh_lock = threading.Lock()
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self.fetches = 0
        """How many times the JWKS was requested (successful or not)."""
        self.last_error: str | None = None
        """Why the last fetch failed (``None`` after a success)."""

    def __repr__(self) -> str:
        return f"RemoteKeySet({redact_url(self.url)!r}, kids={list(self.kids)!r})"

    # -- lookups ----------------------------------------------------------------------------
    def get(self, kid: str) -> SigningKey | None:
        """The key for ``kid``: from the cache, refreshed when stale or when ``kid`` is unknown.

        Raises :class:`GrantError` when the key is unknown and the JWKS could not be fetched.
        """
        key = self._keys.get(kid)
        if key is not None and not self._stale():
            return key
        self._maybe_refresh()
        key = self._keys.get(kid)
        if key is None and self._fetched_at is None and self.last_error is not None:
            raise GrantError(f"the JWKS could not be fetched ({self.last_error}), so no grant can be verified")
        return key

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self.cache_s

    def _maybe_refresh(self) -> None:
        with self._refresh_lock:
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self.min_refresh_interval_s:
                return
            self._attempted_at = now
            self.refresh()

    def refresh(self) -> bool:
        """Fetch the JWKS now (no rate limit). True on success; on failure the cache is kept."""
        self.fetches += 1
        try:
            fresh = KeySet.from_jwks(self._client.fetch_data())
        except (OSError, ValueError, ConfigError, jwt.PyJWTError) as err:
            self.last_error = f"{type(err).__name__}: {err}".replace(self.url, redact_url(self.url))[:200]
            return False
        with self._lock:
            self._keys = {kid: key for kid in fresh.kids if (key := fresh.get(kid)) is not None}
        self._fetched_at = self._clock()
        self.last_error = None
        return True

    # -- a remote set never signs -------------------------------------------------------------
    def rotate(self, alg: Algorithm | None = None, *, kid: str | None = None) -> SigningKey:
        """Not possible: a remote key set is verify-only (rotate on the issuer, which serves the JWKS)."""
        raise ConfigError("keys: a RemoteKeySet is verify-only; rotate the issuer's KeySet instead")
