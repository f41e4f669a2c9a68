"""Maintenance blocks: laying one over reservations cancels them and revokes their leases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from raas.service.crud import reservations as reservation_crud
from raas.service.crud import robots as robot_crud
from raas.service.errors import InvalidTimeRange, NotFound
from raas.service.models import (
    MaintenanceBlock,
    Reservation,
    ReservationStatus,
    Revocation,
    User,
)
from raas.service.schemas import MaintenanceCreate


def create(
    db: Session, data: MaintenanceCreate, staff: User, now: datetime
) -> tuple[MaintenanceBlock, list[Reservation], list[Revocation]]:
    if data.ends_at <= data.starts_at:
        raise InvalidTimeRange("ends_at must be after starts_at")
    robot = robot_crud.get(db, data.robot_id, lock=True)
    block = MaintenanceBlock(
        robot_id=robot.id,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        reason=data.reason,
        created_by=staff.id,
        created_at=now,
    )
    db.add(block)
    db.flush()
    overlapping = db.scalars(
        select(Reservation)
        .where(
            Reservation.robot_id == robot.id,
            Reservation.status == ReservationStatus.confirmed.value,
            Reservation.starts_at < data.ends_at,
            Reservation.ends_at > data.starts_at,
            Reservation.ends_at > now,
        )
        .with_for_update()
    ).all()
    revoked: list[Revocation] = []
    for reservation in overlapping:
        revoked += reservation_crud.cancel(
            db, reservation, reason=f"maintenance block {block.id}", now=now
        )
    return block, list(overlapping), revoked


def get(db: Session, block_id: int) -> MaintenanceBlock:
    block = db.get(MaintenanceBlock, block_id)
    if block is None:
        raise NotFound(f"no maintenance block {block_id}")
    return block


def list_blocks(
    db: Session, *, robot_id: int | None, start: datetime | None, end: datetime | None
) -> list[MaintenanceBlock]:
    stmt = select(MaintenanceBlock)
    if robot_id is not None:
        stmt = stmt.where(MaintenanceBlock.robot_id == robot_id)
    if start is not None:
        stmt = stmt.where(MaintenanceBlock.ends_at > start)
    if end is not None:
        stmt = stmt.where(MaintenanceBlock.starts_at < end)
    return list(db.scalars(stmt.order_by(MaintenanceBlock.starts_at, MaintenanceBlock.id)))


def delete(db: Session, block: MaintenanceBlock) -> None:
    db.delete(block)
    db.flush()
