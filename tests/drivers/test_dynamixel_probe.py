"""`raasd devices` for a Dynamixel hand: the registered probe on the emulated bus."""

from __future__ import annotations

from pathlib import Path

from raas_drivers.dynamixel.emulator import DynamixelEmulator
from raas_drivers.registry import BuildContext, ProbeReport, lookup

from tests.drivers.dxl_support import LEAP_TOML, emu

__all__ = ["emu"]


def _probe(port: str) -> ProbeReport:
    spec = lookup("hand", "dynamixel")
    assert spec.probe is not None
    settings = spec.parse("hand", {"port": port, "calibration": LEAP_TOML.name})
    ctx = BuildContext(device="hand", base_dir=LEAP_TOML.parent, period_ns=80_000_000)
    return spec.probe(settings, ctx)


def test_probe_reports_every_servo(emu: DynamixelEmulator) -> None:
    emu.command("temp 4 44")
    report = _probe(emu.port)
    assert report.found and report.ok, report.problems
    assert report.driver == "dynamixel"
    assert report.model == "16 x XC330-M288"
    assert report.firmware == "52"
    assert len(report.temperatures_c) == 16
    assert report.temperatures_c["middle_mcp_side"] == 44
    assert report.details["servos_answering"] == "16/16"
    # factory Return Delay Time (500 us) differs from the settings' 0: listed per servo
    assert report.details["return_delay_us"][0] == 500


def test_probe_says_what_is_wrong(emu: DynamixelEmulator) -> None:
    emu.command("silent 11")
    emu.command("hwerror 3 16")
    emu.command("temp 6 68")
    report = _probe(emu.port)
    assert report.found and not report.ok
    words = "\n".join(report.problems)
    assert "servo 11 (ring_dip) does not answer a ping" in words
    assert "servo 3 (index_dip) has a hardware error: electrical shock" in words
    assert "servo 6 (middle_pip) is at 68 degC, near its limit of 70" in words
    assert report.details["servos_answering"] == "15/16"


def test_probe_of_a_missing_port(tmp_path: Path) -> None:
    report = _probe(str(tmp_path / "ttyUSB9"))
    assert not report.found
    assert "no such port (is the U2D2 plugged in?" in report.problems[0]


def test_probe_of_a_bus_where_nobody_answers() -> None:
    with DynamixelEmulator([200]) as other:  # a bus with no servo of the calibration on it
        report = _probe(other.port)
    assert not report.found
    assert any("no servo answers at 1000000 baud" in p for p in report.problems)
