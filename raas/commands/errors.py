"""Errors of the operator commands (`raasd up`, `raasd create-admin`), named by what went wrong."""

from __future__ import annotations

from raas.errors import RaasError


class ChildFailedError(RaasError):
    """A process `raasd up` supervises exited, or never printed what it should have."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


class ServiceRequestError(RaasError):
    """The reservation service refused or did not answer a request `raasd up` made."""


class AdminCommandError(RaasError):
    """`raasd create-admin` cannot do what was asked (the message says why, for the operator)."""
