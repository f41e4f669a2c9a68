"""Users, passwords and quotas."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from raas.service.errors import AlreadyExists, LastAdmin, NotFound
from raas.service.models import Quota, Role, User
from raas.service.schemas import QuotaUpdate, UserCreate, UserUpdate
from raas.service.security import hash_password

#: Limits for users without a quota row: (hours per week, days ahead); None = unlimited.
DEFAULT_QUOTAS: dict[str, tuple[float | None, int | None]] = {
    Role.researcher.value: (20.0, 28),
    Role.staff.value: (None, None),
    Role.admin.value: (None, None),
}


@dataclass(frozen=True)
class Limits:
    hours_per_week: float | None
    max_days_ahead: int | None
    default: bool


def get_user(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def get_by_email(db: Session, email: str) -> User | None:
    return db.scalars(select(User).where(User.email == email.lower())).first()


def list_users(db: Session, *, limit: int, offset: int) -> list[User]:
    return list(db.scalars(select(User).order_by(User.id).limit(limit).offset(offset)))


def create_user(db: Session, data: UserCreate, now: datetime) -> User:
    user = User(
        email=data.email.lower(),
        name=data.name,
        role=data.role.value,
        password_hash=hash_password(data.password) if data.password else None,
        active=True,
        created_at=now,
    )
    db.add(user)
    try:
        db.flush()
    except IntegrityError as exc:
        raise AlreadyExists(f"a user with email {data.email!r} exists") from exc
    return user


def update_user(db: Session, user: User, data: UserUpdate) -> User:
    """Raises LastAdmin when the change would demote or deactivate the last active admin."""
    stays_admin = (data.role is None or data.role.value == Role.admin.value) and (
        data.active is None or data.active
    )
    if user.role == Role.admin.value and user.active and not stays_admin:
        # Lock the active admins' rows: two admins demoting each other at once cannot both pass.
        admins = db.scalars(
            select(User.id)
            .where(User.role == Role.admin.value, User.active.is_(True))
            .with_for_update()
        ).all()
        if not [a for a in admins if a != user.id]:
            raise LastAdmin("the last active admin cannot be demoted or deactivated")
    if data.name is not None:
        user.name = data.name
    if data.role is not None:
        user.role = data.role.value
    if data.active is not None:
        user.active = data.active
    if data.password is not None:
        user.password_hash = hash_password(data.password)
    db.flush()
    return user


def limits(db: Session, user: User) -> Limits:
    quota = db.get(Quota, user.id)
    if quota is None:
        hours, days = DEFAULT_QUOTAS[user.role]
        return Limits(hours, days, default=True)
    return Limits(quota.hours_per_week, quota.max_days_ahead, default=False)


def set_quota(db: Session, user: User, data: QuotaUpdate) -> Limits:
    quota = db.get(Quota, user.id)
    if quota is None:
        quota = Quota(user_id=user.id)
        db.add(quota)
    quota.hours_per_week = data.hours_per_week
    quota.max_days_ahead = data.max_days_ahead
    db.flush()
    return limits(db, user)


def reset_quota(db: Session, user: User) -> Limits:
    quota = db.get(Quota, user.id)
    if quota is not None:
        db.delete(quota)
        db.flush()
    return limits(db, user)
