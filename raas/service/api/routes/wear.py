"""Wear accounting: per-actuator totals since the last reset, staff thresholds, resets.

The totals arrive with the daemon's heartbeats (`wear` in POST /robots/{id}/heartbeat).
A heartbeat, or a threshold change, that takes an actuator past a threshold raises a maintenance
alert once (audit "robot.wear_alert"); it stands in `wear_alerts` until staff reset the actuator
after maintenance. An alert does not block booking by itself.
"""

from __future__ import annotations

from fastapi import APIRouter

from raas.service.crud import audit
from raas.service.crud import robots as robot_crud
from raas.service.crud import wear as wear_crud
from raas.service.deps import Now, ObjectId, Person, ReadDB, Staff, State, WriteDB
from raas.service.schemas import WearPublic, WearReset, WearThresholdsUpdate

router = APIRouter(prefix="/robots", tags=["safety"])


@router.get("/{robot_id}/wear")
def get_wear(robot_id: ObjectId, _: Person, db: ReadDB, state: State) -> WearPublic:
    """Each actuator's wear since its last reset, the thresholds in force, standing alerts."""
    robot = robot_crud.get(db, robot_id)
    return wear_crud.public(db, robot.id, state.settings)


@router.put("/{robot_id}/wear/thresholds")
def put_thresholds(
    robot_id: ObjectId,
    body: WearThresholdsUpdate,
    staff: Staff,
    db: WriteDB,
    state: State,
    now: Now,
) -> WearPublic:
    """Set the robot's thresholds (null: the service default) and re-judge every actuator."""
    robot = robot_crud.get(db, robot_id, lock=True)
    target = f"robot:{robot.id}"
    _, raised = wear_crud.set_thresholds(db, robot.id, body, state.settings, now)
    audit.record(
        db, staff.user, "robot.wear_thresholds", target, now, **body.model_dump(mode="json")
    )
    for alert in raised:
        audit.record(db, staff.user, "robot.wear_alert", target, now, alert=alert)
    db.commit()
    return wear_crud.public(db, robot.id, state.settings)


@router.post("/{robot_id}/wear/reset")
def reset_wear(
    robot_id: ObjectId, body: WearReset, staff: Staff, db: WriteDB, state: State, now: Now
) -> WearPublic:
    """After maintenance: zero the named actuators' wear (all when none are named)."""
    robot = robot_crud.get(db, robot_id, lock=True)
    names = None if body.actuators in (None, "all") else list(body.actuators)
    reset = wear_crud.reset(db, robot.id, names, now)
    audit.record(
        db,
        staff.user,
        "robot.wear_reset",
        f"robot:{robot.id}",
        now,
        actuators=reset,
        note=body.note,
    )
    db.commit()
    return wear_crud.public(db, robot.id, state.settings)
