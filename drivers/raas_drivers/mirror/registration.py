"""Driver "mirror" for the hand: a hand of any shape with no hardware (see config.py)."""

from __future__ import annotations

from raas_drivers.errors import DriverConfigError
from raas_drivers.hand.shape import HandShape
from raas_drivers.lifecycle import Device
from raas_drivers.mirror.config import MirrorHandSettings, load_shape
from raas_drivers.mirror.driver import MirrorHand
from raas_drivers.registry import BuildContext, DriverSpec, ProbeReport, register


def _shape(settings: MirrorHandSettings, ctx: BuildContext) -> HandShape:
    return load_shape(settings, ctx.device, ctx.base_dir)


def _build(settings: MirrorHandSettings, ctx: BuildContext) -> Device:
    return MirrorHand(
        ctx.device,
        _shape(settings, ctx),
        period_ns=ctx.period_ns,
        lag_s=settings.lag_s,
        temperature_c=settings.temperature_c,
    )


def _probe(settings: MirrorHandSettings, ctx: BuildContext) -> ProbeReport:
    report = ProbeReport(device=ctx.device, driver="mirror", found=True)
    try:
        shape = _shape(settings, ctx)
    except DriverConfigError as exc:  # a bad calibration file is what is wrong here
        report.problems.append(str(exc))
        return report
    report.model = f"{shape.model} (mirror hand, no hardware)"
    report.details = {"actuators": shape.n_actuators, "lag_s": settings.lag_s}
    report.temperatures_c = {"motors": settings.temperature_c}
    return report


register(
    DriverSpec(
        family="hand",
        name="mirror",
        settings=MirrorHandSettings,
        build=_build,
        summary="a hand of any shape with no hardware: targets become positions after a lag",
        probe=_probe,
        hand_shape=_shape,
    )
)
