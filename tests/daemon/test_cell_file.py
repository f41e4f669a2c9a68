"""The cell file: devices name their drivers; every refusal names its field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from raas.config import (
    SIM_CELL,
    assemble_cell_config,
    build_cell_config,
    hand_shape,
    sim_cell_config,
)
from raas.errors import ConfigError
from tests.daemon.cells import MIRROR16, write_cell


def load(tmp_path: Path, text: str) -> object:
    return assemble_cell_config(write_cell(tmp_path, text), {}, {})


def refusal(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value


def test_devices_in_order_and_a_missing_trigger_is_none(tmp_path: Path) -> None:
    cfg = assemble_cell_config(write_cell(tmp_path, MIRROR16), {}, {})
    assert [(e.key, e.family, e.driver) for e in cfg.devices()] == [
        ("hand", "hand", "mirror"),
        ("trigger", "trigger", "none"),
    ]
    assert cfg.devices()[0].settings == {"model": "leap-like", "actuators": 16, "lag_s": 0.02}
    assert cfg.base_dir == tmp_path.resolve()
    assert not cfg.simulated


def test_the_sim_cell_file_names_every_sim_device() -> None:
    cfg = sim_cell_config({})
    assert [(e.key, e.driver) for e in cfg.devices()] == [
        ("hand", "sim"),
        ("trigger", "sim"),
        ("mocap", "sim"),
        ("cameras.left", "sim"),
        ("cameras.right", "sim"),
        ("cameras.top", "sim"),
    ]
    assert cfg.simulated
    assert SIM_CELL.is_file()


def test_sim_flag_and_cameras_flag(tmp_path: Path) -> None:
    cfg = assemble_cell_config(None, {}, {}, sim=True, cameras=1)
    assert list(cfg.cameras) == ["left"] and cfg.rig.cameras == 1
    # --sim --config FILE: the file is laid over the simulated cell
    over = write_cell(tmp_path, "[rig]\nseed = 7\n[safety.conditioning]\nsoft_margin_rad = 0.02\n")
    cfg = assemble_cell_config(over, {}, {}, sim=True)
    assert cfg.simulated and cfg.rig.seed == 7 and len(cfg.cameras) == 3
    # [rig] cameras = 0 leaves the sim camera sections out
    assert sim_cell_config({"rig": {"cameras": 0}}).cameras == {}


def test_neither_config_nor_sim_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        assemble_cell_config(None, {}, {}, what="raasd run")
    assert "--config CELL.toml" in str(info.value) and "--sim" in str(info.value)


def test_a_cell_without_a_hand_is_refused(tmp_path: Path) -> None:
    err = refusal(tmp_path, '[mocap]\ndriver = "sim"\n')
    assert err.field == "hand"
    assert "no [hand] section" in str(err)
    with pytest.raises(ConfigError) as info:
        build_cell_config({})
    assert info.value.field == "hand"


def test_an_unknown_driver_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    err = refusal(tmp_path, '[hand]\ndriver = "shadow-usb"\n')
    assert err.field == "hand.driver"
    assert "unknown hand driver 'shadow-usb'" in str(err)
    assert "mirror" in str(err) and "sim" in str(err) and "serial" in str(err)
    err = refusal(tmp_path, MIRROR16 + '[cameras.left]\ndriver = "nope"\n')
    assert err.field == "cameras.left.driver"


def test_bad_settings_name_the_field(tmp_path: Path) -> None:
    err = refusal(tmp_path, '[hand]\ndriver = "serial"\nbaud = 115200\n')
    assert err.field == "hand.port"  # required, missing
    err = refusal(tmp_path, '[hand]\ndriver = "serial"\nport = "/dev/x"\nbuad = 5\n')
    assert err.field == "hand.buad"  # a typo names itself
    err = refusal(tmp_path, MIRROR16 + '[trigger]\ndriver = "serial"\nport = "/dev/x"\nbaud = -1\n')
    assert err.field == "trigger.baud"
    err = refusal(tmp_path, MIRROR16 + '[cameras.left]\ndriver = "sim"\nexposure_us = 5\n')
    assert err.field == "cameras.left.exposure_us"
    err = refusal(tmp_path, '[hand]\ndriver = "mirror"\n')
    assert err.field == "hand" and "exactly one of actuators" in str(err)
    err = refusal(tmp_path, '[hand]\ndriver = "mirror"\nactuators = 0\n')
    assert err.field == "hand.actuators"
    err = refusal(tmp_path, MIRROR16 + '[cameras."2nd"]\ndriver = "sim"\n')
    assert err.field == "cameras.2nd"


def test_a_missing_driver_key_is_refused(tmp_path: Path) -> None:
    err = refusal(tmp_path, "[hand]\nactuators = 16\n")
    assert err.field == "hand.driver"


def test_hand_shape_from_settings_and_calibration(tmp_path: Path) -> None:
    cfg = assemble_cell_config(write_cell(tmp_path, MIRROR16), {}, {})
    shape = hand_shape(cfg)
    assert shape.model == "leap-like" and shape.n_actuators == 16 and shape.n_joints == 16
    assert shape.actuator_names[0] == "joint_0"
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "leap.toml").write_text(
        'model = "leap-v2"\n'
        + "".join(
            f'[[actuators]]\nname = "a{i}"\nlower = -0.5\nupper = {1.0 + i / 10}\n'
            f"effort_limit = {0.1 * (i + 1):.1f}\n"
            for i in range(4)
        )
    )
    text = '[hand]\ndriver = "mirror"\ncalibration = "cal/leap.toml"\n'
    cfg = assemble_cell_config(write_cell(tmp_path, text), {}, {})
    shape = hand_shape(cfg)  # relative to the cell file's folder
    assert shape.model == "leap-v2"
    assert shape.actuator_names == ("a0", "a1", "a2", "a3")
    np.testing.assert_allclose(shape.limits[:, 1], [1.0, 1.1, 1.2, 1.3])
    np.testing.assert_allclose(shape.effort_limits, [0.1, 0.2, 0.3, 0.4])
    assert hand_shape(sim_cell_config({})).n_actuators == 20


def test_a_bad_calibration_file_is_refused_naming_it(tmp_path: Path) -> None:
    text = '[hand]\ndriver = "mirror"\ncalibration = "missing.toml"\n'
    cfg = assemble_cell_config(write_cell(tmp_path, text), {}, {})
    with pytest.raises(ConfigError) as info:
        hand_shape(cfg)
    assert info.value.field == "hand.calibration" and "no such file" in str(info.value)
    (tmp_path / "bad.toml").write_text('[[actuators]]\nname = "a"\nlower = 1\nupper = 0\n')
    text = '[hand]\ndriver = "mirror"\ncalibration = "bad.toml"\n'
    cfg = assemble_cell_config(write_cell(tmp_path, text), {}, {})
    with pytest.raises(ConfigError) as info:
        hand_shape(cfg)
    assert info.value.field == "hand.calibration" and "actuators.0" in str(info.value)
    text = MIRROR16 + "limits = [[0.0, 1.0]]\n"
    cfg = assemble_cell_config(write_cell(tmp_path, text), {}, {})
    with pytest.raises(ConfigError) as info:
        hand_shape(cfg)
    assert info.value.field == "hand.limits" and "1 ranges for 16 actuators" in str(info.value)
