"""Human-readable explanations of grants, shared by the CLI's ``demo`` and ``inspect``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import jwt

from agent_guard._text import printable

_UNVERIFIED = jwt.PyJWT()

__all__ = ["explain_claims", "explain_constraints", "unverified_parts"]


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode header and payload WITHOUT verifying (for display only; never for a decision).

    PyJWT's own unverified readers (``get_unverified_header``, ``decode`` with signature checks off).
    """
    token = token.strip()
    if token.count(".") != 2:
        raise ValueError("not a compact JWS (expected three dot-separated parts)")
    try:
        header = jwt.get_unverified_header(token)
        payload = _UNVERIFIED.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, RecursionError) as err:
        raise ValueError(f"not a readable JWS ({type(err).__name__})") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("a JWS segment is not a JSON object")
    return header, payload


def _ts(value: Any) -> str:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return repr(value)


def explain_constraints(specs: list[dict[str, Any]]) -> str:
    """One short phrase for a conjunction of constraint specs."""
    phrases = []
    for spec in specs:
        for op, operand in spec.items():
            if op == "any":
                phrases.append("any value")
            elif op == "optional":
                phrases.append("may be omitted" if operand else "")
            elif op == "eq":
                phrases.append(f"= {json.dumps(operand)}")
            else:
                phrases.append(f"{op} {json.dumps(operand)}")
    return " AND ".join(p for p in phrases if p) or "any value"


def explain_claims(header: dict[str, Any], claims: dict[str, Any]) -> list[str]:
    """Lines that explain a grant's header and claims to a person, safe to print.

    The claims may come from an unverified token, so every line goes through
    :func:`agent_guard._text.printable` (no control character reaches the terminal).
    """
    lines = [
        f"header     alg={header.get('alg')} typ={header.get('typ')} kid={header.get('kid')}",
        f"issuer     {claims.get('iss')}  ->  audience {claims.get('aud')}",
        f"subject    {claims.get('sub')} (the user the agent acts for)",
        f"actor      {(claims.get('act') or {}).get('sub')} (the agent, RFC 8693 act)",
        f"task       txn={claims.get('txn')}  grant jti={claims.get('jti')}",
        f"valid      {_ts(claims.get('nbf'))} .. {_ts(claims.get('exp'))}"
        + (f"  ({claims['exp'] - claims['iat']} s)" if isinstance(claims.get("exp"), int) else ""),
    ]
    tctx = claims.get("tctx") or {}
    lines.append(
        f"plan       {tctx.get('steps')} step(s), ordered={tctx.get('ordered')}, plan_hash={tctx.get('plan_hash')}"
    )
    lines.append("scope      (authorization_details, one entry per planned step)")
    for entry in claims.get("authorization_details") or []:
        limit = (entry.get("limits") or {}).get("max_calls")
        lines.append(f"  step {entry.get('step')}: {entry.get('identifier')}  max_calls={limit}")
        if entry.get("agent"):
            lines.append(f"      only agent {entry.get('agent')} (through a delegated grant)")
        for name, specs in (entry.get("args") or {}).items():
            lines.append(f"      {name}: {explain_constraints(specs)}")
        if not entry.get("args"):
            lines.append("      (no arguments allowed)")
        for rule in (entry.get("limits") or {}).get("rules") or []:
            lines.append(f"      limit: {_explain_limit(rule)}")
    if tctx.get("parent"):
        chain, actor = [], claims.get("act")
        while isinstance(actor, dict):
            chain.append(str(actor.get("sub")))
            actor = actor.get("act")
        lines.append(f"delegated  from grant {tctx.get('parent')}; actors {' <- '.join(chain)}")
    return [printable(line) for line in lines]


def _explain_limit(rule: object) -> str:
    """One limit rule of a grant in words: ``at most 1000 of amount per user per 86400 s``."""
    if not isinstance(rule, dict):
        return "(unreadable)"
    what = f"{rule.get('max')} of {rule.get('sum_of')}" if rule.get("sum_of") else f"{rule.get('calls')} calls"
    window = f" per {rule.get('window_s')} s" if rule.get("window_s") else " for the whole task"
    return f"at most {what} per {rule.get('per')}{window}"
