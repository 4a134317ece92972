"""Signed checkpoints of the decision log, and the log's head.

The hash chain alone proves nothing to someone who can rewrite the whole file: delete a line,
recompute every hash after it, and the chain is intact again. A checkpoint is a record whose
``jws`` is a compact JWS (``typ`` :data:`CHECKPOINT_TYP`) signed with the current key of a
:class:`agent_guard.KeySet`, over the claims

- ``seq``: the sequence number of the record just before the checkpoint,
- ``head``: that record's hash (the chain head the checkpoint commits to),
- ``records``: how many records precede the checkpoint,
- ``iat``: when it was signed (epoch seconds),
- ``log``: the hash of the log's first record, which names the log.

Whoever holds only the public keys (the JWKS) can check them; rewriting any record before a
checkpoint changes the head it commits to, and forging a new one needs the private key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import jwt

from agent_guard.authorization._keys import KeySet
from agent_guard.exceptions import ConfigError

__all__ = [
    "CHECKPOINT_TYP",
    "CheckpointChecker",
    "LogHead",
    "check_signing_keys",
    "parse_head",
    "sign_checkpoint",
    "verify_checkpoint",
]

CHECKPOINT_TYP: Final = "agent-audit-checkpoint+jwt"
"""The ``typ`` header of a checkpoint JWS (a grant's ``typ`` differs, so neither passes for the other)."""
_PUBLIC_ALGS: Final = ("EdDSA", "ES256")
_HEX64: Final = re.compile(r"[0-9a-f]{64}")


class LogHead(NamedTuple):
    """Where a decision log ends: the last record's sequence number and hash.

    ``str(head)`` is ``"SEQ:HASH"``, the form ``agent-guard audit verify --expect-head`` takes.
    Keep it somewhere the agent's host cannot write (a trace, another system's log): a log cut
    short or emptied no longer reaches it.
    """

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


def parse_head(text: str, field: str = "expect_head") -> tuple[int | None, str]:
    """Parse ``"SEQ:HASH"`` or a bare ``"HASH"``; :class:`ConfigError` naming ``field`` otherwise."""
    seq_text, _, digest = text.strip().rpartition(":")
    digest = digest.lower()
    if not _HEX64.fullmatch(digest):
        raise ConfigError(f"{field}: {text!r} is not a log head; expected SEQ:HASH (as printed by "
                          "`agent-guard audit verify`) or the 64-hex-digit hash alone")
    if not seq_text:
        return None, digest
    if not seq_text.isdigit() or int(seq_text) < 1:
        raise ConfigError(f"{field}: {seq_text!r} is not a sequence number (a positive integer before the ':')")
    return int(seq_text), digest


def check_signing_keys(keys: KeySet, field: str = "signing_keys") -> None:
    """Refuse a key set whose checkpoints an auditor could not verify from a JWKS."""
    if not isinstance(keys, KeySet):
        raise ConfigError(f"{field}: expected an agent_guard.KeySet (e.g. guard.keys)")
    if not keys.can_sign:
        raise ConfigError(f"{field}: this key set holds only public keys; checkpoints need a private key")
    if keys.current.alg not in _PUBLIC_ALGS:
        raise ConfigError(f"{field}: the current key is {keys.current.alg}; checkpoints need EdDSA or ES256 "
                          "so that an auditor can verify them from the public JWKS")


def sign_checkpoint(keys: KeySet, *, log: str, seq: int, head: str, issued_at: float) -> tuple[str, str]:
    """Sign a checkpoint committing to ``seq``/``head``; returns (the compact JWS, the signing ``kid``)."""
    check_signing_keys(keys)
    key = keys.current
    claims = {"seq": seq, "head": head, "records": seq, "iat": math.floor(issued_at), "log": log}
    token = jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid, "typ": CHECKPOINT_TYP})
    return token, key.kid


def verify_checkpoint(token: object, keys: KeySet) -> dict[str, Any]:
    """The claims of a checkpoint JWS whose signature checks out; ``ValueError`` saying why not."""
    if not isinstance(token, str):
        raise ValueError("the checkpoint has no JWS")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise ValueError("the checkpoint's JWS is malformed") from None
    if header.get("typ") != CHECKPOINT_TYP:
        raise ValueError(f"the checkpoint's JWS has typ {header.get('typ')!r}, not {CHECKPOINT_TYP!r}")
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise ValueError(f"the checkpoint is signed with kid {kid!r}, which is not in the JWKS")
    if header.get("alg") != key.alg or key.alg not in _PUBLIC_ALGS:
        raise ValueError(f"the checkpoint's alg {header.get('alg')!r} is not its key's {key.alg}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key.public, algorithms=[key.alg],
            options={"verify_iat": False, "require": ["seq", "head", "records", "iat", "log"]},
        )
    except jwt.PyJWTError as err:
        raise ValueError(f"the checkpoint's signature does not verify ({type(err).__name__})") from None
    return claims


class CheckpointChecker:
    """Checks each checkpoint record of a log, in order, against the chain and a JWKS."""

    def __init__(self, jwks: KeySet | Mapping[str, Any] | str) -> None:
        self.keys = jwks if isinstance(jwks, KeySet) else KeySet.from_jwks(jwks)
        self.log: str | None = None
        self.count = 0
        self.last_seq = 0
        """Sequence number of the last good checkpoint record (0 before the first)."""

    def check(self, record: Mapping[str, Any], digest: str) -> str | None:
        """Feed one chained record (with its hash); returns what is wrong with it, or ``None``."""
        seq = record.get("seq")
        if seq == 1:
            self.log = digest
        if record.get("event") != "checkpoint":
            return None
        try:
            claims = verify_checkpoint(record.get("jws"), self.keys)
        except ValueError as err:
            return str(err)
        before = seq - 1 if isinstance(seq, int) else None
        expected = {"seq": before, "records": before, "head": record.get("prev"), "log": self.log}
        for claim, value in expected.items():
            if claims.get(claim) != value:
                return (f"the checkpoint is signed for {claim}={claims.get(claim)!r} but the chain has "
                        f"{value!r} there (records before it were removed, inserted or rewritten)")
        self.count += 1
        self.last_seq = int(record["seq"])
        return None
