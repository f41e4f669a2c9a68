"""LinkConfig: the serial link of the simulated boards, faults included (RigConfig.link).

Unknown fields are refused (extra="forbid"), so a typo names its field. Rates are probabilities:
`bit_error_rate` per bit, `drop_byte_rate` / `insert_byte_rate` per byte, `truncate_rate` per
frame. Faults apply to the bytes the emulated board SENDS (and, with `corrupt_rx`, to the bytes
it receives too) on the boards named by `faulty_boards`. Every random draw comes from the rig's
seed, so a faulty run is reproducible in lockstep.

Times (`*_at_s`) are seconds of the rig's clock: wall time since start in realtime, sim time in
lockstep. Cycles (`*_at_cycle`) are trigger cycle numbers: the fault happens when that trigger
arrives.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Board = Literal["hand", "trigger"]


class LinkConfig(BaseModel):
    """The hand's and the trigger board's serial links (docs/protocol-serial.md, Link behaviour)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # firmware
    watchdog_ms: float = Field(
        default=500.0,
        gt=0,
        description="hand firmware: no valid command for this long -> motors hold their "
        "position and a FAULT is reported (armed by the first SET_TARGETS)",
    )
    baud: int = Field(
        default=0,
        ge=0,
        le=20_000_000,
        description="pace the boards' output at this baud rate (10 bits per byte); 0: as fast "
        "as the pty goes",
    )

    # host side (the drivers)
    max_bad_frames: int = Field(
        default=8, ge=1, description="M: this many bad frames in a row and the link is dead"
    )
    request_timeout_ms: float = Field(
        default=1000.0, gt=0, description="handshake and explicit-request timeout of the drivers"
    )

    # fault injection
    faulty_boards: tuple[Board, ...] = Field(
        default=("hand",), description="which boards' links the faults below apply to"
    )
    bit_error_rate: float = Field(default=0.0, ge=0, le=0.5, description="per bit sent")
    drop_byte_rate: float = Field(default=0.0, ge=0, le=1, description="per byte sent")
    insert_byte_rate: float = Field(
        default=0.0, ge=0, le=1, description="per byte sent: a random byte is inserted before it"
    )
    truncate_rate: float = Field(
        default=0.0, ge=0, le=1, description="per frame sent: only a random prefix goes out"
    )
    faults_from_cycle: int = Field(
        default=0,
        ge=0,
        description="the byte faults start with this trigger cycle (0: from the start, the "
        "handshake included)",
    )
    corrupt_rx: bool = Field(
        default=False, description="apply the byte faults to what the board receives as well"
    )
    reset_at_s: float | None = Field(default=None, ge=0, description="firmware reset at this time")
    reset_at_cycle: int | None = Field(default=None, ge=0, description="firmware reset at cycle")
    vanish_at_s: float | None = Field(default=None, ge=0, description="the port vanishes then")
    vanish_at_cycle: int | None = Field(default=None, ge=0, description="... or at this cycle")
    vanish_for_s: float | None = Field(
        default=0.5,
        ge=0,
        description="wall seconds until a vanished port comes back (None: never); the host "
        "still needs an explicit reset to use it",
    )

    # diagnostics
    record_events: bool = Field(
        default=False,
        description="the emulator writes <rig dir>/events.jsonl (applied targets, "
        "watchdog, faults, resets) for tests and post-mortems",
    )

    @property
    def byte_faults(self) -> bool:
        return (
            self.bit_error_rate > 0
            or self.drop_byte_rate > 0
            or self.insert_byte_rate > 0
            or self.truncate_rate > 0
        )

    @model_validator(mode="after")
    def _one_trigger_each(self) -> LinkConfig:
        if self.reset_at_s is not None and self.reset_at_cycle is not None:
            raise ValueError("give reset_at_s or reset_at_cycle, not both")
        if self.vanish_at_s is not None and self.vanish_at_cycle is not None:
            raise ValueError("give vanish_at_s or vanish_at_cycle, not both")
        return self
