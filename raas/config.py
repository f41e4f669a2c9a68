"""The cell file: the devices and their drivers, the loop, deadlines, RT settings and the rest.

A cell file (TOML) has one section per device, each naming its driver (docs/hardware.md):

    [hand]            driver = "mirror" | "sim" | "serial" | ...   (required)
    [trigger]         driver = ...   (optional: driver "none", the host time of each cycle)
    [mocap]           driver = ...   (optional)
    [cameras.NAME]    driver = ...   (0..n, each its own driver)

plus the daemon's sections ([loop], [deadlines], [rt], [transport], [safety], [recording],
[metrics], [health], controller = ...) and [rig] for the simulated rig. Every model refuses
unknown fields; each device's settings are validated by its driver's registration at start.
`build_cell_config` turns any error into a ConfigError naming the field (e.g. `loop.rate_hz`,
`hand.driver`, `cameras.left.serial_number`). `--sim` is the shipped cell file SIM_CELL.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from raas_drivers.cameras import CAMERA_NAMES
from raas_drivers.errors import DriverConfigError
from raas_drivers.hand import HandDriver
from raas_drivers.hand.shape import HandShape
from raas_drivers.registry import BuildContext, lookup
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

#: The simulated cell file that `--sim` stands for.
SIM_CELL = Path(__file__).with_name("cells") / "sim.toml"

#: Device families in the order the cell brings them up.
DEVICE_FAMILIES = ("hand", "trigger", "mocap", "cameras")
#: The driver of a cell file without [trigger].
DEFAULT_TRIGGER = "none"
_CAMERA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")


class DeviceSection(BaseModel):
    """A device of the cell: `driver` picks the registration, every other key is that driver's
    settings (validated by the registration's own model when the cell is built)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    driver: str = Field(min_length=1, description="the registered driver's name")

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One device of a cell file: key ("hand", "cameras.left"), family, driver, raw settings."""

    key: str
    family: str
    driver: str
    settings: dict[str, Any]


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
    cpu_latency_us: int = Field(
        default=0,
        ge=-1,
        le=1_000_000,
        description="CPU wake-up latency (us) held on /dev/cpu_dma_latency while the loop runs "
        "(0: idle CPUs poll instead of halting); -1: leave the machine's setting alone",
    )
    spin_us: int | None = Field(
        default=None,
        ge=0,
        le=20_000,
        description="sleep-then-spin margin; None: 200 us RT, 1 ms not",
    )


class ResetHook(BaseModel):
    """[reset]: how this cell is put back to an episode's start (the block in the palm, the hand
    at its start pose) between the episodes of an evaluation job. `raasd worker --config` runs
    the command (no shell: split like a shell line) while the hand holds; exit 0 = reset.
    The simulated rig needs none: it resets itself (the `reset` request's `scene`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(min_length=1, description="the command line, e.g. 'reset-cell --home'")
    timeout_s: float = Field(default=120.0, gt=0, le=3600, description="killed after this")


class CellConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hand: DeviceSection | None = Field(default=None, description="the hand (required)")
    trigger: DeviceSection | None = Field(
        default=None, description='the trigger board; none: driver "none" (host time)'
    )
    mocap: DeviceSection | None = Field(default=None, description="motion capture, if any")
    cameras: dict[str, DeviceSection] = Field(
        default_factory=dict, description="[cameras.NAME]: one device per camera"
    )
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
    reset: ResetHook | None = Field(
        default=None, description="the reset hook between a job's episodes (raasd worker)"
    )

    #: The cell file's folder: relative paths in device settings resolve against it.
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def with_base_dir(self, base_dir: Path) -> CellConfig:
        self._base_dir = base_dir
        return self

    def devices(self) -> list[DeviceEntry]:
        """Every device the cell file names, hand first, then trigger, mocap, cameras (in file
        order); a cell without [trigger] gets the "none" trigger."""
        out: list[DeviceEntry] = []
        if self.hand is not None:
            out.append(DeviceEntry("hand", "hand", self.hand.driver, self.hand.settings))
        trig = self.trigger
        out.append(
            DeviceEntry(
                "trigger",
                "trigger",
                trig.driver if trig is not None else DEFAULT_TRIGGER,
                trig.settings if trig is not None else {},
            )
        )
        if self.mocap is not None:
            out.append(DeviceEntry("mocap", "mocap", self.mocap.driver, self.mocap.settings))
        for name, cam in self.cameras.items():
            out.append(DeviceEntry(f"cameras.{name}", "cameras", cam.driver, cam.settings))
        return out

    @property
    def simulated(self) -> bool:
        """Every device is the simulated rig's."""
        return all(e.driver in ("sim", DEFAULT_TRIGGER) for e in self.devices()) and (
            self.hand is not None and self.hand.driver == "sim"
        )


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
    cfg = _cap_sim_cameras(cfg)
    check_devices(cfg)
    return cfg


def _cap_sim_cameras(cfg: CellConfig) -> CellConfig:
    """[rig] cameras = n: the simulated rig renders the first n of left, right, top, so a sim
    camera section beyond them is left out (`--cameras 0` runs the sim cell without cameras)."""
    rendered = CAMERA_NAMES[: cfg.rig.cameras]
    keep = {
        k: v
        for k, v in cfg.cameras.items()
        if v.driver != "sim" or k not in CAMERA_NAMES or k in rendered
    }
    if len(keep) == len(cfg.cameras):
        return cfg
    return cfg.model_copy(update={"cameras": keep})


def check_devices(cfg: CellConfig) -> None:
    """Refuse a cell without a hand, an unknown driver or bad driver settings (ConfigError
    naming the field: `hand`, `mocap.driver`, `cameras.left.serial_number`)."""
    if cfg.hand is None:
        raise ConfigError(
            "hand",
            "the cell file has no [hand] section; every cell needs a hand "
            '(e.g. [hand] driver = "mirror" with actuators = 16; docs/hardware.md)',
        )
    for name in cfg.cameras:
        if not _CAMERA_NAME.match(name):
            raise ConfigError(
                f"cameras.{name}",
                "a camera name starts with a letter and has letters, digits, _ or - (<= 32)",
            )
    for entry in cfg.devices():
        try:
            lookup(entry.family, entry.driver, device=entry.key).parse(entry.key, entry.settings)
        except DriverConfigError as exc:
            raise refused(exc) from None


def build_context(cfg: CellConfig, entry: DeviceEntry, shared: dict[str, Any]) -> BuildContext:
    """What a driver of `entry` gets beside its settings (raas_drivers.registry.BuildContext)."""
    return BuildContext(
        device=entry.key,
        base_dir=cfg.base_dir,
        period_ns=cfg.loop.period_ns,
        shared=shared,
        sections=cfg.model_dump(exclude={"hand", "trigger", "mocap", "cameras"}),
        devices={e.key: e.driver for e in cfg.devices()},
    )


def refused(exc: DriverConfigError) -> ConfigError:
    """A driver's refusal as a ConfigError naming the same field."""
    return ConfigError(exc.device, str(exc).removeprefix(f"{exc.device}: "))


def hand_shape(cfg: CellConfig) -> HandShape:
    """The hand's shape from the cell file alone (nothing started): its registration's
    `hand_shape`, else the unconfigured driver's attributes. Raises ConfigError."""
    entry = cfg.devices()[0]
    try:
        spec = lookup("hand", entry.driver, device="hand")
        settings = spec.parse("hand", entry.settings)
        ctx = build_context(cfg, entry, {})
        if spec.hand_shape is not None:
            return spec.hand_shape(settings, ctx)
        dev = spec.build(settings, ctx)
    except DriverConfigError as exc:
        raise refused(exc) from None
    try:
        if not isinstance(dev, HandDriver):
            raise ConfigError("hand.driver", f"driver {entry.driver!r} did not build a hand")
        return HandShape.of(dev)
    finally:
        dev.shutdown()


def sim_cell_data() -> dict[str, Any]:
    """The shipped simulated cell file (SIM_CELL) as a dict, to merge overrides onto."""
    return load_config_file(SIM_CELL)


def sim_cell_config(overrides: dict[str, Any]) -> CellConfig:
    """The simulated cell with `overrides` laid over it (what `--sim` gives a command, for code
    and tests that build a cell without the command line). Raises ConfigError."""
    return build_cell_config(merge(sim_cell_data(), overrides)).with_base_dir(SIM_CELL.parent)


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML cell file."""
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


def keep_cameras(data: dict[str, Any], n: int) -> dict[str, Any]:
    """`--cameras N`: the first N [cameras.*] sections of the cell (file order); the simulated
    rig renders N cameras."""
    out = dict(data)
    cams = out.get("cameras", {})
    if isinstance(cams, dict):
        out["cameras"] = dict(list(cams.items())[: max(0, n)])
    out["rig"] = {**out.get("rig", {}), "cameras": n}
    return out


def cell_data(
    config_file: Path | None, *, sim: bool, what: str = "raasd"
) -> tuple[dict[str, Any], Path]:
    """The cell file's data and folder: `--config FILE`, `--sim` (SIM_CELL), or both (FILE laid
    over the simulated cell, e.g. for its [transport] or [safety]). Neither: ConfigError."""
    if not sim and config_file is None:
        raise ConfigError(
            "--config",
            f"{what} needs a cell: pass --config CELL.toml (the cell file, docs/hardware.md) "
            "or --sim (the simulated cell)",
        )
    data = sim_cell_data() if sim else {}
    base_dir = SIM_CELL.parent
    if config_file is not None:
        data = merge(data, load_config_file(config_file))
        base_dir = config_file.resolve().parent
    return data, base_dir


def assemble_cell_config(
    config_file: Path | None,
    defaults: dict[str, Any],
    overrides: dict[str, Any],
    *,
    sim: bool = False,
    cameras: int | None = None,
    what: str = "raasd",
) -> CellConfig:
    """The order every command uses: defaults < the cell file (--sim / --config) < command-line
    flags (`cameras`: --cameras N). The rig's trigger rate follows the loop's unless something
    sets it. Raises ConfigError."""
    base, base_dir = cell_data(config_file, sim=sim, what=what)
    data = merge(merge(defaults, base), overrides)
    if cameras is not None:
        data = keep_cameras(data, cameras)
    rate = data.get("loop", {}).get("rate_hz")
    if rate is not None:
        data.setdefault("rig", {}).setdefault("rate_hz", rate)
    return build_cell_config(data).with_base_dir(base_dir)
