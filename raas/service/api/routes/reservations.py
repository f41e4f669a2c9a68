"""Reservations: book, list, read, update the purpose, cancel, and take a lease."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from raas.service.crud import audit, booking_postgresql, booking_sqlite
from raas.service.crud import leases as lease_crud
from raas.service.crud import reservations as reservation_crud
from raas.service.crud import robots as robot_crud
from raas.service.crud import users as user_crud
from raas.service.deps import Now, ObjectId, Person, ReadDB, State, WriteDB
from raas.service.deps import Principal as PrincipalT
from raas.service.errors import Forbidden, NotFound
from raas.service.models import Lease, Reservation, ReservationStatus, Revocation
from raas.service.schemas import (
    ErrorPublic,
    InvalidRequestPublic,
    LeasePublic,
    LeaseRequest,
    OccurrencePublic,
    ReservationCreate,
    ReservationMoved,
    ReservationPublic,
    ReservationSeriesCreate,
    ReservationUpdate,
    SeriesConflictPublic,
    SeriesPublic,
    UTCTime,
    refusal,
)
from raas.service.state import ServiceState

router = APIRouter(prefix="/reservations", tags=["reservations"])

BOOKING_REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorPublic, "description": "quota_exceeded, too_far_ahead"},
    409: {
        "model": ErrorPublic,
        "description": "reservation_conflict, buffer_conflict, maintenance_conflict, "
        "robot_not_bookable",
    },
    422: {
        "model": InvalidRequestPublic | ErrorPublic,
        "description": "invalid_request (a malformed body: `detail` lists each field at fault) "
        "or, as `{detail, error}`: invalid_time_range, off_granularity, booking_too_short, "
        "booking_too_long, idempotency_key_reused",
    },
}


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
    series_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
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
        series_id=series_id,
    )
    return [ReservationPublic.model_validate(r) for r in rows]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,200}$",
        description="A key of your choosing (e.g. a UUID) that makes retrying the create safe: "
        "the same key and body answer the booking made the first time (with the header "
        "`Idempotent-Replayed: true`); the same key with another body is refused (422 "
        "idempotency_key_reused). Keys are kept per user, with the booking.",
    ),
]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ReservationPublic,
    responses={
        **BOOKING_REFUSALS,
        404: refusal("not_found: no robot `robot_id`"),
        201: {
            "description": "Booked (or, with a replayed Idempotency-Key, the earlier booking)",
            "headers": {
                "Idempotent-Replayed": {
                    "description": "`true` when this answers a retried Idempotency-Key",
                    "schema": {"type": "string"},
                }
            },
        },
    },
)
async def create_reservation(
    body: ReservationCreate,
    principal: Person,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Book a robot. 409 when the slot collides with another booking, maintenance or the
    robot's buffer; 422 off the robot's time grid, too short or too long."""
    # The state and the clock are read here, not as dependencies: each dependency is a node
    # FastAPI solves on every request (docs/performance.md, "The create-booking path").
    state: ServiceState = request.app.state.service
    now = state.clock()
    user, settings = principal.user, state.settings
    # Committed (and on disk) before the 201 leaves.
    batcher = state.db.batcher
    reservation: Reservation | ReservationPublic
    if batcher is not None:
        # SQLite: the booking shares its transaction and commit with the bookings that arrived
        # with it (raas/service/write_batch.py), its statements run on the batch's sqlite3
        # connection (raas/service/crud/booking_sqlite.py); awaited here, no thread waits.
        def book(session: Session) -> tuple[Reservation, bool]:
            return booking_sqlite.book(
                session, user, body, now, settings, idempotency_key=idempotency_key
            )

        reservation, replayed = await batcher.submit_async(book, raw=True)
    else:
        # PostgreSQL: in a transaction of its own on a pool connection, no session
        # (raas/service/crud/booking_postgresql.py); writers run in parallel on row locks.
        reservation, replayed = await run_in_threadpool(
            booking_postgresql.book_apart,
            state.db,
            user,
            body,
            now,
            settings,
            idempotency_key=idempotency_key,
        )
    if replayed:
        return _created(reservation, {"Idempotent-Replayed": "true"})
    return _created(reservation)


def _created(
    reservation: Reservation | ReservationPublic, headers: dict[str, str] | None = None
) -> Response:
    """The 201, serialized here in the route's thread: a returned model would be validated
    again against `response_model` in a thread-pool hop of its own. An answer that is already
    a `ReservationPublic` (the PostgreSQL path's) is serialized as it is."""
    body = ReservationPublic.model_validate(reservation).model_dump_json()
    return Response(body, status.HTTP_201_CREATED, headers, media_type="application/json")


