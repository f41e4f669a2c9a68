"""Lease checks for the transport: verify a token once (signature, claims), then re-check the
cheap parts (time window, revocation) on every command of the session that holds it."""

from __future__ import annotations

import time
from pathlib import Path

from raas_client.wire import ErrorCode

from raas.leases import (
    LeaseClaims,
    LeaseError,
    LeaseExpired,
    LeaseMalformed,
    LeaseNotYetValid,
    LeaseRevoked,
    LeaseSignatureInvalid,
    LeaseWrongRobot,
    LeaseWrongScope,
    TrustedKeys,
    TrustedKeysFile,
    verify_lease,
)
from raas.transport.errors import RequestRefusedError

_CODES: dict[type[LeaseError], str] = {
    LeaseMalformed: ErrorCode.LEASE_MALFORMED,
    LeaseSignatureInvalid: ErrorCode.LEASE_SIGNATURE_INVALID,
    LeaseExpired: ErrorCode.LEASE_EXPIRED,
    LeaseNotYetValid: ErrorCode.LEASE_NOT_YET_VALID,
    LeaseWrongRobot: ErrorCode.LEASE_WRONG_ROBOT,
    LeaseWrongScope: ErrorCode.LEASE_WRONG_SCOPE,
    LeaseRevoked: ErrorCode.LEASE_REVOKED,
}


class LeaseGate:
    """Verifies leases for one robot with the public key(s) the daemon trusts.

    `revoked` maps revoked `jti` to the lease's expiry (epoch s); the transport fills it from the
    revocation relay and prunes it."""

    def __init__(self, robot: str, public_key: TrustedKeys | None) -> None:
        self.robot = robot
        self.public_key = public_key
        self.revoked: dict[str, float] = {}

    @classmethod
    def from_file(cls, robot: str, path: Path | None) -> LeaseGate:
        """Trust the keys in a PEM file (one key, or several after a signing-key rotation); the
        file is re-read when it changes, so a new key needs no restart (raas.leases.keyring)."""
        return cls(robot, None if path is None else TrustedKeysFile(path))

    def verify(self, token: object, scope: str | None) -> LeaseClaims:
        """Full check of a presented token; RequestRefusedError names the fault."""
        if self.public_key is None:
            raise RequestRefusedError(
                ErrorCode.UNAVAILABLE, "this robot has no lease key configured"
            )
        if not isinstance(token, str) or len(token) > 8192:
            raise RequestRefusedError(ErrorCode.LEASE_MALFORMED, "lease must be a JWT string")
        try:
            return verify_lease(
                token, self.public_key, robot=self.robot, scope=scope, revoked=self.revoked
            )
        except LeaseError as exc:
            raise RequestRefusedError(
                _CODES.get(type(exc), ErrorCode.LEASE_MALFORMED), str(exc)
            ) from None

    def still_valid(self, claims: LeaseClaims, now: float | None = None) -> str | None:
        """The error code that ends a held lease now, or None while it holds."""
        t = time.time() if now is None else now
        if t >= claims.exp:
            return ErrorCode.LEASE_EXPIRED
        if claims.jti in self.revoked:
            return ErrorCode.LEASE_REVOKED
        return None

    def revoke(self, jti: str, expires_at: float) -> None:
        self.revoked[jti] = expires_at

    def prune(self, now: float | None = None) -> None:
        t = time.time() if now is None else now
        if any(e <= t for e in self.revoked.values()):
            self.revoked = {j: e for j, e in self.revoked.items() if e > t}
