"""The calibration file: which servo drives which joint, and how raw counts become radians.

    model = "leap-hand"          # what the hand is, as policy bundles name it (hand.model)

    [defaults]                   # every servo's value unless its own [[servo]] sets it
    zero = 2048                  # raw Present Position (0..4095) at joint angle 0
    direction = 1                # +1: angle grows with the raw count; -1: the other way
    current_limit_ma = 550       # effort limit: Goal Current in current-based position mode

    [[servo]]                    # one per servo, in the order of the action vector
    id = 0
    joint = "index_mcp_side"
    min_rad = -1.047             # joint limits in rad (after zero and direction)
    max_rad = 1.047

joint angle (rad) = direction * (raw - zero) * 2 pi / 4096. Optional per servo (or in
[defaults]): `idle_rad` (the declared idle pose, default 0 clipped into the limits) and
`position_p_gain`, `position_i_gain`, `position_d_gain` (written at configure when given).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from raas_drivers.dynamixel import control_table as ct
from raas_drivers.dynamixel.errors import CalibrationError

_MAX_RAW = ct.POSITION_UNITS_PER_REV - 1


class ServoCalibration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(ge=0, le=252, description="servo id on the bus")
    joint: str = Field(min_length=1, description="the joint (and actuator) this servo drives")
    zero: int = Field(default=2048, ge=0, le=_MAX_RAW, description="raw position at 0 rad")
    direction: Literal[1, -1] = 1
    min_rad: float
    max_rad: float
    current_limit_ma: float = Field(gt=0, le=10_000, description="effort limit in mA")
    idle_rad: float | None = None
    position_p_gain: int | None = Field(default=None, ge=0, le=16383)
    position_i_gain: int | None = Field(default=None, ge=0, le=16383)
    position_d_gain: int | None = Field(default=None, ge=0, le=16383)

    @model_validator(mode="after")
    def _limits(self) -> ServoCalibration:
        if not (math.isfinite(self.min_rad) and math.isfinite(self.max_rad)):
            raise ValueError("min_rad and max_rad must be finite")
        if self.min_rad >= self.max_rad:
            raise ValueError(f"min_rad {self.min_rad} is not below max_rad {self.max_rad}")
        for name, rad in (("min_rad", self.min_rad), ("max_rad", self.max_rad)):
            raw = self.zero + self.direction * rad / ct.RAD_PER_POSITION_UNIT
            if not -0.5 <= raw <= _MAX_RAW + 0.5:
                raise ValueError(
                    f"{name} {rad} rad is raw position {raw:.0f}, outside one turn 0..{_MAX_RAW} "
                    f"(zero {self.zero}, direction {self.direction})"
                )
        if self.idle_rad is not None and not self.min_rad <= self.idle_rad <= self.max_rad:
            raise ValueError(
                f"idle_rad {self.idle_rad} is outside [{self.min_rad}, {self.max_rad}]"
            )
        return self


class CalibrationFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="hand model, as policy bundles name it")
    defaults: dict[str, Any] = Field(default_factory=dict)
    servo: list[ServoCalibration] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Calibration:
    """A parsed calibration, as vectors in servo order (the action vector's order)."""

    model: str
    servos: tuple[ServoCalibration, ...]
    source: Path

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(s.id for s in self.servos)

    @property
    def joints(self) -> tuple[str, ...]:
        return tuple(s.joint for s in self.servos)

    @property
    def zero(self) -> np.ndarray:
        return np.array([s.zero for s in self.servos], dtype=np.float64)

    @property
    def direction(self) -> np.ndarray:
        return np.array([s.direction for s in self.servos], dtype=np.float64)

    @property
    def limits(self) -> np.ndarray:
        return np.array([[s.min_rad, s.max_rad] for s in self.servos], dtype=np.float64)

    @property
    def current_limits_ma(self) -> np.ndarray:
        return np.array([s.current_limit_ma for s in self.servos], dtype=np.float64)

    @property
    def idle(self) -> np.ndarray:
        return np.array(
            [
                s.idle_rad if s.idle_rad is not None else min(max(0.0, s.min_rad), s.max_rad)
                for s in self.servos
            ],
            dtype=np.float64,
        )

    def joint_of(self, servo_id: int) -> str:
        for s in self.servos:
            if s.id == servo_id:
                return s.joint
        return f"id {servo_id}"

    def name(self, servo_id: int) -> str:
        """ "servo 5 (index_pip)": how errors and probe name a servo."""
        return f"servo {servo_id} ({self.joint_of(servo_id)})"

    def to_raw(self, rad: np.ndarray) -> np.ndarray:
        """Joint angles (rad) -> raw Goal Position counts (int64), rounded, inside one turn."""
        raw = np.rint(self.zero + self.direction * rad / ct.RAD_PER_POSITION_UNIT)
        out: np.ndarray = np.clip(raw, 0, _MAX_RAW).astype(np.int64)
        return out

    def to_rad(self, raw: np.ndarray) -> np.ndarray:
        """Raw Present Position counts -> joint angles in rad."""
        out: np.ndarray = self.direction * (raw - self.zero) * ct.RAD_PER_POSITION_UNIT
        return out

    def raw_limits(self) -> np.ndarray:
        """(n, 2) raw [min, max] position limits (what the servos' own limits are set to)."""
        ends = self.to_raw(self.limits.T).T  # (n, 2) raw of min_rad, max_rad
        return np.sort(ends, axis=1)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def load_calibration(path: Path, *, device: str = "hand") -> Calibration:
    """Read and check a calibration file; CalibrationError names the file and the field."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CalibrationError(f"{device}.calibration", f"no calibration file at {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{device}.calibration", f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CalibrationError(f"{device}.calibration", f"{path} is not TOML: {exc}") from exc
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict):
        raise CalibrationError(f"{path}: defaults", "must be a table")
    servos = raw.get("servo")
    if isinstance(servos, list):
        raw = {**raw, "servo": [{**defaults, **s} if isinstance(s, dict) else s for s in servos]}
    try:
        parsed = CalibrationFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _where(tuple(first["loc"])) or "file"
        raise CalibrationError(f"{path}: {where}", first["msg"]) from exc
    for key in ("id", "joint"):
        seen: dict[object, int] = {}
        for i, servo in enumerate(parsed.servo):
            v = getattr(servo, key)
            if v in seen:
                raise CalibrationError(
                    f"{path}: servo[{i}].{key}", f"repeats {key} {v!r} of servo[{seen[v]}]"
                )
            seen[v] = i
    return Calibration(model=parsed.model, servos=tuple(parsed.servo), source=path)
