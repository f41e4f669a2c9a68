"""The audit log (staff and admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from raas.service.crud import audit as audit_crud
from raas.service.deps import ReadDB, Staff
from raas.service.schemas import AuditPublic

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("")
def list_audit(
    _: Staff,
    db: ReadDB,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[AuditPublic]:
    return [
        AuditPublic.model_validate(e)
        for e in audit_crud.list_entries(db, limit=limit, offset=offset)
    ]
