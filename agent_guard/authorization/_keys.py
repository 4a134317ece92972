"""Key sets: signing keys with ``kid``, one algorithm pinned per key, public half as JWKS."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from agent_guard.exceptions import ConfigError

__all__ = ["ALGORITHMS", "Algorithm", "KeySet", "SigningKey"]

Algorithm = Literal["EdDSA", "ES256", "HS256"]
"""Signing algorithms agent_guard accepts. HS256 is for a single process only."""

ALGORITHMS: Final = ("EdDSA", "ES256", "HS256")
_MIN_HMAC_BYTES: Final = 32


@dataclass(frozen=True)
class SigningKey:
    """One key of a key set: its ``kid``, its pinned algorithm, and the key objects.

    ``private`` is ``None`` for a verify-only key (loaded from a JWKS).
    """

    kid: str
    alg: str
    private: Any
    public: Any

    @property
    def can_sign(self) -> bool:
        """True when this key holds its private (or secret) half."""
        return self.private is not None

    def public_jwk(self) -> dict[str, Any] | None:
        """The public JWK of this key (``None`` for an HMAC secret, which must never be published)."""
        return None if self.alg == "HS256" else _to_jwk(self, self.public)


def _to_jwk(key: SigningKey, material: Any) -> dict[str, Any]:
    """``material`` (the key's public or private half) as a JWK carrying the key's kid and alg."""
    if key.alg == "EdDSA":
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(material, as_dict=True)
    elif key.alg == "ES256":
        jwk = ECAlgorithm.to_jwk(material, as_dict=True)
    else:
        jwk = {"kty": "oct", "k": base64.urlsafe_b64encode(material).rstrip(b"=").decode()}
    jwk.update({"kid": key.kid, "alg": key.alg, "use": "sig"})
    return jwk


def _jwk_entries(jwks: Mapping[str, Any] | str, field: str) -> list[Mapping[str, Any]]:
    """The ``keys`` list of a JWKS given as a dict or JSON text; ConfigError naming ``field`` otherwise."""
    try:
        data = json.loads(jwks) if isinstance(jwks, str) else jwks
        entries = data["keys"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f'{field}: expected a JSON object {{"keys": [...]}}') from None
    if not isinstance(entries, list):
        raise ConfigError(f"{field}.keys: expected a list of JWK objects")
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{field}.keys[{i}]: expected a JWK object")
    return entries


def _new_kid(alg: str) -> str:
    return f"ag-{alg.lower()}-{secrets.token_hex(6)}"


def _generate(alg: str, kid: str | None) -> SigningKey:
    kid = kid or _new_kid(alg)
    if alg == "EdDSA":
        private: Any = ed25519.Ed25519PrivateKey.generate()
        return SigningKey(kid, alg, private, private.public_key())
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        return SigningKey(kid, alg, private, private.public_key())
    if alg == "HS256":
        secret = secrets.token_bytes(_MIN_HMAC_BYTES)
        return SigningKey(kid, alg, secret, secret)
    raise ConfigError(f"alg: {alg!r} is not supported; use one of {', '.join(ALGORITHMS)}")


class KeySet:
    """Signing and verification keys addressed by ``kid``.

    ``KeySet.generate()`` makes a fresh Ed25519 key; :meth:`rotate` adds a new signing key while
    the old public keys stay for verification until :meth:`retire`; :meth:`from_jwks` loads a
    verify-only set. Thread-safe.
    """

    def __init__(self, keys: list[SigningKey] | None = None, *, current: str | None = None) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        for key in keys or []:
            if key.alg not in ALGORITHMS:
                raise ConfigError(f"keys[{key.kid!r}].alg: {key.alg!r} is not supported")
            self._keys[key.kid] = key
        self._current = current
        if current is None:
            signers = [k for k in self._keys.values() if k.can_sign]
            self._current = signers[-1].kid if signers else None
        elif current not in self._keys or not self._keys[current].can_sign:
            raise ConfigError(f"current: no signing key with kid {current!r} in the set")

    @classmethod
    def generate(cls, alg: Algorithm = "EdDSA", *, kid: str | None = None) -> KeySet:
        """A key set with one freshly generated signing key."""
        return cls([_generate(alg, kid)])

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any] | str) -> KeySet:
        """A verify-only key set from a JWKS (a dict or its JSON text). Private members are ignored."""
        keys: list[SigningKey] = []
        for i, entry in enumerate(_jwk_entries(jwks, "jwks")):
            kid, alg = entry.get("kid"), entry.get("alg")
            if not isinstance(kid, str) or not kid:
                raise ConfigError(f"jwks.keys[{i}].kid: every key needs a kid")
            if alg not in ("EdDSA", "ES256"):
                raise ConfigError(f"jwks.keys[{i}].alg: {alg!r} is not accepted; use EdDSA or ES256")
            public_only = {k: v for k, v in entry.items() if k != "d"}
            try:
                pyjwk = jwt.PyJWK(public_only, algorithm=alg)
            except jwt.PyJWTError as err:
                raise ConfigError(f"jwks.keys[{i}]: not a valid {alg} public key ({err})") from None
            keys.append(SigningKey(kid, alg, None, pyjwk.key))
        return cls(keys)

    @property
    def current(self) -> SigningKey:
        """The key new grants are signed with. Raises :class:`ConfigError` for a verify-only set."""
        with self._lock:
            kid = self._current
            if kid is None:
                raise ConfigError("keys: this key set holds only public keys; it can verify grants but not mint them")
            return self._keys[kid]

    @property
    def can_sign(self) -> bool:
        """True when the set holds a signing key."""
        return self._current is not None

    def get(self, kid: str) -> SigningKey | None:
        """The key with this ``kid``, or ``None``."""
        return self._keys.get(kid)

    @property
    def kids(self) -> tuple[str, ...]:
        """Every ``kid`` in the set."""
        with self._lock:
            return tuple(self._keys)

    def rotate(self, alg: Algorithm | None = None, *, kid: str | None = None) -> SigningKey:
        """Generate a new signing key and make it current; older keys stay for verification."""
        new = _generate(alg or (self.current.alg if self.can_sign else "EdDSA"), kid)
        with self._lock:
            self._keys[new.kid] = new
            self._current = new.kid
        return new

    def add(self, key: SigningKey) -> None:
        """Add a key (e.g. a public key learned from a JWKS refresh) without changing the signer."""
        with self._lock:
            self._keys.setdefault(key.kid, key)

    def retire(self, kid: str) -> None:
        """Remove a key once every grant it signed has expired. The current signer cannot be retired."""
        with self._lock:
            if kid == self._current:
                raise ConfigError(f"retire: {kid!r} is the current signing key; rotate() first")
            self._keys.pop(kid, None)

    def to_private_jwks(self) -> dict[str, Any]:
        """Every signing key *with its private half* as a JWKS; store it like a password (mode 0600).

        The current signer is listed last. HMAC secrets are included as ``oct`` keys.
        """
        with self._lock:
            keys = sorted(self._keys.values(), key=lambda k: k.kid == self._current)
        out: list[dict[str, Any]] = []
        for key in keys:
            if not key.can_sign:
                continue
            out.append(_to_jwk(key, key.private))
        return {"keys": out}

    @classmethod
    def from_private_jwks(cls, jwks: Mapping[str, Any] | str) -> KeySet:
        """Load signing keys written by :meth:`to_private_jwks` (the last key becomes current)."""
        keys: list[SigningKey] = []
        for i, entry in enumerate(_jwk_entries(jwks, "keys")):
            kid, alg = entry.get("kid"), entry.get("alg")
            if not isinstance(kid, str) or alg not in ALGORITHMS:
                raise ConfigError(f"keys[{i}]: needs a kid and an alg among {', '.join(ALGORITHMS)}")
            try:
                if alg == "HS256":
                    secret = base64.urlsafe_b64decode(entry["k"] + "=" * (-len(entry["k"]) % 4))
                    keys.append(SigningKey(kid, alg, secret, secret))
                    continue
                pyjwk = jwt.PyJWK(dict(entry), algorithm=alg)
            except (KeyError, TypeError, ValueError, jwt.PyJWTError) as err:
                raise ConfigError(f"keys[{i}]: not a valid private {alg} key ({type(err).__name__})") from None
            private = pyjwk.key
            if not hasattr(private, "public_key"):
                raise ConfigError(f"keys[{i}]: holds no private key; use KeySet.from_jwks for public keys")
            keys.append(SigningKey(kid, alg, private, private.public_key()))
        if not keys:
            raise ConfigError("keys: the file holds no signing key")
        return cls(keys, current=keys[-1].kid)

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWKS (private halves and HMAC secrets are never included)."""
        with self._lock:
            keys = list(self._keys.values())
        return {"keys": [jwk for k in keys if (jwk := k.public_jwk()) is not None]}
