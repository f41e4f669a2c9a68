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

ALGORITHM = "EdDSA"
_REQUIRED = ["iss", "sub", "robot", "rid", "scope", "nbf", "exp", "jti"]


def sign_lease(private_key: Ed25519PrivateKey, claims: LeaseClaims) -> str:
    return jwt.encode(
        claims.model_dump(exclude_none=True),
        private_key,
        algorithm=ALGORITHM,
        headers={"typ": "JWT"},
    )


def verify_lease(
    token: str,
    public_key: Ed25519PublicKey,
    *,
    robot: str,
    now: float | None = None,
    scope: str | None = None,
    revoked: Container[str] = (),
    leeway: float = 0.0,
) -> LeaseClaims:
    """Check a lease offline and return its claims, or raise the LeaseError naming the fault.

    `now` defaults to the wall clock; `revoked` holds the `jti`s the daemon has learnt are
    revoked; `scope`, when given, must be granted by the lease (control grants observe).
    """
    try:
        raw = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "verify_nbf": False, "require": _REQUIRED},
        )
    except jwt.InvalidSignatureError as exc:
        raise LeaseSignatureInvalid(str(exc)) from exc
    except jwt.PyJWTError as exc:
        raise LeaseMalformed(str(exc)) from exc
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
