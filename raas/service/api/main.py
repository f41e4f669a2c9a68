"""One router holding every route module."""

from __future__ import annotations

from fastapi import APIRouter

from raas.service.api.routes import (
    audit,
    auth,
    bundles,
    calendar,
    commands,
    health,
    jobs,
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
    bundles,
    jobs,
):
    api_router.include_router(module.router)
