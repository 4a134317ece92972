"""Grant tokens: the claim set, minting, and hardened verification (RFC 8725, PyJWT checklist)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import jwt
from pydantic import ConfigDict, Field, StrictBool, StrictInt, StrictStr

from agent_guard import reasons
from agent_guard._frozen import Frozen
from agent_guard.authorization._keys import KeySet
from agent_guard.authorization._models import MAX_TTL_S, AgentIdentity
from agent_guard.authorization._scope import TaskScope
from agent_guard.exceptions import ConfigError, GrantError

__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_ISSUER",
    "GRANT_TYP",
    "GrantClaims",
    "mint_grant",
    "verify_grant",
]

GRANT_TYP: Final = "agent-grant+jwt"
DEFAULT_ISSUER: Final = "urn:agent-guard:issuer"
DEFAULT_AUDIENCE: Final = "urn:agent-guard:pep"
MAX_LEEWAY_S: Final = 30
MAX_DELEGATION_DEPTH: Final = 8
"""Hard cap on a grant's delegation chain (a policy's ``max_delegation_depth`` is usually far lower)."""
MAX_TOKEN_BYTES: Final = 512 * 1024
"""Larger tokens are refused before parsing (a 1,000-step plan makes a ~150 KB grant)."""
_ACCEPTED_TYP: Final = frozenset({GRANT_TYP, f"application/{GRANT_TYP}"})
_FORBIDDEN_HEADERS: Final = ("jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256")
_TOKEN_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_REQUIRED: Final = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]
_DECODER: Final = jwt.PyJWT(
    options={
        "require": _REQUIRED,
        "strict_aud": True,
        "enforce_minimum_key_length": True,
        # Time checks are done below with the guard's clock (deterministic, and lifetime-capped).
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
    }
)


class _Claims(Frozen):
    model_config = ConfigDict(frozen=True, extra="allow")


class Actor(_Claims):
    """RFC 8693 ``act``: the acting agent (nested ``act`` for a chain of sub-agents)."""

    sub: StrictStr = Field(min_length=1)
    act: Actor | None = None


class TaskContextClaim(_Claims):
    """``tctx``: immutable context of the run the grant belongs to."""

    plan_hash: StrictStr = Field(min_length=1)
    policy_hash: StrictStr = Field(min_length=1)
    steps: StrictInt = Field(ge=1)
    ordered: StrictBool = False
    tenant: StrictStr | None = None
    parent: StrictStr | None = None
    """The ``jti`` of the grant this one was delegated from (``None`` for a top-level grant)."""
    run: StrictStr | None = None
    """The grant store's run id when it is not the ``txn`` (a delegated or replanned grant: ``txn:jti``)."""


class GrantClaims(_Claims):
    """The verified claims of a grant (frozen). ``model_dump()`` gives the plain dict.

    Every registered claim has the JSON type RFC 7519 gives it, with no coercion: ``exp``, ``iat``
    and ``nbf`` are JSON integers (a string ``"1700000000"`` is refused), names are strings.
    """

    iss: StrictStr
    sub: StrictStr
    aud: StrictStr
    iat: StrictInt
    nbf: StrictInt
    exp: StrictInt
    jti: StrictStr = Field(min_length=16)
    act: Actor
    txn: StrictStr = Field(min_length=1)
    tctx: TaskContextClaim
    authorization_details: tuple[dict[str, Any], ...] = Field(min_length=1)

    @property
    def agent_id(self) -> str:
        """The current actor (outermost ``act.sub``); the only actor used for decisions."""
        return self.act.sub

    @property
    def actors(self) -> tuple[str, ...]:
        """The delegation chain, current actor first: ``("researcher", "support-bot")``."""
        chain: list[str] = []
        actor: Actor | None = self.act
        while actor is not None:
            chain.append(actor.sub)
            actor = actor.act
        return tuple(chain)

    @property
    def run_id(self) -> str:
        """The grant store's run id of this grant (``tctx.run``, else the ``txn``)."""
        return self.tctx.run or self.txn

    @property
    def delegation_depth(self) -> int:
        """0 for a grant minted for a task, 1 for its delegated child, and so on."""
        return len(self.actors) - 1

    @property
    def tools(self) -> tuple[str, ...]:
        """The distinct tools the grant covers."""
        return tuple(dict.fromkeys(str(d.get("identifier")) for d in self.authorization_details))

    def scope(self) -> TaskScope:
        """Rebuild the task scope this grant carries (fails closed with :class:`GrantError`)."""
        scope = TaskScope.from_authorization_details(
            self.authorization_details, agent_id=self.agent_id, ordered=self.tctx.ordered,
            plan_hash=self.tctx.plan_hash, policy_hash=self.tctx.policy_hash,
        )
        if len(scope.steps) != self.tctx.steps:
            raise GrantError("tctx.steps does not match authorization_details")
        return scope


