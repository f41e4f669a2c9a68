"""Driver "sim" for every family: the devices of the simulated rig (MuJoCo Shadow hand).

    [hand]          driver = "sim"
    [trigger]       driver = "sim"
    [mocap]         driver = "sim"
    [cameras.left]  driver = "sim"      # left, right or top

The devices have no settings of their own: the cell file's `[rig]` section configures the one
rig they share. The first sim device built starts the rig (its processes) and leaves it in
`ctx.shared["sim"]`; the others find it there; the composition closes it after shutting every
device down. The rig renders the cameras that sim camera sections name (the first n of left,
right, top, n the furthest named). The hand and the trigger board are reached through the real
serial drivers on the rig's ptys, the mocap and cameras through their IPC drivers (sim/drivers.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from raas_drivers.cameras.driver import CAMERA_NAMES
from raas_drivers.errors import DriverConfigError
from raas_drivers.hand.shape import HandShape
from raas_drivers.lifecycle import Device
from raas_drivers.registry import BuildContext, DriverSpec, ProbeReport, register
from raas_drivers.sim.config import RigConfig
from raas_drivers.sim.drivers import SimCameraDriver
from raas_drivers.sim.launcher import SimRig

SHARED_KEY = "sim"


class SimSettings(BaseModel):
    """A simulated device has no settings of its own ([rig] configures the rig)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def rig_config(ctx: BuildContext) -> RigConfig:
    """The cell's [rig] section, with the cameras the cell's sim camera sections name."""
    cfg = RigConfig.model_validate(dict(ctx.sections.get("rig", {})))
    named = [
        key.split(".", 1)[1]
        for key, driver in ctx.devices.items()
        if key.startswith("cameras.") and driver == "sim"
    ]
    n = max((CAMERA_NAMES.index(c) + 1 for c in named if c in CAMERA_NAMES), default=0)
    return cfg.model_copy(update={"cameras": min(n, cfg.cameras)})


def shared_rig(ctx: BuildContext) -> SimRig:
    """The cell's started rig (started by the first sim device that asks)."""
    rig = ctx.shared.get(SHARED_KEY)
    if rig is None:
        rig = SimRig(rig_config(ctx)).start()
        ctx.shared[SHARED_KEY] = rig
    assert isinstance(rig, SimRig)
    return rig


def _hand(settings: SimSettings, ctx: BuildContext) -> Device:
    return shared_rig(ctx).devices().hand


def _trigger(settings: SimSettings, ctx: BuildContext) -> Device:
    return shared_rig(ctx).devices().trigger


def _mocap(settings: SimSettings, ctx: BuildContext) -> Device:
    return shared_rig(ctx).devices().mocap


def _camera_name(ctx: BuildContext) -> str:
    camera = ctx.device.split(".", 1)[1] if "." in ctx.device else ctx.device
    if camera not in CAMERA_NAMES:
        raise DriverConfigError(
            ctx.device,
            f"the simulated rig has cameras {', '.join(CAMERA_NAMES)}, not {camera!r} "
            "(name the section [cameras.left], [cameras.right] or [cameras.top])",
        )
    return camera


def _camera(settings: SimSettings, ctx: BuildContext) -> Device:
    camera = _camera_name(ctx)
    rig = shared_rig(ctx)
    rendered = CAMERA_NAMES[: rig.config.cameras]
    if camera not in rendered:
        raise DriverConfigError(
            ctx.device,
            f"the simulated rig renders only {', '.join(rendered) or 'no camera'} "
            f"(rig.cameras = {rig.config.cameras})",
        )
    return SimCameraDriver(
        ctx.device,
        str(Path(rig.sock_dir) / "render.sock"),
        rig.sock_dir,
        (camera,),
        source_prefix="cameras",
        lockstep_period_ns=rig.config.period_ns if rig.config.clock == "lockstep" else None,
    )


def _probe(what: str) -> Callable[[SimSettings, BuildContext], ProbeReport]:
    def probe(settings: SimSettings, ctx: BuildContext) -> ProbeReport:
        report = ProbeReport(
            device=ctx.device,
            driver="sim",
            found=True,
            model=f"simulated {what} (MuJoCo rig)",
            details={"simulated": True},
        )
        if ctx.device.startswith("cameras."):
            try:
                _camera_name(ctx)
            except DriverConfigError as exc:
                report.problems.append(str(exc))
        if importlib.util.find_spec("mujoco") is None:
            report.problems.append("the mujoco package is not installed: the rig cannot start")
        return report

    return probe


def _shadow(settings: SimSettings, ctx: BuildContext) -> HandShape:
    return HandShape.shadow()


register(
    DriverSpec(
        family="hand",
        name="sim",
        settings=SimSettings,
        build=_hand,
        summary="the simulated rig's Shadow hand (20 actuators, 24 joints) over its serial pty",
        probe=_probe("Shadow hand"),
        hand_shape=_shadow,
    )
)
register(
    DriverSpec(
        family="trigger",
        name="sim",
        settings=SimSettings,
        build=_trigger,
        summary="the simulated rig's trigger board over its serial pty",
        probe=_probe("trigger board"),
    )
)
register(
    DriverSpec(
        family="mocap",
        name="sim",
        settings=SimSettings,
        build=_mocap,
        summary="the simulated rig's motion capture (UDP on loopback, 5 fingertips + 8 block LEDs)",
        probe=_probe("motion capture"),
    )
)
register(
    DriverSpec(
        family="cameras",
        name="sim",
        settings=SimSettings,
        build=_camera,
        summary="a camera of the simulated rig (left, right or top; MuJoCo offscreen rendering)",
        probe=_probe("camera"),
    )
)
