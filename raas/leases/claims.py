"""The claims a lease carries."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LeaseScope = Literal["control", "observe"]

#: The scopes each scope grants: a control lease may also observe.
GRANTS: dict[str, frozenset[str]] = {
    "control": frozenset({"control", "observe"}),
    "observe": frozenset({"observe"}),
}


class LeaseClaims(BaseModel):
    """JWT claims of a lease. Times are integer seconds since the Unix epoch (RFC 7519)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    iss: str = Field(description="issuer: the reservation service that signed the lease")
    sub: str = Field(description="the user the lease is for")
    robot: str = Field(description="the robot's name")
    rid: int = Field(description="the reservation id")
    scope: LeaseScope
    nbf: int = Field(description="not before: the reservation's start")
    exp: int = Field(description="expiry: the reservation's end")
    jti: str = Field(description="unique lease id, the handle used to revoke it")
    iat: int | None = None

    def grants(self, scope: str) -> bool:
        return scope in GRANTS[self.scope]