def mint_grant(
    keys: KeySet,
    scope: TaskScope,
    identity: AgentIdentity,
    *,
    ttl_s: int,
    now: float,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
    task_id: str | None = None,
    parent: GrantClaims | None = None,
    own_run: bool = False,
) -> tuple[str, dict[str, Any]]:
    """Sign a grant for ``scope``. Returns ``(token, claims)``; the caller verifies before use.

    With ``parent`` (the claims of the delegating task's grant) the grant is a child: the same
    ``sub`` and ``txn``, ``act`` nesting the parent's actor chain (RFC 8693: the outermost
    ``act.sub`` is the current actor), and the parent's ``jti`` in ``tctx.parent``.

    Raises :class:`ConfigError` when the token would exceed :data:`MAX_TOKEN_BYTES` (no verifier
    would accept it).
    """
    if not 1 <= ttl_s <= MAX_TTL_S:
        raise ConfigError(f"ttl_s: {ttl_s} is outside 1..{MAX_TTL_S} seconds")
    key = keys.current
    iat = int(now)
    actor: dict[str, Any] = {"sub": identity.agent_id}
    if parent is not None:
        actor["act"] = parent.act.model_dump(exclude_none=True)
        task_id = parent.txn
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": parent.sub if parent is not None else identity.subject,
        "aud": audience,
        "iat": iat,
        "nbf": iat,
        "exp": iat + ttl_s,
        "jti": secrets.token_hex(16),  # hex: ids never start with "-" (command lines, grep)
        "act": actor,
        "txn": task_id or secrets.token_hex(12),
        "tctx": {
            "plan_hash": scope.plan_hash,
            "policy_hash": scope.policy_hash,
            "steps": len(scope.steps),
            "ordered": scope.ordered,
        },
        "authorization_details": scope.authorization_details(),
    }
    if identity.tenant is not None:
        claims["tctx"]["tenant"] = identity.tenant
    if parent is not None:
        claims["tctx"]["parent"] = parent.jti
    if parent is not None or own_run:
        claims["tctx"]["run"] = f"{claims['txn']}:{claims['jti']}"
    token = jwt.encode(claims, key.private, algorithm=key.alg, headers={"typ": GRANT_TYP, "kid": key.kid})
    if len(token) > MAX_TOKEN_BYTES:
        raise ConfigError(
            f"plan: the grant for this plan would be {len(token):,} bytes, above the {MAX_TOKEN_BYTES:,}-byte "
            f"limit every verifier enforces ({len(scope.steps):,} steps); split the plan into smaller tasks "
            "or shorten its literal values"
        )
    return token, claims


def _peek_kid(token: str) -> str:
    """Read ``kid`` from the header, only to look a key up (never to decide anything)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise GrantError("the token header is not valid JSON") from None
    except RecursionError:
        raise GrantError("the token header is nested too deeply") from None
    kid = header.get("kid") if isinstance(header, dict) else None
    if not isinstance(kid, str) or not kid:
        raise GrantError("the token header has no kid")
    return kid


def verify_grant(
    token: str,
    keys: KeySet | Mapping[str, Any] | str,
    *,
    audience: str = DEFAULT_AUDIENCE,
    issuer: str = DEFAULT_ISSUER,
    leeway_s: float = 0,
    max_ttl_s: int = MAX_TTL_S,
    clock: Callable[[], float] | None = None,
    max_delegation_depth: int | None = None,
) -> GrantClaims:
    """Verify a grant and return its claims; raise :class:`GrantError` on any failure.

    ``keys`` is a :class:`KeySet` or a JWKS (dict or JSON text). The algorithm is pinned to the
    key found by ``kid``; ``typ``, ``iss``, ``aud``, every required claim, ``nbf``/``iat``/``exp``
    (with ``leeway_s`` ≤ 30 s) and the lifetime cap are checked; ``jku``/``x5u``/``jwk``/``x5c``
    headers are refused. ``reason`` on the error is ``expired`` or ``invalid_grant``. A delegated
    grant's actor chain is ``claims.actors`` (``claims.act.act.sub`` is the delegating agent);
    ``max_delegation_depth`` refuses longer chains (0 accepts only top-level grants).
    """
    if not 0 <= leeway_s <= MAX_LEEWAY_S:
        raise ConfigError(f"leeway_s: {leeway_s} is outside 0..{MAX_LEEWAY_S} seconds")
    key_set = keys if isinstance(keys, KeySet) else KeySet.from_jwks(keys)
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or not _TOKEN_SHAPE.fullmatch(token):
        raise GrantError("the token is not a compact JWS")
    key = key_set.get(_peek_kid(token))
    if key is None:
        raise GrantError("the token was signed by a key outside the trusted key set")
    try:
        decoded = _DECODER.decode_complete(
            token, key.public, algorithms=[key.alg], audience=audience, issuer=issuer
        )
    except jwt.PyJWTError as err:
        raise GrantError(f"verification failed ({type(err).__name__})") from None
    except RecursionError:
        raise GrantError("the token is nested too deeply") from None
    header = decoded["header"]
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
        raise GrantError(f"the token typ is not {GRANT_TYP}")
    if any(h in header for h in _FORBIDDEN_HEADERS):
        raise GrantError("the token header carries a key reference (jku/x5u/jwk/x5c), which is refused")
    try:
        claims = GrantClaims.model_validate(decoded["payload"])
    except (ConfigError, RecursionError):
        raise GrantError("the grant's claims are malformed") from None
    now = (clock or time.time)()
    if claims.iat > now + leeway_s or claims.nbf > now + leeway_s:
        raise GrantError("the grant is not valid yet (iat/nbf in the future)")
    if claims.exp <= claims.iat or claims.exp - claims.iat > min(max_ttl_s, MAX_TTL_S):
        raise GrantError(f"the grant's lifetime exceeds the {min(max_ttl_s, MAX_TTL_S)} s cap")
    if claims.exp <= now - leeway_s:
        raise GrantError("the grant has expired", reason=reasons.EXPIRED)
    depth = claims.delegation_depth
    if depth > MAX_DELEGATION_DEPTH or (max_delegation_depth is not None and depth > max_delegation_depth):
        raise GrantError(f"the grant's delegation chain is {depth} deep, above the accepted depth")
    if (depth > 0) != (claims.tctx.parent is not None):
        raise GrantError("the grant's actor chain and tctx.parent disagree")
    return claims


# Keep pydantic from rejecting the recursive model at import time.
Actor.model_rebuild()
