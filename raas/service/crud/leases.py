"""Issue lease tokens for reservations and revoke them."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from raas.leases import KeyRing, LeaseClaims, key_id, sign_lease
from raas.service.errors import (
    ReservationNotActive,
    ReservationTooShortForLease,
    RobotNotBookable,
)
from raas.service.models import (
    JobAttempt,
    Lease,
    Reservation,
    ReservationStatus,
    Revocation,
    Robot,
    User,
)


def issue(
    db: Session,
    reservation: Reservation,
    robot: Robot,
    holder: User,
    *,
    scope: str,
    key: Ed25519PrivateKey,
    issuer: str,
    now: datetime,
) -> tuple[Lease, str]:
    if reservation.status != ReservationStatus.confirmed.value:
        raise ReservationNotActive(f"reservation {reservation.id} is {reservation.status}")
    if reservation.ends_at <= now:
        raise ReservationNotActive(f"reservation {reservation.id} has ended")
    if scope == "control" and robot.health_blocked:  # a booking made before the check failed
        raise RobotNotBookable(
            f"robot {robot.name} is blocked after a failed health check ({robot.health_note}); "
            "staff must clear it before anyone controls it"
        )
    nbf = math.ceil(reservation.starts_at.timestamp())
    exp = math.floor(reservation.ends_at.timestamp())
    if exp <= nbf:  # a sub-second booking stored by an older version: no whole second inside
        raise ReservationTooShortForLease(
            f"reservation {reservation.id} holds no whole second a lease could cover; "
            "cancel it and book whole minutes"
        )
    lease = Lease(
        jti=uuid.uuid4().hex,
        reservation_id=reservation.id,
        robot_id=robot.id,
        user_id=holder.id,
        scope=scope,
        not_before=datetime.fromtimestamp(nbf, UTC),
        expires_at=datetime.fromtimestamp(exp, UTC),
        issued_at=now,
        kid=key_id(key),
    )
    db.add(lease)
    db.flush()
    claims = LeaseClaims(
        iss=issuer,
        sub=holder.email,
        robot=robot.name,
        rid=reservation.id,
        scope="control" if scope == "control" else "observe",
        nbf=nbf,
        exp=exp,
        jti=lease.jti,
        iat=int(now.timestamp()),
    )
    return lease, sign_lease(key, claims)


def issue_for_job(
    db: Session,
    attempt: JobAttempt,
    robot: Robot,
    holder: User,
    *,
    key: Ed25519PrivateKey,
    issuer: str,
    now: datetime,
) -> tuple[Lease, str]:
    """A control lease for a claimed job: for the job's submitter (`sub`), from the claim until
    the hold's end. Its `rid` is 0 (no reservation); it is revoked like a booking's lease."""
    nbf = math.floor(now.timestamp())
    exp = math.floor(attempt.hold_until.timestamp())
    if exp <= nbf:
        raise ReservationTooShortForLease(f"job attempt {attempt.id} holds no whole second")
    lease = Lease(
        jti=uuid.uuid4().hex,
        reservation_id=None,
        job_attempt_id=attempt.id,
        robot_id=robot.id,
        user_id=holder.id,
        scope="control",
        not_before=datetime.fromtimestamp(nbf, UTC),
        expires_at=datetime.fromtimestamp(exp, UTC),
        issued_at=now,
        kid=key_id(key),
    )
    db.add(lease)
    db.flush()
    claims = LeaseClaims(
        iss=issuer,
        sub=holder.email,
        robot=robot.name,
        rid=0,
        scope="control",
        nbf=nbf,
        exp=exp,
        jti=lease.jti,
        iat=int(now.timestamp()),
    )
    return lease, sign_lease(key, claims)


def _revoke(
    db: Session,
    leases: Sequence[Lease],
    *,
    reason: str,
    now: datetime,
    reservation_id: int | None = None,
    job_id: int | None = None,
) -> list[Revocation]:
    """Mark each lease revoked and add its entry to the robot's revocation feed."""
    out = []
    for lease in leases:
        lease.revoked_at = now
        entry = Revocation(
            robot_id=lease.robot_id,
            jti=lease.jti,
            reservation_id=reservation_id,
            job_id=job_id,
            expires_at=lease.expires_at,
            reason=reason,
            revoked_at=now,
        )
        db.add(entry)
        out.append(entry)
    db.flush()
    return out


def revoke_for_job_attempt(
    db: Session, attempt: JobAttempt, *, reason: str, now: datetime
) -> list[Revocation]:
    """Revoke the attempt's live lease; the entry in the robot's feed stops its daemon."""
    leases = db.scalars(
        select(Lease).where(Lease.job_attempt_id == attempt.id, Lease.revoked_at.is_(None))
    ).all()
    return _revoke(db, leases, reason=reason, now=now, job_id=attempt.job_id)


def revoke_for_reservation(
    db: Session, reservation: Reservation, *, reason: str, now: datetime
) -> list[Revocation]:
    """Revoke every live lease of the reservation; each becomes an entry in the robot's feed."""
    leases = db.scalars(
        select(Lease).where(Lease.reservation_id == reservation.id, Lease.revoked_at.is_(None))
    ).all()
    return _revoke(db, leases, reason=reason, now=now, reservation_id=reservation.id)


def revocations_since(db: Session, robot_id: int, since: int, limit: int) -> list[Revocation]:
    stmt = (
        select(Revocation)
        .where(Revocation.robot_id == robot_id, Revocation.seq > since)
        .order_by(Revocation.seq)
        .limit(limit)
    )
    return list(db.scalars(stmt))


def latest_seq(db: Session, robot_id: int) -> int:
    stmt = (
        select(Revocation.seq)
        .where(Revocation.robot_id == robot_id)
        .order_by(Revocation.seq.desc())
        .limit(1)
    )
    return db.scalars(stmt).first() or 0


def trusted_keys(
    db: Session,
    robot: Robot,
    *,
    current: Ed25519PublicKey,
    retired: list[Ed25519PublicKey],
    now: datetime,
) -> KeyRing:
    """The keys this robot's daemon should trust now. A robot on the service's keys (its stored
    key is one the service signs or signed with) trusts the current key and every retired key
    that signed a lease of this robot still live (not ended, not revoked); a robot with a key
    of its own keeps it."""
    try:
        own = KeyRing.from_pem(robot.lease_public_key)
    except ValueError:
        return KeyRing([current])  # not a PEM key (set by hand): the service's own key
    service = {key_id(current): current} | {key_id(k): k for k in retired}
    if not set(own.ids) & set(service):
        return own
    live = set(
        db.scalars(
            select(Lease.kid).where(
                Lease.robot_id == robot.id,
                Lease.expires_at > now,
                Lease.revoked_at.is_(None),
                Lease.kid.is_not(None),
            )
        )
    )
    keep = [current] + [k for k in retired if key_id(k) in live]
    keep += [k for k in own if key_id(k) not in service]
    return KeyRing(keep)
