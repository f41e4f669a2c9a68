"""Liveness."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class HealthPublic(BaseModel):
    status: str


@router.get("/health")
def health() -> HealthPublic:
    return HealthPublic(status="ok")
