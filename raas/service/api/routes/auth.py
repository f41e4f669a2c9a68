"""Login (cookie + token for the booking page), logout, and the caller's API tokens."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response, status

from raas.service.crud import audit
from raas.service.crud import logins as login_crud
from raas.service.crud import tokens as token_crud
from raas.service.crud import users as user_crud
from raas.service.deps import AnyPrincipal, Now, ObjectId, Person, ReadDB, State, WriteDB
from raas.service.errors import InvalidCredentials, NotFound
from raas.service.schemas import (
    ErrorPublic,
    LoginRequest,
    LoginResponse,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserPublic,
)
from raas.service.security import verify_password

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/login",
    responses={
        401: {"model": ErrorPublic, "description": "invalid_credentials"},
        429: {
            "model": ErrorPublic,
            "description": "too_many_logins: the email is locked out for a while",
            "headers": {
                "Retry-After": {
                    "description": "Seconds until the next attempt may succeed",
                    "schema": {"type": "integer"},
                }
            },
        },
    },
)
def login(
    body: LoginRequest, response: Response, db: WriteDB, state: State, now: Now
) -> LoginResponse:
    """Check email and password; answer a session token and set it as an HttpOnly cookie.
    After `login_max_failures` failed attempts an email is locked out (429 with Retry-After),
    for a time that doubles with every further failure."""
    login_crud.refuse_if_locked(db, body.email, now)
    user = user_crud.get_by_email(db, body.email)
    ok = verify_password(body.password, user.password_hash if user else None)
    if user is None or not ok or not user.active:
        locked_until = login_crud.record_failure(db, body.email, now, state.settings)
        target = f"user:{user.id}" if user else "email:unknown"
        audit.record(db, user, "login.failed", target, now, locked=locked_until is not None)
        db.commit()  # the failure counts even though the answer is a refusal
        raise InvalidCredentials()
    login_crud.record_success(db, body.email)
    lifetime = timedelta(hours=state.settings.session_hours)
    token, secret = token_crud.issue(
        db, user, kind="session", name="login", now=now, lifetime=lifetime
    )
    audit.record(db, user, "login", f"user:{user.id}", now)
    db.commit()
    response.set_cookie(
        state.settings.cookie_name,
        secret,
        max_age=int(lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=state.settings.cookie_secure,
        path="/",
    )
    assert token.expires_at is not None
    return LoginResponse(
        access_token=secret, expires_at=token.expires_at, user=UserPublic.model_validate(user)
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(principal: AnyPrincipal, db: WriteDB, state: State, now: Now) -> Response:
    """Revoke the credential used for this request and clear the cookie."""
    token = token_crud.get(db, principal.token.id)
    token_crud.revoke(db, token, now)
    db.commit()
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(state.settings.cookie_name, path="/")
    return response


@router.get("/me")
def me(principal: Person) -> UserPublic:
    return UserPublic.model_validate(principal.user)


@router.get("/tokens")
def list_tokens(principal: Person, db: ReadDB) -> list[TokenPublic]:
    return [TokenPublic.model_validate(t) for t in token_crud.list_for(db, principal.user)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, principal: Person, db: WriteDB, now: Now) -> TokenCreated:
    """Create an API token for scripts; the secret is in the answer and never again."""
    lifetime = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    token, secret = token_crud.issue(
        db, principal.user, kind="api", name=body.name, now=now, lifetime=lifetime
    )
    audit.record(db, principal.user, "token.create", f"token:{token.id}", now, name=body.name)
    db.commit()
    return TokenCreated(token=secret, **TokenPublic.model_validate(token).model_dump())


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: ObjectId, principal: Person, db: WriteDB, now: Now) -> TokenPublic:
    """Revoke one of your tokens (admins: anyone's; staff: any robot's, e.g. a lost PC's)."""
    token = token_crud.get(db, token_id)
    robot_token_by_staff = token.kind == "robot" and principal.is_staff
    if token.user_id != principal.user.id and not principal.is_admin and not robot_token_by_staff:
        raise NotFound(f"no token {token_id}")
    token_crud.revoke(db, token, now)
    audit.record(db, principal.user, "token.revoke", f"token:{token.id}", now)
    db.commit()
    return TokenPublic.model_validate(token)
