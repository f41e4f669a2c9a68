"""The principal is one dependency (raas/service/deps.py `PrincipalOf`): the booking route's
dependency tree is a single node FastAPI solves per request, and the OpenAPI document still
names the same bearer scheme on the same operations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from raas.service.app import create_app
from raas.service.deps import PrincipalOf
from raas.service.settings import Settings

BEARER = {"type": "http", "description": "API token or login session token", "scheme": "bearer"}


def _app(tmp_path: Path) -> FastAPI:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'raas.db'}", signing_key_path=tmp_path / "k.pem"
    )
    return create_app(settings)


def _route(app: FastAPI, path: str, method: str) -> APIRoute:
    [route] = [
        r
        for r in app.router.routes
        if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())
    ]
    return route


def test_the_booking_route_solves_one_dependency(tmp_path: Path) -> None:
    app = _app(tmp_path)
    try:
        route = _route(app, "/reservations", "POST")
        [principal] = route.dependant.dependencies
        assert isinstance(principal.call, PrincipalOf)
        assert principal.dependencies == []  # nothing below it to solve
    finally:
        app.state.service.db.dispose()


def test_the_openapi_document_names_the_same_bearer_scheme(tmp_path: Path) -> None:
    app = _app(tmp_path)
    try:
        doc: dict[str, Any] = app.openapi()
    finally:
        app.state.service.db.dispose()
    assert doc["components"]["securitySchemes"] == {"HTTPBearer": BEARER}
    for path, method in (
        ("/reservations", "post"),
        ("/reservations", "get"),
        ("/users", "get"),
        ("/audit", "get"),
    ):
        assert doc["paths"][path][method]["security"] == [{"HTTPBearer": []}], (path, method)
    assert "security" not in doc["paths"]["/health"]["get"]
