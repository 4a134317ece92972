"""Grants: the claim set, and hardened verification where every failure is a GrantError."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest

from agent_guard import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    AgentIdentity,
    ConfigError,
    GrantError,
    KeySet,
    Plan,
    Policy,
    derive_scope,
    reasons,
    verify_grant,
)
from agent_guard.authorization._grant import mint_grant
from agent_guard.testing import FakeClock


@pytest.fixture
def keys() -> KeySet:
    """A fresh Ed25519 key set."""
    return KeySet.generate()


@pytest.fixture
def minted(keys: KeySet, plan: Plan, policy: Policy, identity: AgentIdentity, clock: FakeClock) -> tuple[str, dict[str, Any]]:
    """A grant for the sample plan, and its claims."""
    return mint_grant(keys, derive_scope(plan, policy), identity, ttl_s=300, now=clock())


def resign(keys: KeySet, claims: dict[str, Any], **headers: Any) -> str:
    """Sign arbitrary claims/headers with the trusted key (to test the checks after the signature)."""
    key = keys.current
    return jwt.encode(claims, key.private, algorithm=key.alg, headers={"typ": "agent-grant+jwt", "kid": key.kid, **headers})


def test_claim_set(minted: tuple[str, dict[str, Any]], keys: KeySet, clock: FakeClock) -> None:
    """Header and claims follow docs/design.md: typ, kid, sub=user, act.sub=agent, txn, tctx, details per step."""
    token, _ = minted
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "agent-grant+jwt" and header["alg"] == "EdDSA" and header["kid"] == keys.current.kid
    claims = verify_grant(token, keys, clock=clock)
    assert claims.iss == DEFAULT_ISSUER and claims.aud == DEFAULT_AUDIENCE
    assert claims.sub == "u-1" and claims.act.sub == "support-bot" and claims.agent_id == "support-bot"
    assert claims.exp - claims.iat == 300 and claims.nbf == claims.iat
    assert claims.tctx.steps == 2 and claims.tctx.plan_hash.startswith("sha-256:")
    assert [d["identifier"] for d in claims.authorization_details] == ["crm_lookup", "send_email"]
    assert len(claims.jti) >= 16 and claims.txn
    assert claims.tools == ("crm_lookup", "send_email")


@pytest.mark.parametrize("alg", ["ES256", "HS256"])
def test_other_algorithms(alg: str, plan: Plan, policy: Policy, identity: AgentIdentity, clock: FakeClock) -> None:
    """ES256 and HS256 (single process) mint and verify too."""
    keys = KeySet.generate(alg)  # type: ignore[arg-type]
    token, _ = mint_grant(keys, derive_scope(plan, policy), identity, ttl_s=60, now=clock())
    assert verify_grant(token, keys, clock=clock).exp - clock() == 60


def test_verify_with_a_jwks(minted: tuple[str, dict[str, Any]], keys: KeySet, clock: FakeClock) -> None:
    """A resource server verifies with the exported JWKS, as a dict or JSON text."""
    token, _ = minted
    assert verify_grant(token, keys.jwks(), clock=clock).jti
    assert verify_grant(token, json.dumps(keys.jwks()), clock=clock).jti


def expect(reason: str, token: str, keys: KeySet | dict[str, Any], clock: FakeClock, **kw: Any) -> GrantError:
    with pytest.raises(GrantError) as info:
        verify_grant(token, keys, clock=clock, **kw)
    assert info.value.reason == reason
    assert not isinstance(info.value, jwt.PyJWTError)
    return info.value


class TestRejections:
    """Each hardening check refuses, with reason invalid_grant or expired."""

    def test_expired(self, minted: tuple[str, dict[str, Any]], keys: KeySet, clock: FakeClock) -> None:
        """Past exp → expired; a leeway up to 30 s is honoured."""
        clock.advance(301)
        expect(reasons.EXPIRED, minted[0], keys, clock)
        assert verify_grant(minted[0], keys, clock=clock, leeway_s=5).jti
        with pytest.raises(ConfigError, match="leeway_s"):
            verify_grant(minted[0], keys, clock=clock, leeway_s=31)

    def test_not_yet_valid(self, minted: tuple[str, dict[str, Any]], keys: KeySet, clock: FakeClock) -> None:
        """iat/nbf in the future → invalid."""
        clock.advance(-60)
        expect(reasons.INVALID_GRANT, minted[0], keys, clock)

    def test_audience_and_issuer(self, minted: tuple[str, dict[str, Any]], keys: KeySet, clock: FakeClock) -> None:
        """A different audience or issuer is refused."""
        expect(reasons.INVALID_GRANT, minted[0], keys, clock, audience="urn:other")
        expect(reasons.INVALID_GRANT, minted[0], keys, clock, issuer="urn:other")

    def test_unknown_key(self, minted: tuple[str, dict[str, Any]], clock: FakeClock) -> None:
        """A grant signed by a key outside the trusted set is refused."""
        err = expect(reasons.INVALID_GRANT, minted[0], KeySet.generate(), clock)
        assert "outside the trusted key set" in err.detail

    def test_tampered_payload(self, minted: tuple[str, dict[str, Any]], keys: KeySet, clock: FakeClock) -> None:
        """Changing one claim breaks the signature."""
        header, _, sig = minted[0].split(".")
        claims = dict(minted[1], sub="admin")
        forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
        expect(reasons.INVALID_GRANT, f"{header}.{forged_payload}.{sig}", keys, clock)

    def test_lifetime_cap(self, minted: tuple[str, dict[str, Any]], keys: KeySet, clock: FakeClock) -> None:
        """exp - iat above 900 s (or the given max) is refused even when signed."""
        long = resign(keys, dict(minted[1], exp=minted[1]["iat"] + 901))
        expect(reasons.INVALID_GRANT, long, keys, clock)
        expect(reasons.INVALID_GRANT, minted[0], keys, clock, max_ttl_s=120)

    @pytest.mark.parametrize("typ", ["at+jwt", "JWT", "txntoken+jwt"])
    def test_wrong_typ(self, typ: str, minted: tuple[str, dict[str, Any]], keys: KeySet, clock: FakeClock) -> None:
        """Another JWT type (an access token, a txn token) never validates as a grant."""
        expect(reasons.INVALID_GRANT, resign(keys, minted[1], typ=typ), keys, clock)

    def test_typ_media_type_form(self, minted: tuple[str, dict[str, Any]], keys: KeySet, clock: FakeClock) -> None:
        """application/agent-grant+jwt is accepted, case-insensitively."""
        assert verify_grant(resign(keys, minted[1], typ="Application/Agent-Grant+JWT"), keys, clock=clock)

    @pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c"])
    def test_key_reference_headers(self, header: str, minted: tuple[str, dict[str, Any]], keys: KeySet,
                                   clock: FakeClock) -> None:
        """jku/x5u/jwk/x5c headers are refused."""
        value: Any = {"kty": "OKP"} if header == "jwk" else "https://evil.example/k"
        if header == "x5c":
            value = ["MIIB"]
        expect(reasons.INVALID_GRANT, resign(keys, minted[1], **{header: value}), keys, clock)

    @pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "act", "txn", "tctx",
                                       "authorization_details"])
    def test_required_claims(self, claim: str, minted: tuple[str, dict[str, Any]], keys: KeySet,
                             clock: FakeClock) -> None:
        """Every claim of the set is required."""
        claims = dict(minted[1])
        del claims[claim]
        expect(reasons.INVALID_GRANT, resign(keys, claims), keys, clock)

    def test_algorithm_confusion(self, minted: tuple[str, dict[str, Any]], keys: KeySet, clock: FakeClock) -> None:
        """alg=none and an HS256 token keyed with the public key are both refused (alg pinned per key)."""
        kid = keys.current.kid
        none = jwt.encode(minted[1], None, algorithm="none", headers={"typ": "agent-grant+jwt", "kid": kid})
        expect(reasons.INVALID_GRANT, none, keys, clock)
        from cryptography.hazmat.primitives import serialization

        pem = keys.current.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        b64 = jwt.utils.base64url_encode
        signing_input = b".".join(
            [b64(json.dumps({"alg": "HS256", "typ": "agent-grant+jwt", "kid": kid}).encode()),
             b64(json.dumps(minted[1]).encode())]
        )
        forged = signing_input + b"." + b64(hmac.new(pem, signing_input, hashlib.sha256).digest())
        expect(reasons.INVALID_GRANT, forged.decode(), keys, clock)

    @pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "a b.c.d", "x" * 600_000 + ".a.b"])
    def test_garbage(self, token: str, keys: KeySet, clock: FakeClock) -> None:
        """Anything that is not a compact JWS is refused before parsing."""
        expect(reasons.INVALID_GRANT, token, keys, clock)

    def test_malformed_custom_claims(self, minted: tuple[str, dict[str, Any]], keys: KeySet, clock: FakeClock) -> None:
        """act without sub, or a tctx step count that disagrees with the details, is refused."""
        expect(reasons.INVALID_GRANT, resign(keys, dict(minted[1], act={"client": "x"})), keys, clock)
        claims = verify_grant(resign(keys, dict(minted[1], tctx={**minted[1]["tctx"], "steps": 5})), keys,
                              clock=clock)
        with pytest.raises(GrantError, match=r"tctx\.steps"):
            claims.scope()


def test_mint_refuses_bad_ttl(plan: Plan, policy: Policy, identity: AgentIdentity, clock: FakeClock) -> None:
    """The TTL is 1..900 s at mint."""
    with pytest.raises(ConfigError, match="ttl_s"):
        mint_grant(KeySet.generate(), derive_scope(plan, policy), identity, ttl_s=901, now=clock())


def test_ids_are_hex(plan: Plan, policy: Policy, identity: AgentIdentity, clock: FakeClock) -> None:
    """jti and txn are lowercase hex (128 and 96 bits), so no id starts with '-' on a command line."""
    for _ in range(50):
        _, claims = mint_grant(KeySet.generate("HS256"), derive_scope(plan, policy), identity, ttl_s=60, now=clock())
        assert len(claims["jti"]) == 32 and len(claims["txn"]) == 24
        int(claims["jti"], 16), int(claims["txn"], 16)


class TestStrictClaims:
    """Claims carry the JSON types RFC 7519 gives them; nothing is coerced (a string exp is refused)."""

    @pytest.mark.parametrize(
        "change",
        [
            lambda c: {"exp": str(c["exp"])},
            lambda c: {"iat": str(c["iat"])},
            lambda c: {"nbf": str(c["nbf"])},
            lambda c: {"exp": float(c["exp"])},
            lambda c: {"sub": 42},
            lambda c: {"jti": int("1" * 20)},
            lambda c: {"txn": 7},
            lambda c: {"act": {"sub": 7}},
            lambda c: {"tctx": {**c["tctx"], "steps": "2"}},
            lambda c: {"tctx": {**c["tctx"], "ordered": 0}},
            lambda c: {"tctx": {**c["tctx"], "plan_hash": 1}},
        ],
    )
    def test_wrong_json_types_are_refused(self, change: Any, minted: tuple[str, dict[str, Any]],
                                          keys: KeySet, clock: FakeClock) -> None:
        """Each claim with the right value in a coercible but wrong JSON type is refused, even when signed."""
        expect(reasons.INVALID_GRANT, resign(keys, {**minted[1], **change(minted[1])}), keys, clock)

    def test_the_original_types_still_verify(self, minted: tuple[str, dict[str, Any]], keys: KeySet,
                                             clock: FakeClock) -> None:
        """Re-signing the same claims verifies (the refusals above are about the types alone)."""
        assert verify_grant(resign(keys, dict(minted[1])), keys, clock=clock).tctx.steps == 2


class TestDeepNesting:
    """Deeply nested JSON from the wire is a GrantError, never a RecursionError."""

    def test_a_header_nested_100_000_deep(self, keys: KeySet, clock: FakeClock) -> None:
        header = '{"kid":' + "[" * 100_000 + "]" * 100_000 + "}"
        b64 = jwt.utils.base64url_encode
        token = f"{b64(header.encode()).decode()}.{b64(b'{}').decode()}.{b64(b'sig').decode()}"
        expect(reasons.INVALID_GRANT, token, keys, clock)

    def test_a_signed_payload_nested_100_000_deep(self, minted: tuple[str, dict[str, Any]], clock: FakeClock) -> None:
        keys = KeySet.generate("HS256")
        payload = json.dumps({k: v for k, v in minted[1].items() if k != "authorization_details"})
        payload = payload[:-1] + ', "authorization_details": ' + "[" * 100_000 + "]" * 100_000 + "}"
        key = keys.current
        token = jwt.api_jws.PyJWS().encode(payload.encode(), key.private, algorithm=key.alg,
                                           headers={"typ": "agent-grant+jwt", "kid": key.kid})
        expect(reasons.INVALID_GRANT, token, keys, clock)


def test_mint_refuses_a_grant_over_the_token_limit(identity: AgentIdentity, clock: FakeClock) -> None:
    """A plan whose grant would exceed MAX_TOKEN_BYTES fails at mint with the size, the limit and the fix."""
    from agent_guard import Step

    policy = Policy(agent_id="support-bot", capabilities=[{"tool": "t", "args": {"x": {"any": True}}}])
    plan = Plan(steps=[Step("t", args={"x": f"{i:04}" + "v" * 600}) for i in range(1_000)])
    with pytest.raises(ConfigError, match=r"would be [\d,]+ bytes, above the 524,288-byte limit .*split the plan"):
        mint_grant(KeySet.generate(), derive_scope(plan, policy), identity, ttl_s=60, now=clock())
    small = Plan(steps=[Step("t", args={"x": "v" * 600})] * 100)
    token, _ = mint_grant(KeySet.generate(), derive_scope(small, policy), identity, ttl_s=60, now=clock())
    assert len(token) < 512 * 1024
