"""Key sets: generation per algorithm, rotation, JWKS export without private material."""

from __future__ import annotations

import json

import pytest

from agent_guard import ConfigError, KeySet


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_jwks_exports_public_keys_only(alg: str) -> None:
    """The JWKS has kid/alg/use and no private member."""
    keys = KeySet.generate(alg)  # type: ignore[arg-type]
    (jwk,) = keys.jwks()["keys"]
    assert jwk["kid"] == keys.current.kid and jwk["alg"] == alg and jwk["use"] == "sig"
    assert "d" not in jwk


def test_hmac_secret_never_exported() -> None:
    """An HS256 secret is not published in the JWKS."""
    assert KeySet.generate("HS256").jwks() == {"keys": []}


def test_rotation_keeps_old_public_keys() -> None:
    """rotate() switches the signer; the old key stays until retired."""
    keys = KeySet.generate()
    old = keys.current.kid
    new = keys.rotate().kid
    assert keys.current.kid == new != old
    assert {k["kid"] for k in keys.jwks()["keys"]} == {old, new}
    keys.retire(old)
    assert keys.kids == (new,)
    with pytest.raises(ConfigError, match="current signing key"):
        keys.retire(new)


def test_verify_only_set_cannot_sign() -> None:
    """A set loaded from a JWKS verifies but has no current signer."""
    public = KeySet.from_jwks(json.dumps(KeySet.generate().jwks()))
    assert not public.can_sign
    with pytest.raises(ConfigError, match="only public keys"):
        public.current  # noqa: B018


def test_private_jwks_round_trip() -> None:
    """to_private_jwks/from_private_jwks restore signing keys with the same current kid."""
    keys = KeySet.generate()
    keys.rotate("ES256")
    again = KeySet.from_private_jwks(keys.to_private_jwks())
    assert again.current.kid == keys.current.kid and again.jwks() == keys.jwks()
    with pytest.raises(ConfigError, match="no private key"):
        KeySet.from_private_jwks(keys.jwks())


@pytest.mark.parametrize(
    ("jwks", "fragment"),
    [
        ("not json", "expected a JSON object"),
        ({"keys": "x"}, "list of JWK"),
        ({"keys": [{"alg": "EdDSA"}]}, "needs a kid"),
        ({"keys": [{"kid": "k", "alg": "HS256", "kty": "oct", "k": "AAAA"}]}, "not accepted"),
        ({"keys": [{"kid": "k", "alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": "!!"}]}, "not a valid"),
    ],
)
def test_bad_jwks(jwks: object, fragment: str) -> None:
    """A malformed JWKS is a ConfigError that says what is wrong."""
    with pytest.raises(ConfigError, match=fragment):
        KeySet.from_jwks(jwks)  # type: ignore[arg-type]
