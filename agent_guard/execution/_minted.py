"""The claims of a grant this process has just signed, read back from its token without a verify."""

from __future__ import annotations

import base64
import json

from agent_guard.authorization._grant import GrantClaims

__all__ = ["claims_of_minted"]


def claims_of_minted(token: str) -> GrantClaims:
    """Parse the payload of a token this process minted (trusted: it never came from the wire).

    Tasks keep only their token and build the claims on demand, so an open task costs little
    more than its token. Never call this on a token received from elsewhere: use ``verify_grant``.
    """
    segment = token.split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return GrantClaims.model_validate(payload)
