"""Every way a lease can be refused, each named by what went wrong."""

from __future__ import annotations


class LeaseError(Exception):
    """A lease token was refused."""


class LeaseMalformed(LeaseError):
    """The token is not a well-formed lease (not a JWT, wrong algorithm, missing claims)."""


class LeaseSignatureInvalid(LeaseError):
    """The signature does not verify with the trusted public key."""


class LeaseExpired(LeaseError):
    """The reservation the lease belongs to has ended (`exp` has passed)."""


class LeaseNotYetValid(LeaseError):
    """The reservation the lease belongs to has not started yet (`nbf` is in the future)."""


class LeaseWrongRobot(LeaseError):
    """The lease was issued for another robot."""


class LeaseWrongScope(LeaseError):
    """The lease does not grant the requested scope (an `observe` lease asked to control)."""


class LeaseRevoked(LeaseError):
    """The lease was revoked (its reservation was cancelled or overlaid by maintenance)."""
