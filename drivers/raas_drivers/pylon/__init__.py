"""Basler cameras on pypylon ("pylon") and their software trigger ("pylon-software").

pypylon is imported inside build/probe only, so the drivers are listed and their settings checked
on a machine without it.
"""

from __future__ import annotations

from typing import Any

from raas_drivers.pylon.config import PylonCameraSettings, PylonSoftwareTriggerSettings
from raas_drivers.registry import BuildContext, DriverSpec, ProbeReport, register

HUB_KEY = "pylon"


def _hub(ctx: BuildContext) -> Any:
    from raas_drivers.pylon.driver import PylonHub  # noqa: PLC0415

    hub = ctx.shared.get(HUB_KEY)
    if hub is None:
        hub = ctx.shared[HUB_KEY] = PylonHub()
    return hub


def _build_camera(settings: PylonCameraSettings, ctx: BuildContext) -> Any:
    from raas_drivers.pylon.driver import PylonCamera  # noqa: PLC0415

    return PylonCamera(ctx.device, settings, period_ns=ctx.period_ns, hub=_hub(ctx))


def _build_trigger(settings: PylonSoftwareTriggerSettings, ctx: BuildContext) -> Any:
    from raas_drivers.pylon.driver import PylonSoftwareTrigger  # noqa: PLC0415

    return PylonSoftwareTrigger(ctx.device, settings, _hub(ctx))


def _probe_camera(settings: PylonCameraSettings, ctx: BuildContext) -> ProbeReport:
    from raas_drivers.pylon.probe import probe_camera  # noqa: PLC0415

    return probe_camera(settings, ctx.device)


def _probe_trigger(settings: PylonSoftwareTriggerSettings, ctx: BuildContext) -> ProbeReport:
    from raas_drivers.pylon.probe import probe_software_trigger  # noqa: PLC0415

    return probe_software_trigger(ctx.device)


register(
    DriverSpec(
        family="cameras",
        name="pylon",
        settings=PylonCameraSettings,
        build=_build_camera,
        probe=_probe_camera,
        summary="Basler camera on pypylon, triggered on Line1 (or by software), camera timestamps",
    )
)
register(
    DriverSpec(
        family="trigger",
        name="pylon-software",
        settings=PylonSoftwareTriggerSettings,
        build=_build_trigger,
        probe=_probe_trigger,
        summary="software trigger of the cell's pylon cameras (emulated cameras, bench set-ups)",
    )
)
