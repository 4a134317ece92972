"""The authorization layer: what an agent may ever do, what one task may do, and the grant that says so.

- the ceiling (:class:`Policy`, :class:`Capability`, its :class:`Limit` over time and money) and the
  intent (:class:`Plan`, :class:`Step`);
- :func:`derive_scope`: plan ∩ ceiling = :class:`TaskScope`, or :class:`~agent_guard.PlanRejected`;
- the constraint vocabulary, compiled once per task into plain predicates;
- the grant: minted as a signed JWT, verified by :func:`verify_grant` against a :class:`KeySet`.

It imports the identity layer only; execution and audit build on it.
"""

from __future__ import annotations

from agent_guard.authorization._approval import ApprovalRequest, Approver
from agent_guard.authorization._constraints import (
    OPERATORS,
    Constraint,
    compile_constraint,
    normalize_constraint,
)
from agent_guard.authorization._grant import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    GRANT_TYP,
    GrantClaims,
    mint_grant,
    verify_grant,
)
from agent_guard.authorization._keys import KeySet, SigningKey
from agent_guard.authorization._limits import Limit
from agent_guard.authorization._models import MAX_TTL_S, Capability, Decision, Plan, Policy, Step
from agent_guard.authorization._scope import ScopedStep, TaskScope, derive_scope

__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_ISSUER",
    "GRANT_TYP",
    "MAX_TTL_S",
    "OPERATORS",
    "ApprovalRequest",
    "Approver",
    "Capability",
    "Constraint",
    "Decision",
    "GrantClaims",
    "KeySet",
    "Limit",
    "Plan",
    "Policy",
    "ScopedStep",
    "SigningKey",
    "Step",
    "TaskScope",
    "compile_constraint",
    "derive_scope",
    "mint_grant",
    "normalize_constraint",
    "verify_grant",
]
