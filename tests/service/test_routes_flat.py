"""The service's routes are registered flat on the application's router (raas/service/api/main.py):
the same OpenAPI document as including the route modules' routers, and no included-router node
for a request to walk."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from raas.service.api.main import ROUTE_MODULES, add_routes


def _included() -> FastAPI:
    app = FastAPI(title="t", version="0")
    router = APIRouter()
    for module in ROUTE_MODULES:
        router.include_router(module.router)
    app.include_router(router)
    return app


def _flat() -> FastAPI:
    app = FastAPI(title="t", version="0")
    add_routes(app.router)
    return app


def test_flat_routes_give_the_same_openapi_document() -> None:
    included, flat = _included().openapi(), _flat().openapi()
    assert len(flat["paths"]) > 30
    assert flat == included


def test_every_route_sits_on_the_router_itself() -> None:
    app = _flat()
    routes = [r for r in app.router.routes if isinstance(r, APIRoute)]
    expected = sum(len(m.router.routes) for m in ROUTE_MODULES)
    assert len(routes) == expected
    # nothing but plain routes: no included-router node (FastAPI >= 0.137's lazy include)
    assert all(type(r).__name__ != "_IncludedRouter" for r in app.router.routes)
