"""The audit log: who did what."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from raas.service.models import AuditEntry, User

#: Built once: executing it again skips statement construction and cache-key generation.
_INSERT = insert(cast(Table, AuditEntry.__table__))


def record(
    db: Session, actor: User | None, action: str, target: str, now: datetime, **detail: Any
) -> None:
    """Write the entry now, in the caller's transaction (a Core INSERT: no ORM object to
    track and flush; it commits or rolls back with what it records)."""
    db.execute(
        _INSERT,
        {
            "at": now,
            "actor_id": actor.id if actor else None,
            "action": action,
            "target": target,
            "detail": detail_text(detail),
        },
    )


def detail_text(detail: dict[str, Any]) -> str:
    """An entry's `detail` column: its keyword arguments as JSON (sorted keys, datetimes and
    other non-JSON values as their str()); empty without any."""
    return json.dumps(detail, default=str, sort_keys=True) if detail else ""


def list_entries(db: Session, *, limit: int, offset: int) -> list[AuditEntry]:
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    return list(db.scalars(stmt))
