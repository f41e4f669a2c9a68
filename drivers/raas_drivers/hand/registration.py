"""Driver "serial" for the hand: a Shadow-type hand behind its board on the firmware bridge.

[hand]
driver = "serial"
port = "/dev/serial/by-id/usb-raas_hand_board_0001-if00"
baud = 1000000
"""

from __future__ import annotations

from raas_firmware_bridge.messages import BoardKind

from raas_drivers.hand.serial_driver import SerialHandDriver
from raas_drivers.hand.shape import HandShape
from raas_drivers.lifecycle import Device
from raas_drivers.registry import BuildContext, DriverSpec, ProbeReport, register
from raas_drivers.serial_settings import SerialBoardSettings, probe_board


def _build(settings: SerialBoardSettings, ctx: BuildContext) -> Device:
    return SerialHandDriver(ctx.device, settings.port, **settings.link_args())  # type: ignore[arg-type]


def _probe(settings: SerialBoardSettings, ctx: BuildContext) -> ProbeReport:
    return probe_board(settings, ctx, "serial", int(BoardKind.HAND), "hand board")


def _shape(settings: SerialBoardSettings, ctx: BuildContext) -> HandShape:
    return HandShape.shadow()


register(
    DriverSpec(
        family="hand",
        name="serial",
        settings=SerialBoardSettings,
        build=_build,
        summary="a Shadow-type hand (20 actuators) behind its board on the serial firmware bridge",
        probe=_probe,
        hand_shape=_shape,
    )
)
