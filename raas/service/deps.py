"""FastAPI dependencies, as `Annotated` aliases routes declare in their signatures.

Dependencies that neither block nor touch the database are `async def`: FastAPI runs a plain
`def` dependency in the thread pool, and each such hop costs a thread hand-off per request
(docs/performance.md, "Where the time goes: the service")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from raas.service.crud import tokens as token_crud
from raas.service.errors import Forbidden, NotAuthenticated
from raas.service.models import ApiToken, Role, User
from raas.service.security import hash_token
from raas.service.state import ServiceState

MAX_ID = 2**31 - 1
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


async def get_now(state: State) -> datetime:
    return state.clock()


Now = Annotated[datetime, Depends(get_now)]


async def _session(state: ServiceState, factory: sessionmaker[Session]) -> AsyncIterator[Session]:
    # Made on the event loop: a Session connects lazily, at its first query, which runs in the
    # route's own thread. Closing ends what the route left open (a rollback) and returns the
    # connection: microseconds on SQLite, a round trip on PostgreSQL (so in a thread).
    session = factory()
    try:
        yield session
    finally:
        if state.db.sqlite:
            session.close()
        else:
            # Not in the request thread pool: when every pool thread waits for a row lock that
            # this session holds (a route that raised before its commit), the close that
            # releases it must not queue behind them (FastAPI's own exit hops do the same).
            await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))


async def get_write_session(state: State) -> AsyncIterator[Session]:
    """A session whose transaction takes the write lock first (SQLite BEGIN IMMEDIATE).
    Routes commit explicitly before answering; anything uncommitted is rolled back."""
    async for session in _session(state, state.db.writer):
        yield session


async def get_read_session(state: State) -> AsyncIterator[Session]:
    async for session in _session(state, state.db.reader):
        yield session


WriteDB = Annotated[Session, Depends(get_write_session)]
ReadDB = Annotated[Session, Depends(get_read_session)]

#: The bearer scheme's description in the OpenAPI document (`HTTPBearer`, the scheme's name).
BEARER_DESCRIPTION = "API token or login session token"


@dataclass(frozen=True)
class Principal:
    user: User
    token: ApiToken

    @property
    def robot_id(self) -> int | None:
        """Set when the credential is a robot daemon's token."""
        return self.token.robot_id if self.token.kind == "robot" else None

    @property
    def is_staff(self) -> bool:
        return self.robot_id is None and self.user.role in (Role.staff.value, Role.admin.value)

    @property
    def is_admin(self) -> bool:
        return self.robot_id is None and self.user.role == Role.admin.value


async def get_principal(
    request: Request,
    state: ServiceState,
    now: datetime,
    credentials: HTTPAuthorizationCredentials | None,
) -> Principal:
    """The token's owner (the bearer credentials, else the login cookie): from the per-process
    token cache (raas/service/token_cache.py) when it holds the token, else read from the
    database in the thread pool and remembered."""
    secret = credentials.credentials if credentials else None
    if secret is None:
        secret = request.cookies.get(state.settings.cookie_name)
    if not secret:
        raise NotAuthenticated()
    cache = state.db.token_cache
    token_hash = hash_token(secret)
    hit = cache.lookup(token_hash, now)
    if hit is not None:
        return Principal(user=hit[1], token=hit[0])
    generation = cache.generation

    def read() -> tuple[ApiToken, User]:
        with state.db.read() as db:
            return token_crud.authenticate(db, secret, now)

    token, user = await run_in_threadpool(read)
    cache.put(token_hash, (token, user), generation)
    return Principal(user=user, token=token)


#: Why a robot daemon's token is refused on a route for people (docs/service.md, Roles).
ROBOT_TOKEN_REFUSAL = (
    "this route is for people: a robot daemon's token may only read its own robot, lease key, "
    "revocation and command feeds, send its heartbeats, and claim and report evaluation jobs"
)


def _any(principal: Principal) -> None:
    """Any valid credential: a person's or a robot daemon's."""


def _person(principal: Principal) -> None:
    """A person (any role), not a robot daemon."""
    if principal.robot_id is not None:
        raise Forbidden(ROBOT_TOKEN_REFUSAL)


def _staff(principal: Principal) -> None:
    _person(principal)
    if not principal.is_staff:
        raise Forbidden("staff or admin only")


def _admin(principal: Principal) -> None:
    _person(principal)
    if not principal.is_admin:
        raise Forbidden("admin only")


class PrincipalOf(HTTPBearer):
    """The request's principal, checked by `check`, as ONE dependency.

    FastAPI solves every node of a dependency tree on every request (recursively, with its
    parameter extraction and cache-key work even for a node already solved): the chain this
    replaces (role check -> principal -> state, clock, bearer scheme) was nine nodes per
    booking (docs/performance.md, "The create-booking path"). This is the `HTTPBearer`
    scheme itself (same name and description, so the OpenAPI document is unchanged) whose call
    reads the bearer credentials, the state and the clock and authenticates."""

    def __init__(self, check: Callable[[Principal], None]) -> None:
        super().__init__(auto_error=False, scheme_name="HTTPBearer", description=BEARER_DESCRIPTION)
        self.check = check

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        state: ServiceState = request.app.state.service
        credentials = await super().__call__(request)
        principal = await get_principal(request, state, state.clock(), credentials)
        self.check(principal)
        return principal


# FastAPI reads a dependency's parameters from its signature; an instance has no `__globals__`
# to resolve this module's postponed (string) annotations in, so give it the class itself.
PrincipalOf.__call__.__annotations__["request"] = Request


AnyPrincipal = Annotated[Principal, Depends(PrincipalOf(_any))]
Person = Annotated[Principal, Depends(PrincipalOf(_person))]
Staff = Annotated[Principal, Depends(PrincipalOf(_staff))]
Admin = Annotated[Principal, Depends(PrincipalOf(_admin))]


def require_robot_or_staff(principal: Principal, robot_id: int) -> None:
    """The robot's own daemon token, or staff/admin."""
    if principal.robot_id == robot_id or principal.is_staff:
        return
    raise Forbidden("only this robot's daemon or staff")
