"""The built-in registrations: every family has its drivers, settings checked without hardware."""

from __future__ import annotations

from pathlib import Path

import pytest
from raas_drivers.errors import DriverConfigError, UnknownDriverError
from raas_drivers.registry import BuildContext, drivers, lookup


def test_builtin_drivers_are_registered() -> None:
    names = {(s.family, s.name) for s in drivers()}
    assert {
        ("hand", "sim"),
        ("hand", "serial"),
        ("hand", "mirror"),
        ("trigger", "sim"),
        ("trigger", "serial"),
        ("trigger", "none"),
        ("mocap", "sim"),
        ("cameras", "sim"),
    } <= names
    assert all(s.summary for s in drivers())


def test_unknown_driver_lists_the_known_ones() -> None:
    with pytest.raises(UnknownDriverError) as info:
        lookup("hand", "nope", device="hand")
    assert info.value.device == "hand.driver"
    assert "mirror" in str(info.value) and "serial" in str(info.value)


def test_sim_camera_must_be_one_the_rig_has(tmp_path: Path) -> None:
    spec = lookup("cameras", "sim")
    settings = spec.parse("cameras.front", {})
    ctx = BuildContext(device="cameras.front", base_dir=tmp_path, period_ns=80_000_000)
    with pytest.raises(DriverConfigError, match="left, right, top"):
        spec.build(settings, ctx)  # refused before any rig starts
    assert ctx.shared == {}
    assert spec.probe is not None
    report = spec.probe(settings, ctx)
    assert not report.ok and "left, right, top" in report.problems[0]


def test_serial_probe_of_a_missing_port_says_what_is_wrong(tmp_path: Path) -> None:
    spec = lookup("hand", "serial")
    settings = spec.parse("hand", {"port": str(tmp_path / "ttyUSB9")})
    assert spec.probe is not None
    report = spec.probe(settings, BuildContext("hand", tmp_path, 80_000_000))
    assert not report.found
    assert "no such port" in report.problems[0] and "plugged in" in report.problems[0]
