"""Request bodies parsed strictly: a key given twice in one JSON object is refused.

Python's `json` keeps the last of duplicate keys, so `{"robot_id": 3, "robot_id": 2}` would book
robot 2 without a word, and a strict body ("a field is refused rather than dropped") should not
drop one either. Every API route is a `StrictJSONRoute` (raas/service/api/main.py), whose
requests parse their body with an `object_pairs_hook` that raises `DuplicateKeyError`; FastAPI wraps
that in its 400 "error parsing the body", and the app's handler (raas/service/app.py) answers it
as 422 `invalid_request` naming the key. Only request bodies pay for the hook (a few
microseconds per object); answers are written as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}: a JSON object may name each field once")
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return out


def loads(body: bytes | str) -> Any:
    """`json.loads` that refuses duplicate keys (`DuplicateKeyError`)."""
    return json.loads(body, object_pairs_hook=_no_duplicates)


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            # The same request (scope, receive, body already read) with the strict `json()`.
            request.__class__ = StrictJSONRequest
            return await handler(request)

        return strict
