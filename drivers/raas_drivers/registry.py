"""Drivers register here under (family, name); a cell file names them.

A cell file has one section per device (`[hand]`, `[trigger]`, `[mocap]`, `[cameras.left]`, ...)
whose `driver = "..."` picks a registration of that device's family and whose other keys are that
driver's settings. A registration carries:

- `settings`: a pydantic model of the driver's settings (extra fields forbidden, so a typo names
  itself), kept in the driver's folder beside the driver (lerobot's layout);
- `build(settings, ctx)`: the configured-but-unconfigured Device (lifecycle UNCONFIGURED);
- `probe(settings, ctx)`: optional; looks for the device without driving it, for `raasd devices`;
- `hand_shape(settings, ctx)`: hand family, optional; the hand's shape from its settings alone
  (no device opened, nothing started). Without it the composition builds the driver and reads
  the shape attributes of the unconfigured instance, so a hand driver's constructor must set
  them from settings/calibration without touching the hardware.

Vendor libraries (dynamixel-sdk, pypylon, ...) are imported inside build/probe, never at
registration, so every driver can be listed and its settings checked on a machine without them.

Built-in drivers are the modules in `BUILTIN_MODULES`; a lab's own driver package registers
through the `raas.drivers` entry-point group (the entry point names a module to import).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from raas_drivers.errors import DriverConfigError, UnknownDriverError
from raas_drivers.hand.shape import HandShape
from raas_drivers.lifecycle import Device

#: The device families a cell file may name, each with one contract.
FAMILIES: tuple[str, ...] = ("hand", "trigger", "mocap", "cameras")

#: Modules whose import registers the built-in drivers.
BUILTIN_MODULES: tuple[str, ...] = (
    "raas_drivers.sim.registration",
    "raas_drivers.hand.registration",
    "raas_drivers.trigger.registration",
    "raas_drivers.mirror.registration",
    "raas_drivers.dynamixel",
    "raas_drivers.pylon",
    "raas_drivers.uvc",
    "raas_drivers.natnet",
)

ENTRY_POINT_GROUP = "raas.drivers"

S = TypeVar("S", bound=BaseModel)


@dataclass(slots=True)
class BuildContext:
    """What a driver may need beyond its own settings.

    device:    the cell file's key of this device: "hand", "mocap", "cameras.left"
    base_dir:  the cell file's folder; relative paths in settings (calibration files) resolve here
    period_ns: the control loop's period
    shared:    per-cell resources that several devices share, keyed by the driver that made them
               (e.g. "sim": the started simulated rig); one dict for the whole cell, so the
               first device that needs a resource makes it and the others find it. After every
               device is shut down the composition closes (in reverse order of insertion) each
               value that has a close()
    sections:  the cell file's other top-level sections as plain data (e.g. "rig", "loop"),
               for a driver family that has a cell-wide section of its own
    devices:   every device of the cell file -> its driver name ("hand" -> "mirror",
               "cameras.left" -> "sim"), so a shared resource can size itself for all of them
    """

    device: str
    base_dir: Path
    period_ns: int
    shared: dict[str, Any] = field(default_factory=dict)
    sections: Mapping[str, Any] = field(default_factory=dict)
    devices: Mapping[str, str] = field(default_factory=dict)

    def path(self, p: str | Path) -> Path:
        """A settings path resolved against the cell file's folder."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else self.base_dir / q


@dataclass(slots=True)
class ProbeReport:
    """What `raasd devices` says of one device: found or not, what it is, what is wrong in words."""

    device: str
    driver: str
    found: bool
    model: str | None = None
    firmware: str | None = None
    serial_number: str | None = None
    temperatures_c: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.found and not self.problems


@dataclass(frozen=True, slots=True)
class DriverSpec(Generic[S]):
    family: str
    name: str
    settings: type[S]
    build: Callable[[S, BuildContext], Device]
    summary: str
    probe: Callable[[S, BuildContext], ProbeReport] | None = None
    hand_shape: Callable[[S, BuildContext], HandShape] | None = None

    def parse(self, device: str, raw: Mapping[str, Any]) -> S:
        """Validate this driver's settings; errors name the field as `<device>.<field>`."""
        try:
            return self.settings.model_validate(dict(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            field_name = f"{device}.{where}" if where else device
            raise DriverConfigError(field_name, f"{first['msg']} (driver {self.name!r})") from exc


_REGISTRY: dict[tuple[str, str], DriverSpec[Any]] = {}
_loaded: set[str] = set()


def register(spec: DriverSpec[S]) -> DriverSpec[S]:
    """Register a driver; a second registration under the same (family, name) is refused."""
    if spec.family not in FAMILIES:
        raise ValueError(f"driver {spec.name!r}: unknown family {spec.family!r}")
    key = (spec.family, spec.name)
    old = _REGISTRY.get(key)
    if old is not None and old is not spec:
        raise ValueError(f"driver {spec.family}/{spec.name} is registered twice")
    _REGISTRY[key] = spec
    return spec


def load_drivers() -> None:
    """Import the built-in driver modules and the `raas.drivers` entry points (once)."""
    modules = [*BUILTIN_MODULES, *(ep.value for ep in entry_points(group=ENTRY_POINT_GROUP))]
    for mod in modules:
        if mod not in _loaded:
            importlib.import_module(mod)
            _loaded.add(mod)


def lookup(family: str, name: str, *, device: str | None = None) -> DriverSpec[Any]:
    """The registration of `name` in `family`; UnknownDriverError lists the known names."""
    load_drivers()
    spec = _REGISTRY.get((family, name))
    if spec is None:
        known = ", ".join(sorted(n for f, n in _REGISTRY if f == family)) or "none"
        raise UnknownDriverError(
            f"{device or family}.driver",
            f"unknown {family} driver {name!r} (known: {known})",
        )
    return spec


def drivers(family: str | None = None) -> list[DriverSpec[Any]]:
    """Every registration, or those of one family, sorted by family then name."""
    load_drivers()
    return [_REGISTRY[k] for k in sorted(_REGISTRY) if family is None or k[0] == family]
