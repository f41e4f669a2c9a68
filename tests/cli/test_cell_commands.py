"""`raasd run|devices --config CELL.toml` end to end on cells without the simulated rig: a
16-actuator mirror hand, and the serial drivers against the firmware emulator on its ptys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from raas_drivers.sim import RigConfig, SimRig

from raas.core.stats import schema
from raas.policy.hand_bundle import generic_shape, make_hand_bundle
from tests.cli.conftest import ROOT

pytestmark = [pytest.mark.system]

MIRROR16 = """
[hand]
driver = "mirror"
model = "leap-like"
actuators = 16
"""


def cell_file(tmp_path: Path, text: str = MIRROR16) -> Path:
    path = tmp_path / "cell.toml"
    path.write_text(text)
    return path


def test_run_on_a_16_actuator_mirror_hand_without_trigger(run_raasd, tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    proc = run_raasd(
        "run", "--config", str(cell_file(tmp_path)), "--rate", "50", "--duration", "1",
        "--no-rt", "--quiet", "--stats-json", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "cell up (hand mirror 'leap-like' (16 actuators); trigger none; no mocap" in proc.stdout
    stats = json.loads(out.read_text())
    jsonschema.validate(stats, schema())
    assert stats["cycles"]["run"] == 50 and stats["cycles"]["missed"] == 0
    assert set(stats["sources"]) == {"hand", "trigger"}
    assert stats["cell"]["actuators"] == 16 and "rig" not in stats


def test_run_with_a_bundle_for_the_hand_and_one_for_another(run_raasd, tmp_path: Path) -> None:
    cell = cell_file(tmp_path)
    made = subprocess.run(
        [sys.executable, "-m", "raas.policy.examples", str(tmp_path), "--cell", str(cell)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    bundle = tmp_path / "hand-leap-like-16"
    assert json.loads((bundle / "manifest.json").read_text())["hand"] == {"model": "leap-like"}
    proc = run_raasd(
        "run", "--config", str(cell), "--policy", str(bundle), "--duration", "1", "--no-rt",
        "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "controller policy:leap-like-16" in proc.stdout
    twenty = make_hand_bundle(tmp_path / "b20", generic_shape(20, "leap-like"))
    proc = run_raasd("run", "--config", str(cell), "--policy", str(twenty), "--duration", "1")
    assert proc.returncode == 5
    assert "bundle refused" in proc.stderr and "action.actuators" in proc.stderr
    assert "no actuator joint_16" in proc.stderr


def test_unknown_driver_and_bad_setting_refused_at_start(run_raasd, tmp_path: Path) -> None:
    bad = cell_file(tmp_path, MIRROR16 + '[mocap]\ndriver = "optitrack-typo"\n')
    proc = run_raasd("run", "--config", str(bad), "--duration", "1")
    assert proc.returncode == 2
    assert "mocap.driver" in proc.stderr and "unknown mocap driver 'optitrack-typo'" in proc.stderr
    bad.write_text(MIRROR16 + '[trigger]\ndriver = "serial"\nprot = "/dev/ttyACM0"\n')
    proc = run_raasd("health", "--config", str(bad))
    assert proc.returncode == 2
    assert "trigger.port" in proc.stderr or "trigger.prot" in proc.stderr


def test_devices_lists_and_probes(run_raasd, tmp_path: Path) -> None:
    text = MIRROR16 + '[trigger]\ndriver = "serial"\nport = "/dev/serial/by-id/raas-nothing"\n'
    proc = run_raasd("devices", "--config", str(cell_file(tmp_path, text)))
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("raasd devices: 2 devices in")
    hand = next(ln for ln in lines if ln.split()[:1] == ["hand"])
    assert "mirror" in hand and "found" in hand and "leap-like" in hand
    trig = next(ln for ln in lines if ln.split()[:1] == ["trigger"])
    assert "serial" in trig and "MISSING" in trig
    assert "no such port /dev/serial/by-id/raas-nothing" in proc.stdout
    assert lines[-1] == "raasd devices: PROBLEMS with trigger"

    proc = run_raasd("devices", "--config", str(cell_file(tmp_path, text)), "--json")
    data = json.loads(proc.stdout)
    assert data["ok"] is False
    assert [(d["device"], d["found"]) for d in data["devices"]] == [
        ("hand", True),
        ("trigger", False),
    ]

    proc = run_raasd("devices", "--sim")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "simulated Shadow hand" in proc.stdout and "cameras.top" in proc.stdout

    proc = run_raasd("devices", "--drivers")
    assert proc.returncode == 0 and "mirror" in proc.stdout and "none" in proc.stdout


@pytest.mark.slow
def test_serial_drivers_against_the_firmware_emulator(run_raasd, tmp_path: Path) -> None:
    """The serial hand and trigger board, named in a cell file, on the emulator's ptys."""
    with SimRig(RigConfig(clock="realtime", cameras=0)) as rig:
        text = (
            f'[hand]\ndriver = "serial"\nport = "{rig.rig_info["hand_port"]}"\n'
            f'[trigger]\ndriver = "serial"\nport = "{rig.rig_info["trigger_port"]}"\n'
        )
        cell = cell_file(tmp_path, text)
        proc = run_raasd("devices", "--config", str(cell), "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        hand, trigger = json.loads(proc.stdout)["devices"]
        assert hand["found"] and hand["firmware"] and hand["serial_number"] is not None
        assert hand["details"]["actuators"] == 20
        assert trigger["found"] and "trigger board" in trigger["model"]
        proc = run_raasd("run", "--config", str(cell), "--duration", "2", "--no-rt", "--quiet")
        assert proc.returncode == 0, proc.stderr
        assert "hand serial 'shadow-dexterous' (20 actuators); trigger serial" in proc.stdout
        assert "stale cycles per source: hand " in proc.stdout  # (how many: the machine's load)
