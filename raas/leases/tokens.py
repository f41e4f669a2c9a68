"""Sign and verify lease tokens (JWT, alg EdDSA over Ed25519)."""

from __future__ import annotations

import time
from collections.abc import Container

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from raas.leases.claims import LeaseClaims
from raas.leases.errors import (
    LeaseExpired,
    LeaseMalformed,
    LeaseNotYetValid,
    LeaseRevoked,
    LeaseSignatureInvalid,
    LeaseWrongRobot,
    LeaseWrongScope,
)
from raas.leases.keyring import KeyRing, TrustedKeysFile, key_id

ALGORITHM = "EdDSA"
_REQUIRED = ["iss", "sub", "robot", "rid", "scope", "nbf", "exp", "jti"]


#: What a verifier trusts: one key, a ring of keys by id, or a ring kept in a file.
TrustedKeys = Ed25519PublicKey | KeyRing | TrustedKeysFile


def sign_lease(private_key: Ed25519PrivateKey, claims: LeaseClaims) -> str:
    """The signed token; its header names the signing key (`kid`), so a verifier with several
    trusted keys (a rotation) picks the right one."""
    return jwt.encode(
        claims.model_dump(exclude_none=True),
        private_key,
        algorithm=ALGORITHM,
        headers={"typ": "JWT", "kid": key_id(private_key)},
    )


def _candidates(token: str, trusted: TrustedKeys) -> list[Ed25519PublicKey]:
    if isinstance(trusted, Ed25519PublicKey):
        return [trusted]
    ring = trusted.ring() if isinstance(trusted, TrustedKeysFile) else trusted
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise LeaseMalformed(str(exc)) from exc
    if kid is None:  # a lease signed before key ids: any trusted key may have signed it
        return list(ring)
    key = ring.get(str(kid))
    if key is None:
        raise LeaseSignatureInvalid(f"signed by key {kid}, which this robot does not trust")
    return [key]


def verify_lease(
    token: str,
    public_key: TrustedKeys,
    *,
    robot: str,
    now: float | None = None,
    scope: str | None = None,
    revoked: Container[str] = (),
    leeway: float = 0.0,
) -> LeaseClaims:
    """Check a lease offline and return its claims, or raise the LeaseError naming the fault.

    `public_key` is the key the robot trusts, or a KeyRing / TrustedKeysFile of several (the
    lease's `kid` picks one); `now` defaults to the wall clock; `revoked` holds the `jti`s the
    daemon has learnt are revoked; `scope`, when given, must be granted by the lease (control
    grants observe).
    """
    raw = None
    error: Exception | None = None
    for key in _candidates(token, public_key):
        try:
            raw = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                options={"verify_exp": False, "verify_nbf": False, "require": _REQUIRED},
            )
            break
        except jwt.InvalidSignatureError as exc:
            error = LeaseSignatureInvalid(str(exc))
        except jwt.PyJWTError as exc:
            raise LeaseMalformed(str(exc)) from exc
    if raw is None:
        raise error or LeaseSignatureInvalid("no trusted key")
    try:
        claims = LeaseClaims.model_validate(raw)
    except ValidationError as exc:
        raise LeaseMalformed(str(exc)) from exc
    if claims.robot != robot:
        raise LeaseWrongRobot(f"lease is for robot {claims.robot!r}, not {robot!r}")
    t = time.time() if now is None else now
    if t < claims.nbf - leeway:
        raise LeaseNotYetValid(f"lease {claims.jti} is valid from {claims.nbf}, now is {t:.0f}")
    if t >= claims.exp + leeway:
        raise LeaseExpired(f"lease {claims.jti} expired at {claims.exp}, now is {t:.0f}")
    if claims.jti in revoked:
        raise LeaseRevoked(f"lease {claims.jti} was revoked")
    if scope is not None and not claims.grants(scope):
        raise LeaseWrongScope(f"lease {claims.jti} grants {claims.scope!r}, not {scope!r}")
    return claims
