"""HTTP API: `add_routes` registers every route module's routes on the application."""

from raas.service.api.main import add_routes

__all__ = ["add_routes"]
