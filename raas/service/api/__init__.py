"""HTTP API: `api_router` gathers the route modules."""

from raas.service.api.main import api_router

__all__ = ["api_router"]
