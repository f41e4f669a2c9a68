"""The OpenAPI document, with every refusal an operation may answer.

FastAPI lists a route's success and the `responses=` it declares, plus a 422 with its own
`HTTPValidationError` body, which this service never answers (its 422 is `InvalidRequestPublic`
with `"error": "invalid_request"`, or `ErrorPublic` for a refusal such as
`invalid_time_range`). `refusal_openapi(app)` builds the document once and adds what follows
from each route's own metadata, so a new route is described without anyone remembering to:

- **401** `not_authenticated`, `token_expired`, `token_revoked` on every operation with a
  security requirement (the bearer scheme or the login cookie);
- **403** `forbidden` where the route's dependency tree holds a role check (`Person`, `Staff`,
  `Admin`: raas/service/deps.py) or the calendar feeds' reader check; routes whose handler
  refuses by itself (a robot's own token, the holder of a booking) declare their 403 in
  `responses=`, next to the code that raises it;
- **404** `not_found` on every operation with a path parameter (unless the route declares its
  own 404, e.g. `unknown_robot`);
- **400** `malformed_body` and **413** `body_too_large` on every operation with a JSON body
  (raas/service/body_limit.py);
- every **422** as `InvalidRequestPublic | ErrorPublic`.

Refusals only a handler knows (409s, a 404 for an id in the body) stay hand-written in the
route's `responses=`; tests/service/test_schemathesis.py fails on any status an operation
answers without declaring it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from raas.service import deps
from raas.service.api.routes.calendar import get_feed_principal
from raas.service.schemas import ErrorPublic, InvalidRequestPublic

ERROR_REF = {"$ref": "#/components/schemas/ErrorPublic"}
INVALID_REF = {"$ref": "#/components/schemas/InvalidRequestPublic"}

UNAUTHENTICATED = (
    "not_authenticated (no credentials, an unknown token, a deactivated account), "
    "token_expired, token_revoked"
)
ROLE_REFUSALS: dict[Callable[[deps.Principal], None], str] = {
    deps._person: "forbidden: a robot daemon's token (this is for people)",
    deps._staff: "forbidden: staff or admin only",
    deps._admin: "forbidden: admin only",
}
FEED_REFUSAL = "forbidden: a robot daemon's token, or a token in the URL that is not an API token"
NOT_FOUND = "not_found: no such object (or not one you may see)"
MALFORMED = "malformed_body: the body cannot be parsed (e.g. nested too deeply)"
TOO_LARGE = "body_too_large: the body is larger than the service takes (max_body_bytes, 1 MiB)"
INVALID = "invalid_request (a malformed body or parameter: `detail` lists each field at fault)"
#: Operations whose path parameter looks nothing up: the bundle upload's sha256 names the
#: bytes it carries (stored or not, no 404).
NO_LOOKUP = {("put", "/bundles/{sha256}")}
#: FastAPI's description of a declared response without one.
NO_DESCRIPTION = ("Additional Response", "Validation Error")


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def role_refusal(dependant: Dependant) -> str | None:
    """Why the route's dependencies may answer 403, if they may."""
    for call in _calls(dependant):
        if isinstance(call, deps.PrincipalOf) and call.check in ROLE_REFUSALS:
            return ROLE_REFUSALS[call.check]
        if call is get_feed_principal:
            return FEED_REFUSAL
    return None


def _codes(description: str) -> list[str]:
    return re.findall(r"[a-z_]+", description)


def _declare(op: dict[str, Any], status: int, description: str, schema: Any) -> None:
    """Add `status` to the operation's responses, or name one more code in its description."""
    responses = op.setdefault("responses", {})
    entry = responses.get(str(status))
    if entry is None:
        entry = {"description": description}
        if schema is not None:
            entry["content"] = {"application/json": {"schema": schema}}
        responses[str(status)] = entry
        op["responses"] = dict(sorted(responses.items()))
        return
    existing = entry.get("description", "")
    if existing in NO_DESCRIPTION or not existing:
        entry["description"] = description
    elif _codes(description)[0] not in _codes(existing):
        entry["description"] = f"{existing}; {description}"
    if schema is not None and "content" not in entry:
        entry["content"] = {"application/json": {"schema": schema}}


def _json_body(op: dict[str, Any]) -> bool:
    return "application/json" in op.get("requestBody", {}).get("content", {})


def describe_refusals(dependant: Dependant, method: str, path: str, op: dict[str, Any]) -> None:
    if op.get("security"):
        _declare(op, 401, UNAUTHENTICATED, ERROR_REF)
    if (why := role_refusal(dependant)) is not None:
        _declare(op, 403, why, ERROR_REF)
    lookup = "{" in path and (method, path) not in NO_LOOKUP  # an id (or name) that may not exist
    if lookup and "404" not in op.get("responses", {}):
        _declare(op, 404, NOT_FOUND, ERROR_REF)
    if _json_body(op):
        _declare(op, 400, MALFORMED, ERROR_REF)
        _declare(op, 413, TOO_LARGE, ERROR_REF)
    invalid = op.get("responses", {}).get("422")
    if invalid is not None:
        description = invalid.get("description", "")
        if description in NO_DESCRIPTION or not description:
            invalid["description"] = INVALID
        elif "invalid_request" not in _codes(description):
            invalid["description"] = f"{INVALID} or, as `{{detail, error}}`: {description}"
        invalid["content"] = {"application/json": {"schema": {"anyOf": [INVALID_REF, ERROR_REF]}}}


def _add_models(doc: dict[str, Any]) -> None:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorPublic, InvalidRequestPublic):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas.setdefault(model.__name__, schema)
    text = json.dumps(doc["paths"])
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's, never answered here
        if f'schemas/{name}"' not in text:
            schemas.pop(name, None)
    doc["components"]["schemas"] = dict(sorted(schemas.items()))


def refusal_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            description=app.description,
            routes=app.routes,
        )
        # Routes of included routers too (FastAPI keeps them as a node: /metrics, the page).
        for route in iter_route_contexts(app.routes):
            if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
                continue
            path = route.path_format or ""
            for method in route.methods or ():
                op = doc["paths"].get(path, {}).get(method.lower())
                if op is not None:
                    describe_refusals(route.dependant, method.lower(), path, op)
        _add_models(doc)
        app.openapi_schema = doc
        return doc

    return openapi
