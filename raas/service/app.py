"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError

from raas import __version__
from raas.leases.keys import load_or_create_private_key, load_private_key, load_public_key
from raas.service.api import add_routes
from raas.service.db import Database
from raas.service.errors import SeriesConflict, ServiceError
from raas.service.job_sweeper import sweep_forever
from raas.service.metrics import install_metrics
from raas.service.migrate import upgrade
from raas.service.models import utcnow
from raas.service.notify import Notifier
from raas.service.security_headers import SecurityHeadersMiddleware
from raas.service.settings import Settings
from raas.service.state import ServiceState
from raas.service.web import make_web_router


def create_state(settings: Settings, clock: Callable[[], datetime] | None = None) -> ServiceState:
    """Open the database (migrating it to the newest schema) and load the signing key."""
    db = Database(settings.database_url)
    db.token_cache.ttl_s = settings.token_cache_ttl_s
    if settings.migrate:
        upgrade(db.engine)
    key = load_or_create_private_key(settings.signing_key_path)
    retired = [load_any_public_key(path) for path in settings.retired_signing_keys]
    return ServiceState(
        settings=settings,
        db=db,
        signing_key=key,
        clock=clock or utcnow,
        retired_keys=retired,
        notify=Notifier(settings.database_url if settings.notify_listen else None),
    )


def load_any_public_key(path: Path) -> Ed25519PublicKey:
    """The public half of a retired signing key's file (private PEM) or its `.pub` (public)."""
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    return load_public_key(data)


def _encodable(value: Any) -> Any:
    """What a refused body carried, made safe to answer with: JSON has no NaN or infinity (named
    in words), and UTF-8 cannot carry a lone surrogate (`"\\ud800"` parses in Python's json but
    cannot be encoded back), so surrogates are written as `\\udXXX` escapes."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(v) for v in value]
    return value


#: Fields whose refused value is never echoed back (a mistyped password stays unseen in logs).
SECRET_FIELDS = {"password", "token"}


def validation_errors(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's 422 detail (`loc`, `msg`, `type`, `input`), always encodable as JSON."""
    out = []
    for error in errors:
        item = {k: error[k] for k in ("type", "loc", "msg") if k in error}
        if "input" in error and not SECRET_FIELDS & {str(p) for p in error.get("loc", ())}:
            item["input"] = error["input"]
        out.append(_encodable(jsonable_encoder(item)))
    return out


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None
) -> FastAPI:
    settings = settings or Settings.from_env()
    state = create_state(settings, clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.notify.start()  # LISTEN/NOTIFY on PostgreSQL (raas/service/notify.py)
        sweeper = asyncio.create_task(sweep_forever(state))  # job requeues (job_sweeper.py)
        yield
        sweeper.cancel()
        with suppress(asyncio.CancelledError):
            await sweeper
        state.notify.stop()
        state.db.dispose()

    app = FastAPI(
        title="raas reservation service",
        version=__version__,
        description="Book robot time; bookings become signed, time-bounded leases.",
        lifespan=lifespan,
    )
    app.state.service = state
    add_routes(app.router)  # flat: no included-router node to walk per request
    install_metrics(app, state)  # GET /metrics and request counts (docs/metrics.md)

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        body: dict[str, Any] = {"detail": exc.detail, "error": exc.code}
        if isinstance(exc, SeriesConflict):
            body["occurrences"] = jsonable_encoder(exc.occurrences)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, and fails on a NaN or a lone surrogate in it.
        return JSONResponse(
            {"detail": validation_errors(exc.errors()), "error": "invalid_request"},
            status_code=422,
        )

    @app.exception_handler(IntegrityError)
    async def _integrity_error(_: Request, exc: IntegrityError) -> JSONResponse:
        return JSONResponse(
            {"detail": "conflicts with existing data", "error": "conflict"}, status_code=409
        )

    @app.exception_handler(OperationalError)
    async def _busy(_: Request, exc: OperationalError) -> JSONResponse:
        return JSONResponse(
            {"detail": "database busy, retry", "error": "database_busy"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    app.include_router(make_web_router(settings.web_dir))  # the booking page (raas/service/web.py)
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: every answer, errors included
    return app
