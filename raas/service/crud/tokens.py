"""Bearer tokens: API tokens, login sessions and robot daemon tokens."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from raas.service.errors import NotAuthenticated, NotFound, TokenExpired, TokenRevoked
from raas.service.models import ApiToken, User
from raas.service.security import hash_token, new_token_secret


def issue(
    db: Session,
    user: User,
    *,
    kind: str,
    name: str,
    now: datetime,
    lifetime: timedelta | None,
    robot_id: int | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the secret (which is not stored)."""
    secret = new_token_secret()
    token = ApiToken(
        user_id=user.id,
        robot_id=robot_id,
        kind=kind,
        name=name,
        token_hash=hash_token(secret),
        prefix=secret[:12],
        created_at=now,
        expires_at=now + lifetime if lifetime is not None else None,
    )
    db.add(token)
    db.flush()
    return token, secret


def authenticate(db: Session, secret: str, now: datetime) -> tuple[ApiToken, User]:
    row = db.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(secret))
    ).first()
    if row is None:
        raise NotAuthenticated("unknown token")
    token, user = row
    if token.revoked_at is not None:
        raise TokenRevoked()
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenExpired()
    if not user.active:
        raise NotAuthenticated("account disabled")
    return token, user


def list_for(db: Session, user: User) -> list[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    return list(db.scalars(stmt))


def list_for_robot(db: Session, robot_id: int) -> list[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.robot_id == robot_id).order_by(ApiToken.id)
    return list(db.scalars(stmt))


def get(db: Session, token_id: int) -> ApiToken:
    token = db.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token {token_id}")
    return token


def revoke(db: Session, token: ApiToken, now: datetime) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = now
        db.flush()
    return token


def revoke_sessions(db: Session, user: User, now: datetime, *, keep: int | None) -> int:
    """Revoke the user's live login sessions except `keep`; answers how many."""
    stmt = select(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.kind == "session", ApiToken.revoked_at.is_(None)
    )
    n = 0
    for token in db.scalars(stmt):
        if token.id != keep:
            token.revoked_at = now
            n += 1
    db.flush()
    return n
