"""Settings of the Dynamixel hand driver: the keys of the cell file's `[hand]` section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Baud rates both dynamixel-sdk's PortHandler and the X series support.
SUPPORTED_BAUDRATES = (57600, 115200, 1_000_000, 2_000_000, 3_000_000, 4_000_000)


class DynamixelHandSettings(BaseModel):
    """A Dynamixel Protocol 2.0 hand on one serial bus (e.g. a U2D2). Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: str = Field(
        description="serial device, best a stable /dev/serial/by-id/usb-FTDI_... path",
        min_length=1,
    )
    calibration: str = Field(
        description="calibration TOML (servo ids, zeros, directions, limits); relative paths "
        "resolve against the cell file's folder",
        min_length=1,
    )
    baudrate: int = Field(default=1_000_000, description="bus baud rate the servos are set to")
    return_delay_us: int = Field(
        default=0,
        ge=0,
        le=508,
        description="Return Delay Time written to every servo (factory 500 us; 0 for speed)",
    )
    read_timeout_ms: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="a sync read not complete after this is failed (default: twice the bus time "
        "of the read plus 4 ms for USB latency)",
    )
    max_consecutive_failures: int = Field(
        default=3,
        ge=1,
        description="failed sync reads in a row before the hand counts as lost",
    )
    temperature_every: int = Field(
        default=12,
        ge=1,
        description="read Present Temperature with the state every N cycles (a longer read)",
    )
    operating_mode: Literal["current_based_position", "position"] = Field(
        default="current_based_position",
        description="current_based_position caps each servo's current at its effort limit",
    )
    torque_off_on_shutdown: bool = Field(
        default=False,
        description="switch torque off when the daemon shuts the hand down (default: hold)",
    )
    latency_timer_ms: int = Field(
        default=1,
        ge=0,
        le=255,
        description="the FTDI latency timer the udev rule sets; probe reports a larger one",
    )

    @field_validator("baudrate")
    @classmethod
    def _known_baudrate(cls, v: int) -> int:
        if v not in SUPPORTED_BAUDRATES:
            known = ", ".join(str(b) for b in SUPPORTED_BAUDRATES)
            raise ValueError(f"baud rate {v} is not one of {known}")
        return v

    @field_validator("return_delay_us")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"return delay {v} us is not a multiple of 2 us (the servo's unit)")
        return v
