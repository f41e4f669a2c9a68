"""The simulated rig's clock domains: each device counts time in its own clock.

A real cell has as many clocks as it has devices: the hand firmware's microsecond counter, the
trigger board's, the motion-capture server's frame clock, each camera's timestamp register. None
of them is the host's CLOCK_MONOTONIC; each has its own offset and runs a little fast or slow
(crystals are good to some tens of ppm). The rig gives each device domain such a clock,

    device_ns = host_ns * (1 + drift_ppm * 1e-6) + offset_us * 1000

(host_ns: CLOCK_MONOTONIC in realtime, sim time in lockstep), stamps everything the device says in
it, and the drivers map the stamps back to host time with raas_drivers.clock_sync.ClockMapper.
The defaults give every domain a different offset and no drift; tests and `python -m bench clock`
set drift too.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DomainClock(BaseModel):
    """One device's clock: where it stands against the host and how fast it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offset_us: int = Field(
        default=0,
        ge=0,
        le=10**12,
        description="device clock minus host clock, in us (whole us: the boards count us; "
        "the wire's stamps are unsigned, so a device clock never runs behind the host's)",
    )
    drift_ppm: float = Field(
        default=0.0, ge=-1000, le=1000, description="how much faster the device clock runs, ppm"
    )

    def device_ns(self, host_ns: int) -> int:
        """The device clock's reading at host time `host_ns`."""
        if self.drift_ppm == 0.0:
            return host_ns + self.offset_us * 1000
        return host_ns + round(host_ns * self.drift_ppm * 1e-6) + self.offset_us * 1000

    def device_us(self, host_ns: int) -> int:
        """The reading of a board that counts whole microseconds."""
        return self.device_ns(host_ns) // 1000


class RigClocks(BaseModel):
    """The clock of every device domain of the rig (`[rig.clocks.<domain>]`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hand: DomainClock = Field(
        default_factory=lambda: DomainClock(offset_us=1_000_000),
        description="the hand firmware's clock (STATE fw_time_us)",
    )
    trigger: DomainClock = Field(
        default_factory=lambda: DomainClock(offset_us=2_000_000),
        description="the trigger board's clock (TRIGGER_ACK hw_time_us)",
    )
    mocap: DomainClock = Field(
        default_factory=lambda: DomainClock(offset_us=3_000_000),
        description="the motion-capture server's frame clock",
    )
    cameras: DomainClock = Field(
        default_factory=lambda: DomainClock(offset_us=4_000_000),
        description="the cameras' timestamp clock (one domain for all cameras)",
    )
