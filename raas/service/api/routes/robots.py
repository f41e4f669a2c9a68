"""Robots: records (staff), heartbeats and health reports (the robot's daemon), availability."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from raas.service.crud import audit, directory
from raas.service.crud import leases as lease_crud
from raas.service.crud import robots as robot_crud
from raas.service.crud import tokens as token_crud
from raas.service.crud import users as user_crud
from raas.service.crud import wear as wear_crud
from raas.service.deps import (
    AnyPrincipal,
    Now,
    ObjectId,
    Person,
    ReadDB,
    Staff,
    State,
    WriteDB,
    require_robot_or_staff,
)
from raas.service.errors import InvalidTimeRange, NotFound, RobotNotRegistered, RobotOffline
from raas.service.schemas import (
    Availability,
    ErrorPublic,
    HealthClear,
    Heartbeat,
    LeasePublic,
    RobotConnection,
    RobotCreate,
    RobotPublic,
    RobotUpdate,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UTCTime,
    refusal,
)
from raas.service.state import ServiceState

router = APIRouter(prefix="/robots", tags=["robots"])
MAX_AVAILABILITY_WINDOW = timedelta(days=366)


@router.get("")
def list_robots(_: Person, db: ReadDB, state: State, now: Now) -> list[RobotPublic]:
    return [robot_crud.public(db, r, now, state.settings) for r in robot_crud.list_robots(db)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        409: refusal("already_exists: a robot with that name exists"),
        422: refusal("invalid_booking_rules: the minimum is not a multiple of the grid"),
    },
)
def create_robot(
    body: RobotCreate, staff: Staff, db: WriteDB, state: State, now: Now
) -> RobotPublic:
    robot = robot_crud.create(db, body, state.public_key_pem, now, state.settings)
    audit.record(db, staff.user, "robot.create", f"robot:{robot.id}", now, name=robot.name)
    db.commit()
    return robot_crud.public(db, robot, now, state.settings)


@router.get("/by-name/{name}")
def robot_by_name(name: str, _: Person, db: ReadDB, state: State, now: Now) -> RobotPublic:
    """The robot directory entry of the robot named `name` (staff and researchers): endpoints,
    server key, hand, devices, capabilities and `online` (heartbeat age within the timeout).
    404 `unknown_robot` lists the names there are."""
    return robot_crud.public(db, directory.by_name(db, name), now, state.settings)


@router.post(
    "/by-name/{name}/connect",
    responses={
        404: {"model": ErrorPublic, "description": "unknown_robot"},
        409: {
            "model": ErrorPublic,
            "description": "robot_offline, robot_not_registered, no_current_booking, "
            "reservation_too_short, robot_not_bookable",
        },
    },
)
def connect_by_name(
    name: str, principal: Person, db: WriteDB, state: State, now: Now
) -> RobotConnection:
    """Everything a client needs to drive the robot named `name`: its directory entry (the
    server key pinned from this authenticated answer) and a fresh control lease for the
    caller's booking running now."""
    robot = directory.by_name(db, name)
    public = robot_crud.public(db, robot, now, state.settings)
    age = public.heartbeat_age_s
    if age is None:
        raise RobotOffline(f"robot {name} is offline: its daemon never sent a heartbeat")
    if not public.online:
        raise RobotOffline(f"robot {name} is offline: its last heartbeat was {age:.0f} s ago")
    if public.status.value == "offline":
        raise RobotOffline(
            f"robot {name} is offline: its daemon said it was stopping {age:.0f} s ago"
        )
    if not robot.control_endpoint:
        raise RobotNotRegistered(
            f"robot {name} has not registered its endpoints (its daemon predates the robot "
            "directory): pass --endpoint, --server-key and --lease"
        )
    reservation = directory.current_booking(db, robot, principal.user.id, now)
    holder = user_crud.get_user(db, principal.user.id)
    lease, token = lease_crud.issue(
        db,
        reservation,
        robot,
        holder,
        scope="control",
        key=state.signing_key,
        issuer=state.settings.issuer,
        now=now,
    )
    audit.record(db, principal.user, "lease.issue", f"lease:{lease.jti}", now, scope="control")
    db.commit()
    return RobotConnection(
        robot=public,
        reservation_id=reservation.id,
        lease=LeasePublic(
            token=token,
            jti=lease.jti,
            robot=robot.name,
            scope="control",
            not_before=lease.not_before,
            expires_at=lease.expires_at,
        ),
    )


@router.get("/{robot_id}")
def get_robot(
    robot_id: ObjectId, principal: AnyPrincipal, db: ReadDB, state: State, now: Now
) -> RobotPublic:
    if principal.robot_id is not None and principal.robot_id != robot_id:
        raise NotFound(f"no robot {robot_id}")
    return robot_crud.public(db, robot_crud.get(db, robot_id), now, state.settings)


@router.patch(
    "/{robot_id}",
    responses={
        422: refusal(
            "invalid_booking_rules: the minimum in force is not a multiple of the grid in force"
        )
    },
)
def update_robot(
    robot_id: ObjectId, body: RobotUpdate, staff: Staff, db: WriteDB, state: State, now: Now
) -> RobotPublic:
    robot = robot_crud.update(db, robot_crud.get(db, robot_id, lock=True), body, state.settings)
    fields = sorted(body.model_dump(exclude_none=True))
    audit.record(db, staff.user, "robot.update", f"robot:{robot.id}", now, fields=fields)
    db.commit()
    return robot_crud.public(db, robot, now, state.settings)


