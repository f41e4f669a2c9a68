"""Errors of the robot's network side, each named by what went wrong."""

from __future__ import annotations


class TransportError(Exception):
    """Base of the transport's errors."""


class RequestRefusedError(TransportError):
    """A request is refused with a wire error code (raas_client.wire.ErrorCode)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class KeyFileError(TransportError):
    """The server's Curve key files are unreadable or malformed."""


class EndpointError(TransportError):
    """An endpoint could not be bound (in use, bad address)."""
