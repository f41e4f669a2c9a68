"""Maintenance blocks (staff). A block laid over reservations cancels them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from raas.service.crud import audit
from raas.service.crud import maintenance as maintenance_crud
from raas.service.deps import Now, ObjectId, Person, ReadDB, Staff, State, WriteDB
from raas.service.schemas import MaintenanceCreate, MaintenancePublic, UTCTime, refusal

router = APIRouter(prefix="/maintenance", tags=["maintenance"])


@router.get("")
def list_blocks(
    _: Person,
    db: ReadDB,
    robot_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    starts_at: Annotated[UTCTime | None, Query()] = None,
    ends_at: Annotated[UTCTime | None, Query()] = None,
) -> list[MaintenancePublic]:
    blocks = maintenance_crud.list_blocks(db, robot_id=robot_id, start=starts_at, end=ends_at)
    return [MaintenancePublic.model_validate(b) for b in blocks]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        404: refusal("not_found: no robot `robot_id`"),
        422: refusal("invalid_time_range: ends_at is not after starts_at"),
    },
)
def create_block(
    body: MaintenanceCreate, staff: Staff, db: WriteDB, state: State, now: Now
) -> MaintenancePublic:
    block, cancelled, revoked = maintenance_crud.create(db, body, staff.user, now)
    ids = [r.id for r in cancelled]
    audit.record(
        db, staff.user, "maintenance.create", f"maintenance:{block.id}", now, cancelled=ids
    )
    db.commit()
    if revoked:
        state.hub.notify()
    public = MaintenancePublic.model_validate(block)
    return public.model_copy(update={"cancelled_reservations": ids})


@router.delete("/{block_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_block(block_id: ObjectId, staff: Staff, db: WriteDB, now: Now) -> None:
    """Remove a block (cancelled reservations stay cancelled)."""
    maintenance_crud.delete(db, maintenance_crud.get(db, block_id))
    audit.record(db, staff.user, "maintenance.delete", f"maintenance:{block_id}", now)
    db.commit()
