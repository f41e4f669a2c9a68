"""The robot cell's configuration: the loop, the simulated rig, per-source deadlines, RT settings.

Every model refuses unknown fields, and `load_cell_config` turns a pydantic error into a
ConfigError whose message names the offending field (e.g. `loop.rate_hz`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from raas_drivers.sim import RigConfig

from raas.controllers import CONTROLLERS
from raas.core.loop import LoopConfig
from raas.errors import ConfigError
from raas.metrics.config import MetricsConfig
from raas.recording.config import RecordingConfig
from raas.safety import SafetyConfig
from raas.safety.health import HealthConfig
from raas.transport.config import TransportConfig

_MS = 1_000_000


class SourceDeadlines(BaseModel):
    """Per-source deadlines after the trigger, in ms. None: a default derived from the period."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hand_ms: float | None = Field(default=None, gt=0)
    trigger_ms: float | None = Field(default=None, gt=0)
    mocap_ms: float | None = Field(default=None, gt=0)
    cameras_ms: float | None = Field(default=None, gt=0)

    def resolve(self, period_ns: int) -> dict[str, int]:
        """Deadlines in ns: hand and trigger 2 ms, mocap 5 ms, cameras 60 ms, each capped at a
        share of the period so that every deadline leaves room for decide and apply."""

        def pick(value: float | None, default_ms: float, share: float) -> int:
            if value is not None:
                return round(value * _MS)
            return min(round(default_ms * _MS), round(period_ns * share))

        return {
            "hand": pick(self.hand_ms, 2.0, 0.3),
            "trigger": pick(self.trigger_ms, 2.0, 0.3),
            "mocap": pick(self.mocap_ms, 5.0, 0.3),
            "cameras": pick(self.cameras_ms, 60.0, 0.8),
        }


class RtConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="ask for SCHED_FIFO, affinity, mlockall")
    fifo_priority: int = Field(default=80, ge=1, le=99)
    cpus: tuple[int, ...] | None = Field(
        default=None, description="CPUs for the loop; None: the last CPU when there are 2 or more"
    )
    mlock: bool = True
    spin_us: int | None = Field(
        default=None,
        ge=0,
        le=20_000,
        description="sleep-then-spin margin; None: 200 us RT, 1 ms not",
    )


class CellConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    controller: str = Field(default="gait", description=f"one of {', '.join(CONTROLLERS)}")
    loop: LoopConfig = Field(default_factory=LoopConfig)
    rig: RigConfig = Field(default_factory=RigConfig)
    deadlines: SourceDeadlines = Field(default_factory=SourceDeadlines)
    rt: RtConfig = Field(default_factory=RtConfig)
    transport: TransportConfig = Field(default_factory=TransportConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)


def _field_of(err: ValidationError) -> tuple[str, str]:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(root)"
    return loc, first["msg"]


def build_cell_config(data: dict[str, Any]) -> CellConfig:
    """Validate a nested dict; raise ConfigError naming the first bad field."""
    try:
        cfg = CellConfig.model_validate(data)
    except ValidationError as err:
        field, msg = _field_of(err)
        raise ConfigError(field, msg) from None
    if cfg.controller not in CONTROLLERS:
        raise ConfigError("controller", f"unknown controller {cfg.controller!r}")
    if abs(cfg.rig.rate_hz - cfg.loop.rate_hz) > 1e-9:
        raise ConfigError("rig.rate_hz", "must equal loop.rate_hz")
    return cfg


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML cell configuration (sections [loop], [rig], [deadlines], [rt])."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("--config", f"no such file: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base` (CLI flags override the file)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def assemble_cell_config(
    config_file: Path | None, defaults: dict[str, Any], overrides: dict[str, Any]
) -> CellConfig:
    """The order every command uses: defaults < the TOML file < command-line flags. The rig's
    trigger rate follows the loop's unless something sets it. Raises ConfigError."""
    base = load_config_file(config_file) if config_file else {}
    data = merge(merge(defaults, base), overrides)
    rate = data.get("loop", {}).get("rate_hz")
    if rate is not None:
        data.setdefault("rig", {}).setdefault("rate_hz", rate)
    return build_cell_config(data)