@router.post(
    "/series",
    status_code=status.HTTP_201_CREATED,
    responses={
        404: refusal("not_found: no robot `robot_id`"),
        409: {
            "model": SeriesConflictPublic,
            "description": "series_conflict: `occurrences` lists each one's fate",
        },
        422: BOOKING_REFUSALS[422],
    },
)
def create_series(
    body: ReservationSeriesCreate, principal: Person, db: WriteDB, state: State, now: Now
) -> SeriesPublic:
    """Book the same slot every week (a course, a long experiment), each occurrence checked
    like a single booking. Mode `all` books all or nothing (409 `series_conflict` with the
    refused occurrences); mode `available` books what fits and reports the rest."""
    series_id, results = reservation_crud.create_series(
        db, principal.user, body, now, state.settings
    )
    booked = [r.reservation.id for r in results if r.reservation is not None]
    audit.record(
        db,
        principal.user,
        "reservation.series_create",
        f"series:{series_id}",
        now,
        robot_id=body.robot_id,
        booked=booked,
        refused=len(results) - len(booked),
    )
    db.commit()
    return SeriesPublic(
        series_id=series_id,
        booked=len(booked),
        refused=len(results) - len(booked),
        occurrences=[
            OccurrencePublic(
                starts_at=r.starts_at,
                ends_at=r.ends_at,
                reservation=(
                    ReservationPublic.model_validate(r.reservation) if r.reservation else None
                ),
                error=r.error,
                detail=r.detail,
            )
            for r in results
        ],
    )


@router.get("/{reservation_id}")
def get_reservation(reservation_id: ObjectId, principal: Person, db: ReadDB) -> ReservationPublic:
    reservation = reservation_crud.get(db, reservation_id)
    _visible(principal, reservation)
    return ReservationPublic.model_validate(reservation)


@router.patch(
    "/{reservation_id}",
    responses={
        **BOOKING_REFUSALS,
        403: refusal(
            "quota_exceeded, too_far_ahead; forbidden: only the holder edits the purpose "
            "(or a robot daemon's token)"
        ),
        409: {
            "model": ErrorPublic,
            "description": BOOKING_REFUSALS[409]["description"] + ", reservation_not_active",
        },
    },
)
def update_reservation(
    reservation_id: ObjectId,
    body: ReservationUpdate,
    principal: Person,
    db: WriteDB,
    state: State,
    now: Now,
) -> ReservationMoved:
    """Edit the purpose (holder) or move the booking (`starts_at` and/or `ends_at`; holder or
    staff). A move is checked like a new booking of the holder, revokes the booking's leases
    (reason `moved`) and answers new ones in `reissued_leases`."""
    reservation = reservation_crud.get(db, reservation_id, lock=True)
    _visible(principal, reservation)
    moving = body.starts_at is not None or body.ends_at is not None
    if reservation.user_id != principal.user.id and (body.purpose is not None or not moving):
        raise Forbidden("only the holder edits a reservation's purpose")
    before = (reservation.starts_at, reservation.ends_at)
    reissued: list[LeasePublic] = []
    revoked: list[Revocation] = []
    if moving:
        start = body.starts_at or reservation.starts_at
        end = body.ends_at or reservation.ends_at
        revoked = reservation_crud.move(db, reservation, start, end, now, state.settings)
        reissued = _reissue(db, state, reservation, revoked, now)
    if body.purpose is not None:
        reservation.purpose = body.purpose
        reservation.updated_at = now
    detail: dict[str, object] = {}
    if moving:
        detail = {"starts_at": reservation.starts_at, "ends_at": reservation.ends_at}
        detail["moved_from"] = [before[0], before[1]]
    action = "reservation.move" if moving else "reservation.update"
    audit.record(db, principal.user, action, f"reservation:{reservation.id}", now, **detail)
    db.commit()
    if revoked:
        state.hub.notify()
    public = ReservationPublic.model_validate(reservation)
    return ReservationMoved(**public.model_dump(), reissued_leases=reissued)


def _reissue(
    db: WriteDB, state: State, reservation: Reservation, revoked: list[Revocation], now: Now
) -> list[LeasePublic]:
    """One new lease for each lease a move revoked: same holder, same scope, new times."""
    out = []
    robot = robot_crud.get(db, reservation.robot_id)
    for entry in revoked:
        old = db.get(Lease, entry.jti)
        if old is None or old.expires_at <= now:
            continue
        holder = user_crud.get_user(db, old.user_id)
        lease, token = lease_crud.issue(
            db,
            reservation,
            robot,
            holder,
            scope=old.scope,
            key=state.signing_key,
            issuer=state.settings.issuer,
            now=now,
        )
        audit.record(db, holder, "lease.reissue", f"lease:{lease.jti}", now, replaces=old.jti)
        out.append(
            LeasePublic(
                token=token,
                jti=lease.jti,
                robot=robot.name,
                scope=lease.scope,
                not_before=lease.not_before,
                expires_at=lease.expires_at,
            )
        )
    return out


@router.post(
    "/{reservation_id}/cancel",
    responses={409: refusal("reservation_not_active: already cancelled or over")},
)
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


@router.post(
    "/{reservation_id}/lease",
    status_code=status.HTTP_201_CREATED,
    responses={
        403: refusal(
            "forbidden: only the holder takes a control lease (or a robot daemon's token)"
        ),
        409: {
            "model": ErrorPublic,
            "description": "reservation_not_active, robot_not_bookable, reservation_too_short",
        },
    },
)
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
