"""iCalendar feeds: `GET /robots/{id}/calendar.ics` and `GET /users/{id}/calendar.ics`.

Calendar apps subscribe to a URL and cannot send a cookie or an Authorization header, so besides
the usual bearer token / login cookie a feed accepts `?token=<API token>`: create a token named
e.g. "calendar" (POST /auth/tokens), paste the URL into the app, revoke the token to cut it off.
Only API tokens are accepted in the URL (a login session's secret never belongs in one).

A feed covers from `FEED_PAST` ago to `FEED_AHEAD` ahead and keeps cancelled reservations in
that window as STATUS:CANCELLED events, so subscribed apps drop them instead of keeping ghosts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from raas.service.crud import maintenance as maintenance_crud
from raas.service.crud import reservations as reservation_crud
from raas.service.crud import robots as robot_crud
from raas.service.crud import tokens as token_crud
from raas.service.crud import users as user_crud
from raas.service.deps import Now, ObjectId, Principal, ReadDB, State, get_principal
from raas.service.errors import Forbidden, NotFound
from raas.service.ical import (
    MaintenanceEntry,
    ReservationEntry,
    render_robot_calendar,
    render_user_calendar,
)
from raas.service.models import (
    ApiToken,
    MaintenanceBlock,
    Reservation,
    ReservationStatus,
    Robot,
    User,
)

router = APIRouter(tags=["calendar"])

MEDIA_TYPE = "text/calendar; charset=utf-8"
FEED_PAST = timedelta(days=30)
FEED_AHEAD = timedelta(days=366)
FEED_LIMIT = 5000

_bearer = HTTPBearer(auto_error=False, description="API token or login session token")


async def get_feed_principal(
    request: Request,
    state: State,
    now: Now,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: Annotated[
        str | None, Query(max_length=200, description="API token, for calendar apps")
    ] = None,
) -> Principal:
    """A person from `?token=` (API tokens only), else from the header or the login cookie."""
    if token:

        def read() -> tuple[ApiToken, User]:
            with state.db.read() as db:
                return token_crud.authenticate(db, token, now)

        api_token, user = await run_in_threadpool(read)
        principal = Principal(user=user, token=api_token)
        if api_token.kind != "api":
            raise Forbidden("only API tokens may be passed in a feed URL")
    else:
        principal = await get_principal(request, state, now, credentials)
    if principal.robot_id is not None:
        raise Forbidden("robot tokens cannot read calendars")
    return principal


FeedReader = Annotated[Principal, Depends(get_feed_principal)]


def _reservation_entries(
    db: Session, reservations: list[Reservation], reader: Principal
) -> list[ReservationEntry]:
    """Feed rows; others' bookings are private (busy blocks) unless the reader is staff."""
    robot_ids = {r.robot_id for r in reservations}
    user_ids = {r.user_id for r in reservations}
    robots = {r.id: r.name for r in db.scalars(select(Robot).where(Robot.id.in_(robot_ids)))}
    users = {u.id: u.name for u in db.scalars(select(User).where(User.id.in_(user_ids)))}
    return [
        ReservationEntry(
            id=r.id,
            robot_id=r.robot_id,
            robot_name=robots[r.robot_id],
            user_id=r.user_id,
            user_name=users[r.user_id],
            start=r.starts_at,
            end=r.ends_at,
            created_at=r.created_at,
            updated_at=r.updated_at,
            cancelled=r.status == ReservationStatus.cancelled.value,
            note=r.purpose or None,
            private=not reader.is_staff and r.user_id != reader.user.id,
        )
        for r in reservations
    ]


def _maintenance_entries(robot: Robot, blocks: list[MaintenanceBlock]) -> list[MaintenanceEntry]:
    return [
        MaintenanceEntry(
            id=b.id,
            robot_id=b.robot_id,
            robot_name=robot.name,
            start=b.starts_at,
            end=b.ends_at,
            created_at=b.created_at,
            updated_at=b.created_at,
            reason=b.reason,
        )
        for b in blocks
    ]


def _ics(body: bytes, filename: str) -> Response:
    return Response(
        content=body,
        media_type=MEDIA_TYPE,
        headers={
            "Content-Disposition": f'inline; filename="{filename}"',
            "Cache-Control": "private, max-age=60",
        },
    )


@router.get("/robots/{robot_id}/calendar.ics", response_class=Response)
def robot_calendar(robot_id: ObjectId, principal: FeedReader, db: ReadDB, now: Now) -> Response:
    """The robot's bookings (cancelled ones marked) and maintenance blocks, as iCalendar.
    Any signed-in person may see when the robot is busy; who booked and why only on their own
    bookings (staff: on all)."""
    robot = robot_crud.get(db, robot_id)
    start, end = now - FEED_PAST, now + FEED_AHEAD
    reservations = reservation_crud.list_reservations(
        db,
        user_id=None,
        robot_id=robot.id,
        status=None,
        start=start,
        end=end,
        limit=FEED_LIMIT,
        offset=0,
    )
    blocks = maintenance_crud.list_blocks(db, robot_id=robot.id, start=start, end=end)
    body = render_robot_calendar(
        robot.name,
        _reservation_entries(db, reservations, principal),
        _maintenance_entries(robot, blocks),
    )
    return _ics(body, f"{robot.name}.ics")


@router.get("/users/{user_id}/calendar.ics", response_class=Response)
def user_calendar(user_id: ObjectId, principal: FeedReader, db: ReadDB, now: Now) -> Response:
    """A user's own bookings (cancelled ones marked), as iCalendar; the user or staff only."""
    if principal.user.id != user_id and not principal.is_staff:
        raise NotFound(f"no user {user_id}")  # as /users/{id}: others' accounts are not shown
    user = user_crud.get_user(db, user_id)
    reservations = reservation_crud.list_reservations(
        db,
        user_id=user.id,
        robot_id=None,
        status=None,
        start=now - FEED_PAST,
        end=now + FEED_AHEAD,
        limit=FEED_LIMIT,
        offset=0,
    )
    body = render_user_calendar(user.name, _reservation_entries(db, reservations, principal))
    return _ics(body, f"user-{user.id}.ics")
