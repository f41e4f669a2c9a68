"""The peer of the service benchmark: the same two endpoints in bare FastAPI, doing no work.

Same framework, same uvicorn settings, same request and response shapes (pydantic models, sync
handlers run in the thread pool as the service's are), but no authentication, no database and
no rules. What the service costs beyond this is what raas itself adds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import FastAPI, status
from pydantic import BaseModel


class BusyInterval(BaseModel):
    starts_at: datetime
    ends_at: datetime
    kind: Literal["reservation", "maintenance"]


class Availability(BaseModel):
    robot_id: int
    starts_at: datetime
    ends_at: datetime
    bookable: bool
    busy: list[BusyInterval]


class ReservationCreate(BaseModel):
    robot_id: int
    starts_at: datetime
    ends_at: datetime
    purpose: str = ""


class ReservationPublic(ReservationCreate):
    id: int
    user_id: int
    status: str
    created_at: datetime


def create_app() -> FastAPI:
    app = FastAPI(title="bare peer")
    counter = iter(range(1, 2**62))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/robots/{robot_id}/availability")
    def availability(robot_id: int, starts_at: datetime, ends_at: datetime) -> Availability:
        return Availability(
            robot_id=robot_id, starts_at=starts_at, ends_at=ends_at, bookable=True, busy=[]
        )

    @app.post("/reservations", status_code=status.HTTP_201_CREATED)
    def reserve(body: ReservationCreate) -> ReservationPublic:
        return ReservationPublic(
            **body.model_dump(),
            id=next(counter),
            user_id=1,
            status="confirmed",
            created_at=datetime.now(UTC),
        )

    return app
