"""The cell file's `[hand]` section for driver "dynamixel": registered, checked, built."""

from __future__ import annotations

from pathlib import Path

import pytest
from raas_drivers.dynamixel.driver import DynamixelHandDriver
from raas_drivers.errors import DriverConfigError
from raas_drivers.lifecycle import LifecycleState
from raas_drivers.registry import BuildContext, drivers, lookup

from tests.drivers.dxl_support import LEAP_TOML


def test_registered_as_a_hand_driver() -> None:
    assert "dynamixel" in [d.name for d in drivers("hand")]
    spec = lookup("hand", "dynamixel")
    assert spec.probe is not None
    assert "dynamixel-sdk" in spec.summary


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ({"calibration": "c.toml"}, "hand.port", "Field required"),
        ({"port": "/dev/x", "calibration": "c.toml", "baud": 1}, "hand.baud", "Extra"),
        ({"port": "/dev/x", "calibration": "c.toml", "baudrate": 1234}, "hand.baudrate", "1234"),
        ({"port": "/dev/x", "calibration": "c.toml", "return_delay_us": 3}, "hand.return", "2 us"),
        (
            {"port": "/dev/x", "calibration": "c.toml", "operating_mode": "pwm"},
            "hand.operating_mode",
            "current_based_position",
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_field(
    raw: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(DriverConfigError) as err:
        lookup("hand", "dynamixel").parse("hand", raw)
    assert err.value.device.startswith(field)
    assert words in str(err.value)


def test_build_reads_the_calibration_beside_the_cell_file() -> None:
    spec = lookup("hand", "dynamixel")
    settings = spec.parse("hand", {"port": "/dev/null", "calibration": LEAP_TOML.name})
    ctx = BuildContext(device="hand", base_dir=LEAP_TOML.parent, period_ns=80_000_000)
    hand = spec.build(settings, ctx)
    assert isinstance(hand, DynamixelHandDriver)
    assert hand.state is LifecycleState.UNCONFIGURED
    assert len(hand.actuator_names) == 16
    assert hand.model == "leap-hand"


def test_build_refuses_a_missing_calibration(tmp_path: Path) -> None:
    spec = lookup("hand", "dynamixel")
    settings = spec.parse("hand", {"port": "/dev/null", "calibration": "nope.toml"})
    ctx = BuildContext(device="hand", base_dir=tmp_path, period_ns=80_000_000)
    with pytest.raises(DriverConfigError, match=r"hand.calibration: no calibration file"):
        spec.build(settings, ctx)
