"""Settings of the mirror hand and its calibration file.

    [hand]
    driver = "mirror"
    model = "leap-like"          # what policy bundles call this hand (hand.model)
    actuators = 16               # names joint_0 .. joint_15, or:
    # actuator_names = ["if_mcp", "if_rot", ...]
    # calibration = "leap.toml"  # names, limits and effort limits from a file (below)
    limit_rad = [-1.0, 1.0]      # every actuator's range unless `limits` lists one per actuator
    effort_limit = 1.0           # every actuator's, unless `effort_limits` lists one per actuator
    lag_s = 0.05                 # first-order lag from target to measured position

A calibration file (TOML, relative paths resolve against the cell file's folder):

    model = "leap-v2"            # optional, overrides the settings' model
    [[actuators]]
    name = "if_mcp"
    lower = -0.314
    upper = 2.23
    effort_limit = 0.5           # optional (the settings' effort_limit)
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from raas_drivers.errors import DriverConfigError
from raas_drivers.hand.shape import HandShape


class MirrorHandSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(default="mirror", min_length=1, description="hand model bundles name")
    actuators: int | None = Field(
        default=None, ge=1, le=256, description="actuator count; names joint_0 .. joint_<n-1>"
    )
    actuator_names: list[str] | None = Field(default=None, description="one name per actuator")
    calibration: str | None = Field(
        default=None, description="TOML file with [[actuators]] name, lower, upper, effort_limit"
    )
    limit_rad: tuple[float, float] = Field(
        default=(-1.0, 1.0), description="[lower, upper] rad of every actuator"
    )
    limits: list[tuple[float, float]] | None = Field(
        default=None, description="[lower, upper] rad per actuator"
    )
    effort_limit: float = Field(default=1.0, gt=0, description="every actuator's effort limit")
    effort_limits: list[float] | None = Field(default=None, description="one per actuator, > 0")
    lag_s: float = Field(
        default=0.05, ge=0, le=10, description="time constant of the target -> position lag"
    )
    temperature_c: float = Field(default=30.0, description="reported motor temperature")

    @model_validator(mode="after")
    def _one_shape(self) -> MirrorHandSettings:
        given = [
            n
            for n, v in (
                ("actuators", self.actuators),
                ("actuator_names", self.actuator_names),
                ("calibration", self.calibration),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of actuators, actuator_names, calibration"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.actuator_names is not None:
            if not self.actuator_names:
                raise ValueError("actuator_names is empty")
            if len(set(self.actuator_names)) != len(self.actuator_names):
                raise ValueError("actuator_names lists a name twice")
        lo, hi = self.limit_rad
        if not lo < hi:
            raise ValueError(f"limit_rad: lower {lo} must be below upper {hi}")
        for i, (a, b) in enumerate(self.limits or ()):
            if not a < b:
                raise ValueError(f"limits[{i}]: lower {a} must be below upper {b}")
        if any(not e > 0 for e in self.effort_limits or ()):
            raise ValueError("effort_limits must all be > 0")
        return self


class _CalActuator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    lower: float
    upper: float
    effort_limit: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> _CalActuator:
        if not self.lower < self.upper:
            raise ValueError(f"lower {self.lower} must be below upper {self.upper}")
        return self


class _Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str | None = None
    actuators: list[_CalActuator] = Field(min_length=1)


def _read_calibration(path: Path, device: str) -> _Calibration:
    field = f"{device}.calibration"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise DriverConfigError(field, f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DriverConfigError(field, f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DriverConfigError(field, f"{path} is not valid TOML: {exc}") from None
    try:
        cal = _Calibration.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DriverConfigError(field, f"{path.name}: {where}: {first['msg']}") from None
    names = [a.name for a in cal.actuators]
    if len(set(names)) != len(names):
        raise DriverConfigError(field, f"{path.name} lists an actuator name twice")
    return cal


def load_shape(settings: MirrorHandSettings, device: str, base_dir: Path) -> HandShape:
    """The hand's shape from its settings (and calibration file). Raises DriverConfigError
    naming the field (`hand.limits`, `hand.calibration`, ...)."""
    model = settings.model
    if settings.calibration is not None:
        path = Path(settings.calibration).expanduser()
        cal = _read_calibration(path if path.is_absolute() else base_dir / path, device)
        names = tuple(a.name for a in cal.actuators)
        limits = np.array([[a.lower, a.upper] for a in cal.actuators], dtype=np.float64)
        efforts = np.array(
            [a.effort_limit or settings.effort_limit for a in cal.actuators], dtype=np.float64
        )
        model = cal.model or model
    else:
        if settings.actuator_names is not None:
            names = tuple(settings.actuator_names)
        else:
            assert settings.actuators is not None
            names = tuple(f"joint_{i}" for i in range(settings.actuators))
        limits = np.tile(np.array(settings.limit_rad, dtype=np.float64), (len(names), 1))
        efforts = np.full(len(names), settings.effort_limit)
    n = len(names)
    if settings.limits is not None:
        if len(settings.limits) != n:
            raise DriverConfigError(
                f"{device}.limits", f"{len(settings.limits)} ranges for {n} actuators"
            )
        limits = np.array(settings.limits, dtype=np.float64)
    if settings.effort_limits is not None:
        if len(settings.effort_limits) != n:
            raise DriverConfigError(
                f"{device}.effort_limits", f"{len(settings.effort_limits)} values for {n} actuators"
            )
        efforts = np.array(settings.effort_limits, dtype=np.float64)
    return HandShape(
        model=model,
        actuator_names=names,
        joint_names=names,
        limits=limits,
        effort_limits=efforts,
        actuator_joint_index=tuple(range(n)),
    )