@router.post(
    "/{robot_id}/heartbeat",
    responses={403: refusal("forbidden: only this robot's daemon or staff")},
)
def heartbeat(
    robot_id: ObjectId,
    body: Heartbeat,
    principal: AnyPrincipal,
    db: WriteDB,
    state: State,
    now: Now,
) -> RobotPublic:
    """The daemon reports in: keeps the robot's status current. `health_ok: false` (a failed
    post-session health check, or a `health` report with `ok: false`) blocks new bookings until
    staff clear it. Optional `safety` (supervisor state and reason) is shown as is; optional
    `wear` (cumulative per-actuator totals) is accounted and may raise maintenance alerts."""
    require_robot_or_staff(principal, robot_id)
    robot = robot_crud.get(db, robot_id, lock=True)
    target = f"robot:{robot.id}"
    if robot_crud.heartbeat(db, robot, body, now):
        audit.record(db, principal.user, "robot.health_failed", target, now, note=body.note)
    if body.wear is not None:
        limits = wear_crud.thresholds(db, robot.id, state.settings)
        for alert in wear_crud.record(db, robot.id, body.wear, limits, now):
            audit.record(db, principal.user, "robot.wear_alert", target, now, alert=alert)
    db.commit()
    return robot_crud.public(db, robot, now, state.settings)


@router.post("/{robot_id}/clear-health")
def clear_health(
    robot_id: ObjectId, body: HealthClear, staff: Staff, db: WriteDB, state: State, now: Now
) -> RobotPublic:
    """Staff clear a failed health check: the robot takes bookings again."""
    robot = robot_crud.clear_health(db, robot_crud.get(db, robot_id, lock=True), body.note)
    audit.record(db, staff.user, "robot.health_cleared", f"robot:{robot.id}", now, note=body.note)
    db.commit()
    return robot_crud.public(db, robot, now, state.settings)


@router.post("/{robot_id}/tokens", status_code=status.HTTP_201_CREATED)
def create_robot_token(
    robot_id: ObjectId, body: TokenCreate, staff: Staff, db: WriteDB, now: Now
) -> TokenCreated:
    """A token for the robot's daemon (heartbeats, its feeds, its lease key, job claims)."""
    robot = robot_crud.get(db, robot_id)
    lifetime = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    token, secret = token_crud.issue(
        db, staff.user, kind="robot", name=body.name, now=now, lifetime=lifetime, robot_id=robot.id
    )
    audit.record(db, staff.user, "robot.token_create", f"robot:{robot.id}", now, token=token.id)
    db.commit()
    return TokenCreated(token=secret, **TokenPublic.model_validate(token).model_dump())


@router.get("/{robot_id}/tokens")
def list_robot_tokens(robot_id: ObjectId, _: Staff, db: ReadDB) -> list[TokenPublic]:
    """The robot's daemon tokens, revoked and expired ones too (newest last): find the id of a
    lost control PC's token, then `DELETE /auth/tokens/{id}`. Never the secrets."""
    robot = robot_crud.get(db, robot_id)
    return [TokenPublic.model_validate(t) for t in token_crud.list_for_robot(db, robot.id)]


@router.get("/{robot_id}/availability", response_model=Availability)
async def availability(
    robot_id: ObjectId,
    starts_at: Annotated[UTCTime, Query()],
    ends_at: Annotated[UTCTime, Query()],
    _: Person,
    state: State,
) -> Response:
    """Busy intervals (confirmed reservations and maintenance) between two times."""
    if ends_at <= starts_at or ends_at - starts_at > MAX_AVAILABILITY_WINDOW:
        raise InvalidTimeRange("need starts_at < ends_at, at most 366 days apart")
    # The answer depends on the database only (not on who asks, nor on the time): kept per
    # window until a commit touches reservations, maintenance or robots (docs/performance.md).
    cache = state.db.availability_cache
    key = (robot_id, starts_at, ends_at)
    body = cache.get(key)
    if body is None:
        generation = cache.generation
        body = await run_in_threadpool(_availability_json, state, robot_id, starts_at, ends_at)
        cache.put(key, body, generation)
    return Response(body, media_type="application/json")


def _availability_json(
    state: ServiceState, robot_id: int, starts_at: datetime, ends_at: datetime
) -> bytes:
    with state.db.read() as db:
        robot = robot_crud.get(db, robot_id)
        answer = Availability.model_construct(
            robot_id=robot.id,
            starts_at=starts_at,
            ends_at=ends_at,
            bookable=robot_crud.bookable(robot),
            busy=robot_crud.busy(db, robot.id, starts_at, ends_at),
        )
    # Serialized once, here: a returned model would be validated again against
    # `response_model` (a thread-pool hop of its own, ~1 ms for a busy week).
    return answer.model_dump_json().encode()


@router.get("/{robot_id}/lease-key", response_class=PlainTextResponse)
def lease_key(
    robot_id: ObjectId, principal: AnyPrincipal, db: ReadDB, state: State, now: Now
) -> str:
    """PEM of the Ed25519 public keys this robot's daemon verifies leases with: the service's
    signing key and, after a rotation, each retired key while a lease it signed is live (a
    daemon reading its trusted keys from a file re-reads it when it changes)."""
    if principal.robot_id is not None and principal.robot_id != robot_id:
        raise NotFound(f"no robot {robot_id}")
    robot = robot_crud.get(db, robot_id)
    ring = lease_crud.trusted_keys(
        db,
        robot,
        current=state.signing_key.public_key(),
        retired=state.retired_keys,
        now=now,
    )
    return ring.pem()
