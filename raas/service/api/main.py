"""One router holding every route module."""

from __future__ import annotations

from fastapi import APIRouter

from raas.service.api.routes import (
    audit,
    auth,
    calendar,
    health,
    maintenance,
    reservations,
    revocations,
    robots,
    users,
)

api_router = APIRouter()
for module in (
    health,
    auth,
    users,
    robots,
    revocations,
    reservations,
    maintenance,
    audit,
    calendar,
):
    api_router.include_router(module.router)
