"""A size limit on request bodies (pure ASGI, so streams and long-polls are untouched).

Every route's body is read whole before its handler runs (FastAPI parses JSON in one piece),
so without a limit a 100 MB body is read, parsed and, when refused, echoed back. This refuses a
body larger than `Settings.max_body_bytes` (1 MiB) with **413** `{"detail", "error":
"body_too_large"}` before reading it: at once when `Content-Length` says so, else (a chunked
body) as soon as the bytes received pass the limit. The upload routes (a bundle, a job's
recording: an `application/octet-stream` body) are left alone; they stream to disk and keep
their own, larger limits (`max_bundle_bytes`, `max_recording_bytes`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CODE = "body_too_large"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a chunked body passes the limit: an HTTPException, so FastAPI's
    body reader passes it on (anything else it turns into a 400) to the app's handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=message(limit))


def message(limit: int) -> str:
    return f"request body larger than {limit} bytes (this route takes at most {limit})"


def upload_routes(routes: Iterable[BaseRoute]) -> list[tuple[frozenset[str], re.Pattern[str]]]:
    """The routes whose body is bytes (`application/octet-stream` in their OpenAPI request body):
    the uploads, which stream to disk under a limit of their own."""
    out = []
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        content = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
        if "application/octet-stream" in content:
            out.append((frozenset(route.methods or ()), route.path_regex))
    return out


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        exempt: list[tuple[frozenset[str], re.Pattern[str]]] | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt or []

    def _exempt(self, scope: Scope) -> bool:
        method, path = scope.get("method", ""), scope.get("path", "")
        return any(method in methods and rx.match(path) for methods, rx in self.exempt)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": message(self.limit), "error": CODE}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if value.isdigit() and int(value) > self.limit:
                    await self._refuse(send)  # nothing of the body is read
                    return
                break
        limit, received, started = self.limit, 0, False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send)
