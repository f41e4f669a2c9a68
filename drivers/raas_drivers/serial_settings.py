"""Settings of a board behind the serial firmware bridge (hand board, trigger board), and the
probe `raasd devices` runs on one: open the port, HELLO, read what the board says it is."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from raas_firmware_bridge.errors import FirmwareBridgeError
from raas_firmware_bridge.link import DEFAULT_BAUD, DEFAULT_MAX_BAD_FRAMES, SerialLink

from raas_drivers.registry import BuildContext, ProbeReport
from raas_drivers.serial_device import DEFAULT_REQUEST_TIMEOUT_S


class SerialBoardSettings(BaseModel):
    """[hand] / [trigger] with driver = "serial"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: str = Field(
        min_length=1,
        description="the board's serial port, e.g. /dev/serial/by-id/usb-raas_hand_1234-if00 "
        "(a pyserial URL works too)",
    )
    baud: int = Field(default=DEFAULT_BAUD, gt=0, description="baud rate (1000000)")
    max_bad_frames: int = Field(
        default=DEFAULT_MAX_BAD_FRAMES, ge=1, description="bad frames in a row before the link dies"
    )
    request_timeout_ms: float = Field(
        default=DEFAULT_REQUEST_TIMEOUT_S * 1000,
        gt=0,
        description="how long a request (HELLO, RESET) waits for its answer",
    )

    def link_args(self) -> dict[str, float | int]:
        return {
            "baudrate": self.baud,
            "max_bad_frames": self.max_bad_frames,
            "request_timeout_s": self.request_timeout_ms / 1000,
        }


def probe_board(
    settings: SerialBoardSettings, ctx: BuildContext, driver: str, board_kind: int, what: str
) -> ProbeReport:
    """Connect (HELLO, RESET), read the board's HELLO_ACK, close. Nothing moves: RESET only
    clears the board's state, and a hand board holds still until it gets targets."""
    report = ProbeReport(device=ctx.device, driver=driver, found=False)
    report.details["port"] = settings.port
    if "://" not in settings.port and not Path(settings.port).exists():
        report.problems.append(
            f"no such port {settings.port}: is the {what} plugged in and powered? "
            "(ls /dev/serial/by-id/)"
        )
        return report
    link = SerialLink(
        settings.port,
        name=ctx.device,
        baudrate=settings.baud,
        max_bad_frames=settings.max_bad_frames,
        request_timeout_s=settings.request_timeout_ms / 1000,
    )
    try:
        ack = link.connect(board_kind)
    except PermissionError as exc:
        report.problems.append(
            f"{settings.port}: permission denied ({exc}); add yourself to "
            "the dialout group or install the udev rule (docs/hardware.md)"
        )
        return report
    except (FirmwareBridgeError, OSError) as exc:
        report.problems.append(f"{settings.port} did not answer as a {what}: {exc}")
        return report
    finally:
        link.close()
    report.found = True
    report.model = f"{what} (firmware bridge protocol v{ack.version})"
    report.firmware = f"{ack.fw_major}.{ack.fw_minor}.{ack.fw_patch}"
    report.serial_number = str(ack.serial_number)
    report.details.update(
        {
            "watchdog_ms": ack.watchdog_ms,
            "servo_hz": ack.servo_hz,
            "actuators": ack.actuator_count,
            "joints": ack.joint_count,
        }
    )
    return report
