"""Every route module's routes, registered flat on one router.

FastAPI 0.137+ keeps an included router as a node of the route tree (`_IncludedRouter`) and
matches it lazily, walking the tree again for every candidate on every request; with 13 route
modules that cost a booking request 55 us of matching (warm) against 33 us for the same routes
registered on the router itself. `add_routes` registers each module's routes the way
`include_router` did before 0.137 (a copy of each APIRoute with all its settings); the OpenAPI
document is the same, byte for byte (tests/service/test_routes_flat.py)."""

from __future__ import annotations

from types import ModuleType

from fastapi import APIRouter
from fastapi.routing import APIRoute

from raas.service.api.routes import (
    audit,
    auth,
    bundles,
    calendar,
    commands,
    health,
    jobs,
    maintenance,
    reservations,
    revocations,
    robots,
    users,
    wear,
)
from raas.service.json_body import StrictJSONRoute

#: The route modules, in matching order (each module's routes in their own order).
ROUTE_MODULES: tuple[ModuleType, ...] = (
    health,
    auth,
    users,
    robots,
    revocations,
    commands,
    wear,
    reservations,
    maintenance,
    audit,
    calendar,
    bundles,
    jobs,
)


def add_routes(router: APIRouter) -> None:
    """Register every route module's routes on `router` itself (no included-router node)."""
    for module in ROUTE_MODULES:
        for r in module.router.routes:
            if not isinstance(r, APIRoute):
                raise TypeError(f"{module.__name__}: only API routes are flattened, not {r!r}")
            router.add_api_route(
                r.path,
                r.endpoint,
                response_model=r.response_model,
                status_code=r.status_code,
                tags=list(r.tags),
                dependencies=list(r.dependencies),
                summary=r.summary,
                description=r.description,
                response_description=r.response_description,
                responses=dict(r.responses),
                deprecated=r.deprecated,
                methods=set(r.methods or ()),
                operation_id=r.operation_id,
                response_model_include=r.response_model_include,
                response_model_exclude=r.response_model_exclude,
                response_model_by_alias=r.response_model_by_alias,
                response_model_exclude_unset=r.response_model_exclude_unset,
                response_model_exclude_defaults=r.response_model_exclude_defaults,
                response_model_exclude_none=r.response_model_exclude_none,
                include_in_schema=r.include_in_schema,
                response_class=r.response_class,
                name=r.name,
                # strict JSON bodies: a duplicate key is refused (raas/service/json_body.py)
                route_class_override=StrictJSONRoute,
                callbacks=r.callbacks,
                openapi_extra=r.openapi_extra,
                generate_unique_id_function=r.generate_unique_id_function,
            )
