"""Reservations: book, list, read, update the purpose, cancel, and take a lease."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from raas.service.crud import audit
from raas.service.crud import leases as lease_crud
from raas.service.crud import reservations as reservation_crud
from raas.service.crud import robots as robot_crud
from raas.service.crud import users as user_crud
from raas.service.deps import Now, ObjectId, Person, ReadDB, State, WriteDB
from raas.service.deps import Principal as PrincipalT
from raas.service.errors import Forbidden, NotFound
from raas.service.models import Reservation, ReservationStatus
from raas.service.schemas import (
    LeasePublic,
    LeaseRequest,
    ReservationCreate,
    ReservationPublic,
    ReservationUpdate,
    UTCTime,
)

router = APIRouter(prefix="/reservations", tags=["reservations"])


def _visible(principal: PrincipalT, reservation: Reservation) -> None:
    if reservation.user_id != principal.user.id and not principal.is_staff:
        raise NotFound(f"no reservation {reservation.id}")


@router.get("")
def list_reservations(
    principal: Person,
    db: ReadDB,
    robot_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    user_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    status_: Annotated[ReservationStatus | None, Query(alias="status")] = None,
    starts_at: Annotated[UTCTime | None, Query(description="overlapping from")] = None,
    ends_at: Annotated[UTCTime | None, Query(description="overlapping until")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[ReservationPublic]:
    """Your reservations; staff see everyone's (filter with user_id)."""
    if not principal.is_staff:
        if user_id is not None and user_id != principal.user.id:
            raise Forbidden("researchers list their own reservations")
        user_id = principal.user.id
    rows = reservation_crud.list_reservations(
        db,
        user_id=user_id,
        robot_id=robot_id,
        status=status_.value if status_ else None,
        start=starts_at,
        end=ends_at,
        limit=limit,
        offset=offset,
    )
    return [ReservationPublic.model_validate(r) for r in rows]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_reservation(
    body: ReservationCreate, principal: Person, db: WriteDB, now: Now
) -> ReservationPublic:
    """Book a robot. 409 when the slot collides with another booking or maintenance."""
    reservation = reservation_crud.create(db, principal.user, body, now)
    audit.record(
        db,
        principal.user,
        "reservation.create",
        f"reservation:{reservation.id}",
        now,
        robot_id=reservation.robot_id,
        starts_at=reservation.starts_at,
        ends_at=reservation.ends_at,
    )
    db.commit()  # committed (and on disk) before the 201 leaves
    return ReservationPublic.model_validate(reservation)


@router.get("/{reservation_id}")
def get_reservation(reservation_id: ObjectId, principal: Person, db: ReadDB) -> ReservationPublic:
    reservation = reservation_crud.get(db, reservation_id)
    _visible(principal, reservation)
    return ReservationPublic.model_validate(reservation)


@router.patch("/{reservation_id}")
def update_reservation(
    reservation_id: ObjectId, body: ReservationUpdate, principal: Person, db: WriteDB, now: Now
) -> ReservationPublic:
    reservation = reservation_crud.get(db, reservation_id, lock=True)
    _visible(principal, reservation)
    if reservation.user_id != principal.user.id:
        raise Forbidden("only the holder edits a reservation")
    if body.purpose is not None:
        reservation.purpose = body.purpose
        reservation.updated_at = now
    audit.record(db, principal.user, "reservation.update", f"reservation:{reservation.id}", now)
    db.commit()
    return ReservationPublic.model_validate(reservation)


@router.post("/{reservation_id}/cancel")
def cancel_reservation(
    reservation_id: ObjectId, principal: Person, db: WriteDB, state: State, now: Now
) -> ReservationPublic:
    """Cancel (holder or staff). Its leases are revoked; daemons hear of it at once."""
    reservation = reservation_crud.get(db, reservation_id, lock=True)
    _visible(principal, reservation)
    by = "holder" if reservation.user_id == principal.user.id else f"staff:{principal.user.id}"
    revoked = reservation_crud.cancel(db, reservation, reason=f"cancelled by {by}", now=now)
    audit.record(db, principal.user, "reservation.cancel", f"reservation:{reservation.id}", now)
    db.commit()
    if revoked:
        state.hub.notify()
    return ReservationPublic.model_validate(reservation)


@router.post("/{reservation_id}/lease", status_code=status.HTTP_201_CREATED)
def issue_lease(
    reservation_id: ObjectId,
    principal: Person,
    db: WriteDB,
    state: State,
    now: Now,
    body: LeaseRequest | None = None,
) -> LeasePublic:
    """A signed lease token for the reservation's robot, valid only inside the reservation.
    The holder may take `control` or `observe`; staff may take `observe`."""
    scope = (body or LeaseRequest()).scope
    reservation = reservation_crud.get(db, reservation_id)
    _visible(principal, reservation)
    if reservation.user_id != principal.user.id and scope != "observe":
        raise Forbidden("only the holder takes a control lease")
    robot = robot_crud.get(db, reservation.robot_id)
    holder = user_crud.get_user(db, principal.user.id)
    lease, token = lease_crud.issue(
        db,
        reservation,
        robot,
        holder,
        scope=scope,
        key=state.signing_key,
        issuer=state.settings.issuer,
        now=now,
    )
    audit.record(db, principal.user, "lease.issue", f"lease:{lease.jti}", now, scope=scope)
    db.commit()
    return LeasePublic(
        token=token,
        jti=lease.jti,
        robot=robot.name,
        scope=scope,
        not_before=lease.not_before,
        expires_at=lease.expires_at,
    )
