"""Settings of the OptiTrack NatNet motion-capture driver, as a cell file gives them:

    [mocap]
    driver = "natnet"
    server = "192.168.1.10"        # the Motive PC
    local = "192.168.1.20"         # this host's address on the mocap network
    [mocap.markers]                # row order of MocapFrame.positions
    ff_tip = { rigid_body = "hand", marker = 1 }   # labeled marker 1 of rigid body "hand"
    th_tip = { rigid_body = "hand", marker = 5 }
    block = { rigid_body = "block" }               # the rigid body's own position
    spare = { labeled_id = 65543 }                 # a labeled marker by its raw NatNet id

Unknown keys are refused with their name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MarkerSource(BaseModel):
    """Where one row of the mocap frame comes from.

    rigid_body:  a rigid body's name as Motive streams it; alone: the body's position, visible
                 while Motive tracks it; with `marker`: that labeled marker of the body
    marker:      1-based index of the marker in the rigid body (Motive's Constraints order)
    labeled_id:  a labeled marker by its raw NatNet id (model id << 16 | marker index)
    """

    model_config = ConfigDict(extra="forbid")

    rigid_body: str | None = None
    marker: int | None = Field(default=None, ge=1, le=0xFFFF)
    labeled_id: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> MarkerSource:
        if (self.rigid_body is None) == (self.labeled_id is None):
            raise ValueError("give rigid_body (optionally with marker) or labeled_id")
        if self.marker is not None and self.rigid_body is None:
            raise ValueError("marker needs rigid_body")
        return self


class NatNetSettings(BaseModel):
    """The NatNet client.

    server:           address of the NatNet server (Motive)
    local:            this host's address on the mocap network (the interface to listen on)
    command_port:     the server's command port (Motive: 1510)
    data_port:        the multicast data port (Motive: 1511)
    multicast:        True: frames come to `multicast_group`:`data_port`; False (default):
                      unicast, frames come back to the command socket
    multicast_group:  Motive's default 239.255.42.99
    markers:          row name -> MarkerSource; rows are in this order
    units_per_m:      the server's length unit per metre (Motive streams metres: 1; mm: 1000)
    up_axis:          the server's up axis: "y" (Motive's default) is turned to the cell's z-up
                      frame as (x, -z, y); "z" is taken as is
    origin_m:         the cell's world origin in the server's (converted) frame, subtracted
    connect_timeout_s: how long configure waits for the server's info and model definitions
    lost_after_s:     no frame for this long while active -> DeviceLostError
    """

    model_config = ConfigDict(extra="forbid")

    server: str = "127.0.0.1"
    local: str = "127.0.0.1"
    command_port: int = Field(default=1510, ge=1, le=65535)
    data_port: int = Field(default=1511, ge=1, le=65535)
    multicast: bool = False
    multicast_group: str = "239.255.42.99"
    markers: dict[str, MarkerSource] = Field(min_length=1)
    units_per_m: float = Field(default=1.0, gt=0.0)
    up_axis: Literal["y", "z"] = "y"
    origin_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    connect_timeout_s: float = Field(default=5.0, gt=0.0)
    lost_after_s: float = Field(default=1.0, gt=0.0)
