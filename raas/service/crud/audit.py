"""The audit log: who did what."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from raas.service.models import AuditEntry, User


def record(
    db: Session, actor: User | None, action: str, target: str, now: datetime, **detail: Any
) -> None:
    db.add(
        AuditEntry(
            at=now,
            actor_id=actor.id if actor else None,
            action=action,
            target=target,
            detail=json.dumps(detail, default=str, sort_keys=True) if detail else "",
        )
    )


def list_entries(db: Session, *, limit: int, offset: int) -> list[AuditEntry]:
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    return list(db.scalars(stmt))
