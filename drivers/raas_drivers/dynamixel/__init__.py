"""Dynamixel Protocol 2.0 hands (e.g. the LEAP hand: 16 XC330 servos on one U2D2).

Registers the hand driver "dynamixel". dynamixel-sdk is imported only when a hand is built or
probed, so the driver can be listed and its settings checked on a machine without it.
"""

from __future__ import annotations

from raas_drivers.dynamixel.config import DynamixelHandSettings
from raas_drivers.lifecycle import Device
from raas_drivers.registry import BuildContext, DriverSpec, ProbeReport, register


def build(settings: DynamixelHandSettings, ctx: BuildContext) -> Device:
    from raas_drivers.dynamixel.calibration import load_calibration  # noqa: PLC0415 (vendor import on use)
    from raas_drivers.dynamixel.driver import DynamixelHandDriver  # noqa: PLC0415 (vendor import on use)

    calibration = load_calibration(ctx.path(settings.calibration), device=ctx.device)
    return DynamixelHandDriver(ctx.device, settings, calibration)


def probe(settings: DynamixelHandSettings, ctx: BuildContext) -> ProbeReport:
    from raas_drivers.dynamixel.calibration import load_calibration  # noqa: PLC0415 (vendor import on use)
    from raas_drivers.dynamixel.probe import probe as probe_bus  # noqa: PLC0415 (vendor import on use)

    calibration = load_calibration(ctx.path(settings.calibration), device=ctx.device)
    return probe_bus(ctx.device, settings, calibration)


SPEC = register(
    DriverSpec(
        family="hand",
        name="dynamixel",
        settings=DynamixelHandSettings,
        build=build,
        probe=probe,
        summary="Dynamixel Protocol 2.0 hand on one serial bus (U2D2), e.g. the LEAP hand; "
        "dynamixel-sdk",
    )
)

__all__ = ["SPEC", "DynamixelHandSettings"]
