"""Operator commands to a robot's daemon (REST e-stop and its clearing), as an append-only feed.

Writers lock the robot row first (as revocations do), so on PostgreSQL the commands of one
robot commit in `seq` order and a follower resuming from a cursor never skips one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from raas.service.models import (
    CommandKind,
    Reservation,
    ReservationStatus,
    Robot,
    RobotCommand,
    User,
)


def issue(
    db: Session, robot: Robot, user: User, kind: CommandKind, note: str, now: datetime
) -> RobotCommand:
    """Append a command (the caller holds the robot's row lock) and latch/clear the robot."""
    command = RobotCommand(
        robot_id=robot.id, kind=kind.value, user_id=user.id, by=user.email, note=note, at=now
    )
    db.add(command)
    robot.estop_latched = kind == CommandKind.estop
    db.flush()
    return command


def since(db: Session, robot_id: int, cursor: int, limit: int) -> list[RobotCommand]:
    stmt = (
        select(RobotCommand)
        .where(RobotCommand.robot_id == robot_id, RobotCommand.seq > cursor)
        .order_by(RobotCommand.seq)
        .limit(limit)
    )
    return list(db.scalars(stmt))


def head(db: Session, robot_id: int) -> int:
    """The newest seq of this robot's feed, 0 when it is empty."""
    newest = db.scalar(select(func.max(RobotCommand.seq)).where(RobotCommand.robot_id == robot_id))
    return int(newest or 0)


def holds_current_reservation(db: Session, user_id: int, robot_id: int, now: datetime) -> bool:
    """True when the user has a confirmed reservation of this robot that covers `now`."""
    found = db.scalars(
        select(Reservation.id).where(
            Reservation.robot_id == robot_id,
            Reservation.user_id == user_id,
            Reservation.status == ReservationStatus.confirmed.value,
            Reservation.starts_at <= now,
            Reservation.ends_at > now,
        )
    ).first()
    return found is not None
