"""The calibration file maps servo ids, zeros and directions to named joints in rad."""

from __future__ import annotations

import math
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from raas_drivers.dynamixel import control_table as ct
from raas_drivers.dynamixel.calibration import load_calibration
from raas_drivers.dynamixel.emulator import DynamixelEmulator
from raas_drivers.dynamixel.errors import CalibrationError

from tests.drivers.dxl_support import LEAP_TOML, make_hand, read_state

UNIT = 2 * math.pi / 4096


def test_the_shipped_leap_calibration() -> None:
    cal = load_calibration(LEAP_TOML)
    assert cal.model == "leap-hand"
    assert cal.ids == tuple(range(16))
    assert cal.joints[:4] == ("index_mcp_side", "index_mcp_fwd", "index_pip", "index_dip")
    assert cal.joints[12:] == ("thumb_cmc", "thumb_axl", "thumb_mcp", "thumb_ip")
    assert cal.servos[0].position_p_gain == 450  # its own value beats [defaults]
    assert cal.servos[1].position_p_gain == 600  # from [defaults]
    assert (cal.current_limits_ma == 550).all()
    np.testing.assert_allclose(cal.limits[13], [-0.47, 2.443])
    np.testing.assert_array_equal(cal.idle, np.zeros(16))  # 0 lies inside every LEAP range


def _write(tmp_path: Path, servos: str, defaults: str = "") -> Path:
    p = tmp_path / "cal.toml"
    p.write_text(f'model = "two-servo"\n[defaults]\ncurrent_limit_ma = 300\n{defaults}\n{servos}')
    return p


TWO = """
[[servo]]
id = 1
joint = "a"
zero = 1000
direction = -1
min_rad = -1.0
max_rad = 1.0

[[servo]]
id = 2
joint = "b"
zero = 3000
min_rad = -0.5
max_rad = 0.5
idle_rad = 0.25
"""


def test_offset_and_direction_reach_the_servos(tmp_path: Path) -> None:
    cal = load_calibration(_write(tmp_path, TWO))
    with DynamixelEmulator([1, 2]) as emu:
        hand = make_hand(emu, cal)
        hand.configure()
        hand.activate()
        try:
            applied = hand.apply(np.array([0.5, 0.25]), 0)
            assert read_state(hand, 0) is not None  # a round trip: the emulator took the goals
            goal1 = struct.unpack_from("<i", emu.servos[1].table, ct.GOAL_POSITION)[0]
            goal2 = struct.unpack_from("<i", emu.servos[2].table, ct.GOAL_POSITION)[0]
            assert goal1 == round(1000 - 0.5 / UNIT)  # direction -1 around zero 1000
            assert goal2 == round(3000 + 0.25 / UNIT)
            np.testing.assert_allclose(applied, [0.5, 0.25], atol=UNIT / 2)
            np.testing.assert_allclose(hand.idle_action, [0.0, 0.25], atol=UNIT / 2)
            # the servos get there; the state reads back the same joint angles
            state = None
            for k in range(1, 200):
                state = read_state(hand, k)
                assert state is not None, (k, hand.stats())
                if np.allclose(state.positions, applied, atol=2 * UNIT):
                    break
                time.sleep(0.01)
            assert state is not None
            np.testing.assert_allclose(state.positions, applied, atol=2 * UNIT)
            # the servos' own position limits are the calibration's, in raw counts
            t1 = emu.servos[1].table
            assert struct.unpack_from("<I", t1, ct.MIN_POSITION_LIMIT)[0] == round(1000 - 1 / UNIT)
            assert struct.unpack_from("<I", t1, ct.MAX_POSITION_LIMIT)[0] == round(1000 + 1 / UNIT)
        finally:
            hand.shutdown()


@pytest.mark.parametrize(
    ("servos", "where", "words"),
    [
        (TWO.replace("id = 2", "id = 1"), "servo[1].id", "repeats id 1 of servo[0]"),
        (TWO.replace('joint = "b"', 'joint = "a"'), "servo[1].joint", "repeats joint 'a'"),
        (TWO.replace("max_rad = 0.5", "max_rad = -0.6"), "servo[1]", "not below max_rad"),
        (TWO.replace("max_rad = 1.0", "max_rad = 3.0"), "servo[0]", "outside one turn"),
        (TWO.replace("direction = -1", "direction = 2"), "servo[0].direction", ""),
        (TWO.replace("idle_rad = 0.25", "idle_rad = 0.9"), "servo[1]", "idle_rad 0.9"),
        (TWO.replace("zero = 1000", "zero = 1000\nspeed = 3"), "servo[0].speed", "Extra"),
    ],
)
def test_bad_calibrations_are_refused_naming_the_field(
    tmp_path: Path, servos: str, where: str, words: str
) -> None:
    path = _write(tmp_path, servos)
    with pytest.raises(CalibrationError) as err:
        load_calibration(path)
    assert f"{path}: {where}" in str(err.value)
    assert words in str(err.value)


def test_missing_or_broken_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="no calibration file"):
        load_calibration(tmp_path / "nope.toml", device="hand")
    bad = tmp_path / "bad.toml"
    bad.write_text("model = \n")
    with pytest.raises(CalibrationError, match="is not TOML"):
        load_calibration(bad)
