"""Safety settings: the `[safety]` section of a cell configuration. Defaults suit the simulated
Shadow-type hand at 12.5 Hz; docs/safety.md explains each and how they were chosen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ConditioningConfig(BaseModel):
    """The action conditioning pipeline: finite -> limits -> rate -> derate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    soft_margin_rad: float = Field(
        default=0.02, ge=0, le=0.2, description="targets stay this far inside each joint limit"
    )
    max_velocity_rad_s: float = Field(
        default=4.0, gt=0, le=100, description="largest target speed of any actuator"
    )
    max_step_rad: float = Field(
        default=0.35, gt=0, le=3.2, description="largest target change of one actuator per cycle"
    )
    effort_derate_start: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="derating starts at this fraction of an actuator's force range",
    )
    effort_derate_full: float = Field(
        default=1.0, gt=0, le=2, description="... and is full (target = measured position) here"
    )
    temp_derate_start_c: float = Field(
        default=60.0, description="derating starts at this motor temperature"
    )
    temp_derate_full_c: float = Field(default=80.0, description="... and is full here")


class WatchdogConfig(BaseModel):
    """The daemon's watchdog layers (the firmware's own watchdog is in [rig.link])."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stale_cycles: int = Field(
        default=3,
        ge=1,
        le=10_000,
        description="K: a required source stale this many cycles in a row -> HOLD",
    )
    deadline_cycles: int = Field(
        default=5,
        ge=1,
        le=10_000,
        description="M: this many overrun or missed cycles in a row -> HOLD",
    )
    nonfinite_cycles: int = Field(
        default=3, ge=1, le=10_000, description="this many actions in a row with NaN/inf -> HOLD"
    )


class SafetyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    conditioning: ConditioningConfig = Field(default_factory=ConditioningConfig)
    watchdogs: WatchdogConfig = Field(default_factory=WatchdogConfig)
    ramp_velocity_rad_s: float = Field(
        default=0.5, gt=0, le=10, description="speed of the targets on a ramp-down to home"
    )
    home_tolerance_rad: float = Field(
        default=0.005, gt=0, description="a ramp-down ends when every target is this close to home"
    )
    health_after_session: bool = Field(
        default=True, description="run the health check ([health]) after every controlling session"
    )
