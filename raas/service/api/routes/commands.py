"""E-stop over REST and the command feed a robot's daemon follows.

`POST /robots/{id}/estop` (staff, or the researcher whose confirmed reservation of this robot
covers now) and `POST /robots/{id}/clear-estop` (staff) append to the robot's command feed and
wake every waiting follower at once, in every service process (channel `commands` of the
notifier, raas/service/notify.py).
`GET /robots/{id}/commands?since=N&wait=S` is that feed as a long-poll with the revocation
feed's cursor rules: it answers at once when entries newer than N exist, else holds up to S
seconds and answers as soon as one is committed; `cursor` is what to pass back as `since`,
`head` the newest seq (a fresh follower that must not replay history starts there).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from raas.service.crud import audit
from raas.service.crud import commands as command_crud
from raas.service.crud import robots as robot_crud
from raas.service.deps import (
    AnyPrincipal,
    Now,
    ObjectId,
    Person,
    Staff,
    State,
    WriteDB,
    require_robot_or_staff,
)
from raas.service.errors import Forbidden
from raas.service.models import CommandKind
from raas.service.notify import long_poll
from raas.service.schemas import CommandAccepted, CommandBatch, CommandNote, CommandPublic, refusal
from raas.service.state import ServiceState

router = APIRouter(prefix="/robots", tags=["safety"])
BATCH = 500

Since = Annotated[int, Query(ge=0, le=2**31 - 1, description="cursor: last seq seen")]


@router.post(
    "/{robot_id}/estop",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        403: refusal(
            "forbidden: only staff or the holder of the booking running now "
            "(or a robot daemon's token)"
        )
    },
)
def estop(
    robot_id: ObjectId, body: CommandNote, person: Person, db: WriteDB, state: State, now: Now
) -> CommandAccepted:
    """Stop the robot: its daemon latches FAULT (estop) and holds where the hand is, until
    staff clear it. Staff, or the holder of the reservation running now."""
    robot = robot_crud.get(db, robot_id, lock=True)
    if not person.is_staff and not command_crud.holds_current_reservation(
        db, person.user.id, robot.id, now
    ):
        raise Forbidden("only staff or the holder of the reservation running now may e-stop")
    command = command_crud.issue(db, robot, person.user, CommandKind.estop, body.note, now)
    audit.record(
        db, person.user, "robot.estop", f"robot:{robot.id}", now, seq=command.seq, note=body.note
    )
    db.commit()
    state.notify.publish("commands", str(robot.id))
    return CommandAccepted(seq=command.seq)


@router.post("/{robot_id}/clear-estop", status_code=status.HTTP_202_ACCEPTED)
def clear_estop(
    robot_id: ObjectId, body: CommandNote, staff: Staff, db: WriteDB, state: State, now: Now
) -> CommandAccepted:
    """Staff release a REST e-stop (after checking the robot)."""
    robot = robot_crud.get(db, robot_id, lock=True)
    command = command_crud.issue(db, robot, staff.user, CommandKind.clear_estop, body.note, now)
    audit.record(
        db,
        staff.user,
        "robot.clear_estop",
        f"robot:{robot.id}",
        now,
        seq=command.seq,
        note=body.note,
    )
    db.commit()
    state.notify.publish("commands", str(robot.id))
    return CommandAccepted(seq=command.seq)


def _read(state: ServiceState, robot_id: int, since: int) -> tuple[list[CommandPublic], int, bool]:
    with state.db.read() as db:
        robot = robot_crud.get(db, robot_id)
        rows = command_crud.since(db, robot_id, since, BATCH)
        return (
            [CommandPublic.model_validate(r) for r in rows],
            command_crud.head(db, robot_id),
            robot.estop_latched,
        )


@router.get(
    "/{robot_id}/commands", responses={403: refusal("forbidden: only this robot's daemon or staff")}
)
async def commands(
    request: Request,
    robot_id: ObjectId,
    principal: AnyPrincipal,
    state: State,
    since: Since = 0,
    wait: Annotated[float, Query(ge=0, le=60, description="seconds to hold the request")] = 0,
) -> CommandBatch:
    """The robot's command feed (its daemon's token, or staff), as a long-poll."""
    require_robot_or_staff(principal, robot_id)
    wait_s = min(wait, state.settings.max_poll_wait_s)
    found, head, latched = await long_poll(
        state.notify,
        "commands",
        wait_s,
        lambda: _read(state, robot_id, since),
        lambda got: bool(got[0]),
        request.is_disconnected,
    )
    cursor = found[-1].seq if found else since
    return CommandBatch(
        robot_id=robot_id, cursor=cursor, head=head, latched=latched, commands=found
    )
