"""The robot directory: what each daemon registers (endpoints, server key, hand, devices,
capabilities), found by name, and the caller's current booking of a robot."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from raas.service.errors import NoCurrentBooking, UnknownRobot
from raas.service.models import Reservation, ReservationStatus, Robot
from raas.service.schemas import DeviceEntry, DirectoryReport


def register(robot: Robot, entry: DirectoryReport, now: datetime) -> None:
    """Store the daemon's directory entry (every heartbeat carries it: a restarted daemon on
    new ports or with a new key is current within one heartbeat)."""
    robot.control_endpoint = entry.control_endpoint
    robot.stream_endpoint = entry.stream_endpoint
    robot.server_public_key = entry.server_public_key
    robot.hand_model = entry.hand_model
    robot.devices = json.dumps([d.model_dump() for d in entry.devices])
    robot.capabilities = json.dumps(list(entry.capabilities))
    robot.registered_at = now


def devices(robot: Robot) -> list[DeviceEntry]:
    return [DeviceEntry.model_validate(d) for d in json.loads(robot.devices or "[]")]


def capabilities(robot: Robot) -> list[str]:
    return [str(c) for c in json.loads(robot.capabilities or "[]")]


def by_name(db: Session, name: str) -> Robot:
    """The robot named `name`; UnknownRobot lists the names there are."""
    robot = db.scalars(select(Robot).where(Robot.name == name)).first()
    if robot is None:
        names = list(db.scalars(select(Robot.name).order_by(Robot.name)))
        known = ", ".join(names) if names else "none"
        raise UnknownRobot(f"no robot named {name!r}; robots: {known}")
    return robot


def current_booking(db: Session, robot: Robot, user_id: int, now: datetime) -> Reservation:
    """The caller's confirmed booking of `robot` running at `now`; NoCurrentBooking says when
    the next one starts (or that there is none)."""
    mine = (
        select(Reservation)
        .where(
            Reservation.robot_id == robot.id,
            Reservation.user_id == user_id,
            Reservation.status == ReservationStatus.confirmed.value,
            Reservation.ends_at > now,
        )
        .order_by(Reservation.starts_at)
    )
    upcoming = list(db.scalars(mine.limit(1)))
    if upcoming and upcoming[0].starts_at <= now:
        return upcoming[0]
    if upcoming:
        nxt = upcoming[0]
        wait = (nxt.starts_at - now).total_seconds()
        raise NoCurrentBooking(
            f"you have no booking of {robot.name} running now; your next one "
            f"(reservation {nxt.id}) starts at {nxt.starts_at.isoformat()} "
            f"(in {_span(wait)})"
        )
    raise NoCurrentBooking(
        f"you have no booking of {robot.name} running now and none ahead: book it first "
        "(POST /reservations or the booking page)"
    )


def _span(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"
