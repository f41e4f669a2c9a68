"""One router holding every route module."""

from __future__ import annotations

from fastapi import APIRouter

from raas.service.api.routes import (
    audit,
    auth,
    calendar,
    commands,
    health,
    maintenance,
    reservations,
    revocations,
    robots,
    users,
    wear,
)

api_router = APIRouter()
for module in (
    health,
    auth,
    users,
    robots,
    revocations,
    commands,
    wear,
    reservations,
    maintenance,
    audit,
    calendar,
):
    api_router.include_router(module.router)
