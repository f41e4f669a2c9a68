"""Trigger drivers: "serial" (the trigger board on the firmware bridge) and "none" (no board:
the host time of each cycle; the cell's default when the cell file has no [trigger]).

    [trigger]
    driver = "serial"
    port = "/dev/serial/by-id/usb-raas_trigger_board_0002-if00"
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from raas_firmware_bridge.messages import BoardKind

from raas_drivers.lifecycle import Device
from raas_drivers.registry import BuildContext, DriverSpec, ProbeReport, register
from raas_drivers.serial_settings import SerialBoardSettings, probe_board
from raas_drivers.trigger.host import HostTrigger
from raas_drivers.trigger.serial_driver import SerialTriggerDriver


def _build_serial(settings: SerialBoardSettings, ctx: BuildContext) -> Device:
    return SerialTriggerDriver(ctx.device, settings.port, **settings.link_args())  # type: ignore[arg-type]


def _probe_serial(settings: SerialBoardSettings, ctx: BuildContext) -> ProbeReport:
    return probe_board(settings, ctx, "serial", int(BoardKind.TRIGGER), "trigger board")


class NoTriggerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _build_none(settings: NoTriggerSettings, ctx: BuildContext) -> Device:
    return HostTrigger(ctx.device)


def _probe_none(settings: NoTriggerSettings, ctx: BuildContext) -> ProbeReport:
    return ProbeReport(
        device=ctx.device,
        driver="none",
        found=True,
        model="no trigger board: cycles are stamped with the host clock",
    )


register(
    DriverSpec(
        family="trigger",
        name="serial",
        settings=SerialBoardSettings,
        build=_build_serial,
        summary="the trigger board on the serial firmware bridge (pulses cameras and mocap)",
        probe=_probe_serial,
    )
)
register(
    DriverSpec(
        family="trigger",
        name="none",
        settings=NoTriggerSettings,
        build=_build_none,
        summary="no trigger board: records the host time of each cycle (free-running sensors)",
        probe=_probe_none,
    )
)
