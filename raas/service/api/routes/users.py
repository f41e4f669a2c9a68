"""Users and their quotas. Admins manage users; staff set quotas; everyone sees themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from raas.service.crud import audit
from raas.service.crud import jobs as job_crud
from raas.service.crud import reservations as reservation_crud
from raas.service.crud import tokens as token_crud
from raas.service.crud import users as user_crud
from raas.service.crud.users import Limits
from raas.service.deps import Admin, Now, ObjectId, Person, ReadDB, Staff, State, WriteDB
from raas.service.errors import Forbidden, NotFound
from raas.service.models import Revocation
from raas.service.schemas import (
    QuotaPublic,
    QuotaUpdate,
    UserCreate,
    UserPublic,
    UserUpdate,
    refusal,
)

router = APIRouter(prefix="/users", tags=["users"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


def _quota(user_id: int, limits: Limits) -> QuotaPublic:
    return QuotaPublic(
        user_id=user_id,
        hours_per_week=limits.hours_per_week,
        max_days_ahead=limits.max_days_ahead,
        default=limits.default,
    )


def _visible(principal: Person, user_id: int) -> None:
    if principal.user.id != user_id and not principal.is_staff:
        raise NotFound(f"no user {user_id}")


@router.get("")
def list_users(_: Staff, db: ReadDB, limit: Limit = 100, offset: Offset = 0) -> list[UserPublic]:
    return [
        UserPublic.model_validate(u) for u in user_crud.list_users(db, limit=limit, offset=offset)
    ]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={409: refusal("already_exists: a user with that email exists")},
)
def create_user(body: UserCreate, admin: Admin, db: WriteDB, now: Now) -> UserPublic:
    user = user_crud.create_user(db, body, now)
    audit.record(db, admin.user, "user.create", f"user:{user.id}", now, role=user.role)
    db.commit()
    return UserPublic.model_validate(user)


@router.get("/{user_id}")
def get_user(user_id: ObjectId, principal: Person, db: ReadDB) -> UserPublic:
    _visible(principal, user_id)
    return UserPublic.model_validate(user_crud.get_user(db, user_id))


@router.patch(
    "/{user_id}",
    responses={
        403: refusal(
            "forbidden: only admins change roles, activation or others' accounts "
            "(or a robot daemon's token)"
        ),
        409: refusal("last_admin: the change would leave no active admin"),
    },
)
def update_user(
    user_id: ObjectId, body: UserUpdate, principal: Person, db: WriteDB, state: State, now: Now
) -> UserPublic:
    """Admins change anything; a user may change their own name and password.

    A new password ends the user's other login sessions (the session making the change, if it
    is theirs, stays). Deactivating an account cancels its bookings that have not ended and
    revokes their leases (each audited), and cancels its queued and running evaluation jobs."""
    _visible(principal, user_id)
    if not principal.is_admin and (
        principal.user.id != user_id or body.role is not None or body.active is not None
    ):
        raise Forbidden("only admins change roles, accounts of others, or activation")
    user = user_crud.get_user(db, user_id)
    was_active = user.active
    user = user_crud.update_user(db, user, body)
    changed = sorted(body.model_dump(exclude_none=True, exclude={"password"}))
    if body.password is not None:
        changed.append("password")
    audit.record(db, principal.user, "user.update", f"user:{user.id}", now, fields=changed)
    if body.password is not None:
        keep = principal.token.id if principal.user.id == user.id else None
        ended = token_crud.revoke_sessions(db, user, now, keep=keep)
        audit.record(db, principal.user, "user.sessions_ended", f"user:{user.id}", now, n=ended)
    revoked: list[Revocation] = []
    if was_active and not user.active:
        cancelled, revoked = reservation_crud.cancel_future_of(
            db, user, reason=f"account deactivated by admin:{principal.user.id}", now=now
        )
        for reservation in cancelled:
            audit.record(
                db,
                principal.user,
                "reservation.cancel",
                f"reservation:{reservation.id}",
                now,
                reason="account deactivated",
            )
        jobs, job_revoked = job_crud.cancel_all_of(db, user, principal.user, now)
        revoked += job_revoked
        audit.record(
            db,
            principal.user,
            "user.deactivate",
            f"user:{user.id}",
            now,
            cancelled=[r.id for r in cancelled],
            jobs_cancelled=[j.id for j in jobs],
            leases_revoked=len(revoked),
        )
    db.commit()
    if revoked:
        state.hub.notify()
    return UserPublic.model_validate(user)


@router.get("/{user_id}/quota")
def get_quota(user_id: ObjectId, principal: Person, db: ReadDB) -> QuotaPublic:
    _visible(principal, user_id)
    return _quota(user_id, user_crud.limits(db, user_crud.get_user(db, user_id)))


@router.put("/{user_id}/quota")
def set_quota(
    user_id: ObjectId, body: QuotaUpdate, staff: Staff, db: WriteDB, now: Now
) -> QuotaPublic:
    """Set a user's limits (null = unlimited)."""
    limits = user_crud.set_quota(db, user_crud.get_user(db, user_id), body)
    audit.record(db, staff.user, "quota.set", f"user:{user_id}", now, **body.model_dump())
    db.commit()
    return _quota(user_id, limits)


@router.delete("/{user_id}/quota")
def reset_quota(user_id: ObjectId, staff: Staff, db: WriteDB, now: Now) -> QuotaPublic:
    """Drop a user's own limits: the role's defaults apply again."""
    limits = user_crud.reset_quota(db, user_crud.get_user(db, user_id))
    audit.record(db, staff.user, "quota.reset", f"user:{user_id}", now)
    db.commit()
    return _quota(user_id, limits)
