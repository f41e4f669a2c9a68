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
from pydantic import TypeAdapter
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException

from raas import __version__
from raas.leases.keys import load_or_create_private_key, load_private_key, load_public_key
from raas.service.api import add_routes
from raas.service.body_limit import BodyLimitMiddleware, upload_routes
from raas.service.db import Database
from raas.service.errors import SeriesConflict, ServiceError
from raas.service.job_sweeper import sweep_forever
from raas.service.json_body import DuplicateKeyError
from raas.service.metrics import install_metrics
from raas.service.migrate import upgrade
from raas.service.models import utcnow
from raas.service.notify import Notifier
from raas.service.openapi import refusal_openapi
from raas.service.schemas import OccurrenceRefusal
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


#: How much of a refused value a 422 echoes: strings cut to this many characters, lists and
#: objects to this many items, nesting to this depth (a 20 MB string used to come back whole,
#: once per error about it).
ECHO_CHARS = 200
ECHO_ITEMS = 10
ECHO_DEPTH = 3
#: At most this many errors per 422 (the rest are counted in a last entry).
ECHO_ERRORS = 20


def _encodable(value: Any, depth: int = 0) -> Any:
    """What a refused body carried, made safe and short to answer with: JSON has no NaN or
    infinity (named in words), UTF-8 cannot carry a lone surrogate (`"\\ud800"` parses in
    Python's json but cannot be encoded back), so surrogates are written as `\\udXXX` escapes;
    long strings, lists and objects are cut (`ECHO_*`), marked with an ellipsis."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        if len(value) > ECHO_CHARS:
            value = f"{value[:ECHO_CHARS]}... ({len(value)} characters)"
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict | list | tuple) and depth >= ECHO_DEPTH:
        return f"... ({type(value).__name__} of {len(value)})"
    if isinstance(value, dict):
        items = list(value.items())
        out = {_encodable(str(k)): _encodable(v, depth + 1) for k, v in items[:ECHO_ITEMS]}
        if len(items) > ECHO_ITEMS:
            out["..."] = f"{len(items) - ECHO_ITEMS} more keys"
        return out
    if isinstance(value, list | tuple):
        shown = [_encodable(v, depth + 1) for v in value[:ECHO_ITEMS]]
        if len(value) > ECHO_ITEMS:
            shown.append(f"... {len(value) - ECHO_ITEMS} more items")
        return shown
    return value


#: Fields whose refused value is never echoed back (a mistyped password stays unseen in logs).
SECRET_FIELDS = {"password", "token"}


def validation_errors(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's 422 detail (`loc`, `msg`, `type`, `input`), always encodable as JSON and short:
    `input` is cut (`_encodable`), at most `ECHO_ERRORS` entries."""
    errors = list(errors)
    out = []
    for error in errors[:ECHO_ERRORS]:
        item = {k: error[k] for k in ("type", "loc", "msg") if k in error}
        if error.get("type") == "json_invalid" and (why := (error.get("ctx") or {}).get("error")):
            item["msg"] = f"{item.get('msg', 'JSON decode error')}: {why}"
        item = _encodable(jsonable_encoder(item))
        if "input" in error and not SECRET_FIELDS & {str(p) for p in error.get("loc", ())}:
            item["input"] = jsonable_encoder(_encodable(error["input"]))  # cut before encoding
        out.append(item)
    if len(errors) > ECHO_ERRORS:
        more = len(errors) - ECHO_ERRORS
        out.append({"type": "too_many_errors", "loc": [], "msg": f"{more} more errors left out"})
    return out


#: The `error` code of each status the framework itself answers (an unknown path, a method the
#: path does not take, a body that cannot be parsed): the same `{detail, error}` as every
#: refusal of the service.
HTTP_CODES = {
    400: "malformed_body",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}

_OCCURRENCES = TypeAdapter(list[OccurrenceRefusal])


def allowed_methods(request: Request, allow: str) -> str:
    """Every method some route takes at this path: Starlette's 405 names only the first route
    whose path matched (GET /reservations), not its siblings (POST /reservations)."""
    methods = {m.strip() for m in allow.split(",") if m.strip()}
    path = request.scope.get("path", "")
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


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
        if isinstance(exc, SeriesConflict):  # times as every answer writes them (Z)
            body["occurrences"] = _OCCURRENCES.dump_python(
                _OCCURRENCES.validate_python(exc.occurrences), mode="json"
            )
        headers = exc.headers
        if exc.status_code == 401 and "WWW-Authenticate" not in headers:
            headers = {**headers, "WWW-Authenticate": "Bearer"}  # RFC 9110: every 401 names one
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, and fails on a NaN or a lone surrogate in it.
        return JSONResponse(
            {"detail": validation_errors(exc.errors()), "error": "invalid_request"},
            status_code=422,
        )

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # The framework's own refusals (404 unknown path, 405, 400 unparsable body, 413):
        # `{detail, error}` like the service's, their headers (Allow) kept.
        cause = exc.__cause__
        if isinstance(cause, DuplicateKeyError):  # a strict body (raas/service/json_body.py)
            field = [{"type": "duplicate_key", "loc": ["body", cause.key], "msg": str(cause)}]
            return JSONResponse(
                {"detail": validation_errors(field), "error": "invalid_request"},
                status_code=422,
            )
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route: see /docs for the routes there are"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request, headers.get("Allow", ""))
        return JSONResponse({"detail": detail, "error": code}, exc.status_code, headers)

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
    app.openapi = refusal_openapi(app)  # type: ignore[method-assign]  # every refusal listed
    # Bodies over max_body_bytes refused before they are read; the uploads keep their limits.
    app.add_middleware(
        BodyLimitMiddleware, limit=settings.max_body_bytes, exempt=upload_routes(app.routes)
    )
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: every answer, errors included
    return app
