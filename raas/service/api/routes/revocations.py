"""Revoked leases, pushed to robot daemons.

`GET /robots/{id}/revocations?since=N&wait=S` answers at once when entries newer than cursor
N exist, else holds the request up to S seconds and answers as soon as one is committed (long
poll; wait=0 is a plain poll). `GET /robots/{id}/revocations/stream?since=N` is the same feed
as server-sent events. Both resume from a cursor, so a daemon that reconnects misses nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from raas.service.crud import leases as lease_crud
from raas.service.crud import robots as robot_crud
from raas.service.deps import AnyPrincipal, ObjectId, State, require_robot_or_staff
from raas.service.revocations import long_poll
from raas.service.schemas import RevocationBatch, RevocationPublic, refusal
from raas.service.state import ServiceState

router = APIRouter(prefix="/robots", tags=["revocations"])
BATCH = 500
KEEPALIVE_S = 15.0

Since = Annotated[int, Query(ge=0, le=2**31 - 1, description="cursor: last seq seen")]


def _read(state: ServiceState, robot_id: int, since: int) -> list[RevocationPublic]:
    with state.db.read() as db:
        rows = lease_crud.revocations_since(db, robot_id, since, BATCH)
        return [RevocationPublic.model_validate(r) for r in rows]


def _check_robot(state: ServiceState, robot_id: int) -> None:
    with state.db.read() as db:
        robot_crud.get(db, robot_id)


@router.get(
    "/{robot_id}/revocations",
    responses={403: refusal("forbidden: only this robot's daemon or staff")},
)
async def revocations(
    request: Request,
    robot_id: ObjectId,
    principal: AnyPrincipal,
    state: State,
    since: Since = 0,
    wait: Annotated[float, Query(ge=0, le=60, description="seconds to hold the request")] = 0,
) -> RevocationBatch:
    require_robot_or_staff(principal, robot_id)
    await run_in_threadpool(_check_robot, state, robot_id)
    wait_s = min(wait, state.settings.max_poll_wait_s)
    found = await long_poll(
        state.hub, wait_s, lambda: _read(state, robot_id, since), bool, request.is_disconnected
    )
    cursor = found[-1].seq if found else since
    return RevocationBatch(robot_id=robot_id, cursor=cursor, revocations=found)


@router.get(
    "/{robot_id}/revocations/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        403: refusal("forbidden: only this robot's daemon or staff"),
    },
)
async def revocation_stream(
    robot_id: ObjectId, principal: AnyPrincipal, state: State, since: Since = 0
) -> StreamingResponse:
    """Server-sent events: one `revoked` event per revoked lease, `id:` is its seq."""
    require_robot_or_staff(principal, robot_id)
    await run_in_threadpool(_check_robot, state, robot_id)

    async def events() -> AsyncIterator[str]:
        cursor = since
        last_sent = time.monotonic()
        yield ": connected\n\n"
        with state.hub.subscribe() as sub:
            while True:
                sub.clear()
                for r in await run_in_threadpool(_read, state, robot_id, cursor):
                    cursor = r.seq
                    last_sent = time.monotonic()
                    data = json.dumps(r.model_dump(mode="json"))
                    yield f"id: {r.seq}\nevent: revoked\ndata: {data}\n\n"
                if time.monotonic() - last_sent > KEEPALIVE_S:
                    last_sent = time.monotonic()
                    yield ": keepalive\n\n"
                await sub.wait(KEEPALIVE_S)
                await asyncio.sleep(0)

    return StreamingResponse(events(), media_type="text/event-stream")
