"""Issue 13's end-to-end proof: a cell file with only real-protocol drivers, served by the
emulators, runs `raasd devices`, `raasd run`, `raasd robot` and `raasd eval` with no `--sim`.

The cell file is docs/examples/leap-basler-optitrack.toml (the worked example of
docs/hardware.md) with its addresses pointed at the emulators: the Dynamixel hand (16 servos, the
shipped LEAP calibration) on a Protocol 2.0 chain on a pty, driven by the real dynamixel-sdk; two
Basler cameras in pylon's own camera emulation (PYLON_CAMEMU) fired by the `pylon-software`
trigger (the emulation has no Line1 input); OptiTrack mocap from the NatNet server emulator on
loopback UDP, driven by the real `natnet` client. Every command is the real `raasd` in a
subprocess; nothing is mocked."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from math import pi
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from raas_drivers.dynamixel import control_table as ct
from raas_drivers.dynamixel.calibration import load_calibration
from raas_drivers.dynamixel.emulator import DynamixelEmulator
from raas_drivers.natnet.emulator import NatNetEmulator

from raas.config import build_cell_config, hand_shape, load_config_file
from tests.cli.conftest import ROOT, raasd
from tests.drivers.camoc_helpers import require_module
from tests.drivers.dxl_support import LEAP_TOML
from tests.transport.harness import LeaseIssuer, start_daemon, wait_for

pytestmark = [pytest.mark.system, pytest.mark.slow]

EXAMPLE = ROOT / "docs" / "examples" / "leap-basler-optitrack.toml"
CAMERAS = ("left", "right")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {v!r}")


def toml_dumps(data: dict[str, Any], prefix: str = "") -> str:
    """The cell file's shape as TOML: tables of scalars, inline tables one level down
    (mocap.markers' entries), nested tables (cameras.left)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for k, v in data.items():
        if isinstance(v, dict) and prefix != "mocap.markers":
            tables.append((k, v))
        else:
            lines.append(f"{json.dumps(k)} = {toml_value(v)}")
    out = ""
    if prefix and lines:
        out += f"[{prefix}]\n"
    out += "".join(line + "\n" for line in lines)
    for k, v in tables:
        out += "\n" + toml_dumps(v, f"{prefix}.{k}" if prefix else k)
    return out


def emulated_cell(dxl_port: str, natnet_port: int) -> dict[str, Any]:
    """The worked example, pointed at the emulators. What changes and why:
    - hand.port: the emulator's pty; calibration: the same LEAP file, by absolute path (the
      written cell file lives in a temp folder);
    - trigger: `pylon-software` (pylon's emulation has no Line1 input, so the board cannot fire
      it) and the cameras' trigger_source Software; the cameras: the emulation's serial numbers,
      small frames (a loaded 2-core machine);
    - mocap: the emulator on loopback;
    - deadlines.hand_ms 40 (the example's 10 is for the real bus; the emulator is Python
      sharing two cores with everything else: at load 17 a 25 ms deadline left 9 of 25
      cycles' hand states late)."""
    data = load_config_file(EXAMPLE)
    data["hand"]["port"] = dxl_port
    data["hand"]["calibration"] = str(LEAP_TOML)
    data["trigger"] = {"driver": "pylon-software"}
    data["mocap"].update(server="127.0.0.1", local="127.0.0.1", command_port=natnet_port)
    for i, name in enumerate(CAMERAS):
        cam = data["cameras"][name]
        cam.update(
            serial_number=f"0815-000{i}",
            emulated=True,
            trigger_source="Software",
            width=64,
            height=48,
        )
        cam.pop("trigger_activation")  # the emulation's Software source has no edge
        cam.pop("exposure_us")
    data["deadlines"]["hand_ms"] = 40
    data.setdefault("loop", {})["warmup_cycles"] = 5
    return data


@dataclass
class RealCell:
    path: Path
    tmp: Path
    dxl: DynamixelEmulator
    natnet: NatNetEmulator
    bundle: Path


@pytest.fixture(scope="module")
def real_cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCell]:
    """The emulators, started for real, the cell file that names them, and a policy bundle made
    for the cell's hand (16 actuators, leap-hand), shared by the module's tests."""
    require_module("dynamixel_sdk", "dynamixel-sdk")
    require_module("pypylon", "pypylon")
    require_module("natnet", "natnet")
    tmp = Path(tmp_path_factory.mktemp("real_cell"))
    with DynamixelEmulator(range(16)) as dxl, NatNetEmulator(rate_hz=120.0) as natnet:
        cell = tmp / "cell.toml"
        cell.write_text(toml_dumps(emulated_cell(dxl.port, natnet.address[1])))
        examples = [sys.executable, "-m", "raas.policy.examples", str(tmp / "bundles")]
        made = subprocess.run(
            [*examples, "--cell", str(cell)],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        bundle = Path(made.stdout.split("hand:", 1)[1].strip())
        yield RealCell(cell, tmp, dxl, natnet, bundle)


def goals_rad(dxl: DynamixelEmulator) -> np.ndarray:
    """The Goal Position every servo holds, as the calibration's joint angle (rad)."""
    cal = load_calibration(LEAP_TOML)
    out = []
    for s in cal.servos:
        raw = struct.unpack_from("<i", dxl.servos[s.id].table, ct.GOAL_POSITION)[0]
        out.append(s.direction * (raw - s.zero) * 2 * pi / 4096)
    return np.array(out)


# ---------------------------------------------------------------------------------- the example


def test_the_worked_example_is_a_valid_cell_file() -> None:
    """docs/examples/leap-basler-optitrack.toml parses as it ships: every section's settings are
    accepted by its driver, its relative calibration path finds the LEAP calibration, and the
    hand's shape (16 actuators, leap-hand) comes from it without opening any port."""
    cfg = build_cell_config(load_config_file(EXAMPLE)).with_base_dir(EXAMPLE.parent)
    devices = {e.key: e.driver for e in cfg.devices()}
    assert devices == {
        "hand": "dynamixel",
        "trigger": "serial",
        "mocap": "natnet",
        "cameras.left": "pylon",
        "cameras.right": "pylon",
    }
    assert (EXAMPLE.parent / cfg.hand.settings["calibration"]).resolve() == LEAP_TOML.resolve()  # type: ignore[union-attr]
    shape = hand_shape(cfg)
    assert shape.model == "leap-hand" and len(shape.actuator_names) == 16
    assert cfg.deadlines.resolve(cfg.loop.period_ns)["hand"] == 10_000_000


# ---------------------------------------------------------------------------------- devices


def test_raasd_devices_finds_every_device(real_cell: RealCell) -> None:
    proc = raasd("devices", "--config", str(real_cell.path), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    by_device = {d["device"]: d for d in report["devices"]}
    assert set(by_device) == {"hand", "trigger", "mocap", "cameras.left", "cameras.right"}
    for name, d in by_device.items():
        assert d["found"] and d["ok"] and not d["problems"], (name, d)
    assert by_device["cameras.left"]["serial_number"] == "0815-0000"
    assert by_device["cameras.right"]["serial_number"] == "0815-0001"
    assert by_device["hand"]["model"] == "16 x XC330-M288"  # every servo answered its ping
    assert by_device["mocap"]["model"] == "raas NatNet emulator"
    text = raasd("devices", "--config", str(real_cell.path))
    assert text.returncode == 0, text.stdout + text.stderr
    assert "found" in text.stdout and "MISSING" not in text.stdout


# ---------------------------------------------------------------------------------- run


def test_raasd_run_with_a_policy_safety_and_recording(real_cell: RealCell) -> None:
    """The full loop for 2 s at 12.5 Hz with the policy bundle, the safety supervisor (always on)
    and the MCAP recorder; every source answers (no device lost, few stale cycles)."""
    stats_path = real_cell.tmp / "run-stats.json"
    rec = real_cell.tmp / "recordings"
    proc = raasd(
        "run", "--config", str(real_cell.path), "--policy", str(real_cell.bundle),
        "--duration", "2", "--no-rt", "--quiet", "--record", str(rec),
        "--stats-json", str(stats_path), timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "hand dynamixel 'leap-hand' (16 actuators)" in proc.stdout
    assert "trigger pylon-software; mocap natnet; cameras left pylon, right pylon" in proc.stdout
    stats = json.loads(stats_path.read_text())
    assert stats["cycles"]["run"] == 25
    assert stats["config"]["controller"].startswith("policy:")
    assert set(stats["sources"]) == {"hand", "trigger", "mocap", "cameras.left", "cameras.right"}
    for name, src in stats["sources"].items():
        # a loaded 2-core machine makes a cycle's sample late now and then; never most of them
        assert src["stale_cycles"] < stats["cycles"]["run"] // 2, (name, src)
    assert stats["run"]["stop_reason"] == "duration" and stats["run"]["lost_device"] is None
    mcaps = list(rec.glob("*.mcap"))
    assert len(mcaps) == 1 and mcaps[0].stat().st_size > 0
    # the recording holds the real cell's cycles: replayed through the bundle, bit-identical
    replayed = raasd("replay", str(mcaps[0]), "--bundle", str(real_cell.bundle), timeout=240)
    assert replayed.returncode == 0, replayed.stdout[-3000:] + replayed.stderr[-3000:]
    # the loop drove the servos: torque on (held after the run), goals moved off the start
    assert all(s.table[ct.TORQUE_ENABLE] == 1 for s in real_cell.dxl.servos.values())


# ---------------------------------------------------------------------------------- robot


def test_raasd_robot_steps_the_hand_for_a_remote_client(real_cell: RealCell) -> None:
    """`raasd robot --config` on the emulated cell: a client with a control lease opens a
    session, arms, and its 16-actuator actions reach the servos' Goal Position."""
    from raas_client.session import RemoteRobot

    tmp = real_cell.tmp / "robot"
    issuer = LeaseIssuer.create(real_cell.tmp)
    d = start_daemon(
        tmp, issuer, clock="realtime", rate=12.5, cell=real_cell.path,
        extra=("--cameras", "2"), timeout=180,
    )  # fmt: skip
    try:
        assert any("hand dynamixel 'leap-hand' (16 actuators)" in ln for ln in d.lines), d.output()
        robot = RemoteRobot(d.control, server_key=d.key, lease=issuer.issue())
        try:
            spaces = robot.hello()["spaces"]
            act = spaces["action"]
            assert act["shape"] == [16] and act["hand_model"] == "leap-hand"
            cal = load_calibration(LEAP_TOML)
            assert act["names"] == [s.joint for s in cal.servos]
            assert spaces["observation"]["mocap"]["shape"] == [13, 3]
            robot.open("control")
            robot.arm()
            lim = np.array([[s.min_rad, s.max_rad] for s in cal.servos])
            target = np.clip(np.array(act["idle"]) + 0.15, lim[:, 0], lim[:, 1])
            obs = robot.observation()
            for _ in range(40):  # the conditioning rate-limits: a few cycles to get there
                robot.act(obs.cycle, target)
                obs = robot.observation(after=obs.cycle)
            assert obs["hand_pos"].shape == (16,)
            assert obs["mocap"].shape == (13, 3)
            # the servos hold the client's target (one 4096-count step of rounding)
            np.testing.assert_allclose(goals_rad(real_cell.dxl), target, atol=2 * pi / 4096)
            # and the emulated servos track it
            assert wait_for(lambda: np.abs(obs_pos(robot) - target).max() < 0.05, timeout=30), (
                obs_pos(robot) - target
            )
        finally:
            robot.close()
    finally:
        code = d.stop()
    assert code == 0, d.output()[-3000:]


def obs_pos(robot: Any) -> np.ndarray:
    pos: np.ndarray = robot.observation()["hand_pos"]
    return pos


# ---------------------------------------------------------------------------------- eval


def test_raasd_eval_scores_with_the_object_pose_from_mocap(real_cell: RealCell) -> None:
    """`raasd eval --config` runs the episode on the cell; the referee judges the block from the
    NatNet block markers (the emulator's block turns, never reaching a goal for a random
    policy: the honest result is 0 successes, ended by the goal timeout)."""
    report = real_cell.tmp / "eval.json"
    proc = raasd(
        "eval", "--config", str(real_cell.path), "--episodes", "1", "--goal-timeout", "2",
        "--no-rt", "--quiet", "--json", str(report), str(real_cell.bundle), timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the LEAP bundle reads the hand only; the referee still judges the block from its markers
    assert "the policy reads no object pose" in proc.stdout
    assert "clock realtime" in proc.stdout
    summary = json.loads(report.read_text())
    assert summary["episodes_run"] == 1
    assert summary["end_reasons"] == {"timeout": 1}, summary["end_reasons"]
    assert summary["loop"]["cycles"] >= 20
    # the policy's observation is there on most cycles (a late hand state on a loaded machine
    # makes a cycle's observation missing: the loop's fallback, counted)
    assert summary["policy"]["missing_observations"] < summary["loop"]["cycles"] // 2


def rewritten_cell(real_cell: RealCell, name: str, markers: dict[str, Any]) -> Path:
    """The module's cell file with other [mocap.markers] rows."""
    data = tomllib.loads(real_cell.path.read_text())
    data["mocap"]["markers"] = markers
    path = real_cell.tmp / name
    path.write_text(toml_dumps(data))
    return path


def test_raasd_eval_finds_the_block_rows_by_name(real_cell: RealCell) -> None:
    """The referee and the policy read the mocap rows by their names in [mocap.markers], not by
    the simulated cell's positions: a cell that lists the block's markers first is scored (the
    row lookup itself: tests/policy/test_marker_rows.py)."""
    markers = tomllib.loads(real_cell.path.read_text())["mocap"]["markers"]
    block_first = {k: v for k, v in markers.items() if k.startswith("block:")}
    block_first.update({k: v for k, v in markers.items() if not k.startswith("block:")})
    cell = rewritten_cell(real_cell, "block-first.toml", block_first)
    report = real_cell.tmp / "eval-block-first.json"
    proc = raasd(
        "eval", "--config", str(cell), "--episodes", "1", "--goal-timeout", "2",
        "--no-rt", "--quiet", "--json", str(report), str(real_cell.bundle), timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(report.read_text())
    assert summary["episodes_run"] == 1 and summary["end_reasons"] == {"timeout": 1}, summary


def test_raasd_eval_refuses_a_cell_without_the_block_markers(real_cell: RealCell) -> None:
    """A cell whose motion capture has no block rows cannot be scored: refused at start naming
    mocap.markers and the rows it lacks (exit 2), instead of a crash or a score of nothing."""
    markers = tomllib.loads(real_cell.path.read_text())["mocap"]["markers"]
    tips = {k: v for k, v in markers.items() if not k.startswith("block:")}
    cell = rewritten_cell(real_cell, "tips-only.toml", tips)
    proc = raasd(
        "eval", "--config", str(cell), "--episodes", "1", "--goal-timeout", "2", "--no-rt",
        "--quiet", str(real_cell.bundle), timeout=240,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "mocap.markers" in proc.stderr and "block:m0" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_raasd_eval_names_the_flag_of_a_bad_protocol_value(real_cell: RealCell) -> None:
    proc = raasd("eval", "--config", str(real_cell.path), "--threshold", "4", str(real_cell.bundle))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--threshold: Input should be less than or equal to 3.14" in proc.stderr, proc.stderr
    assert "pydantic" not in proc.stderr and "TaskConfig" not in proc.stderr
