"""`raasd run --config CELL.toml` with the Dynamixel hand on the emulated bus: the full loop,
with the built-in controller and with a policy bundle made for that hand. It needs the cell-file
composition (raasd run --config, raasd devices); without it this skips, and fails under
RAAS_REQUIRE_ALL=1."""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from raas_drivers.dynamixel import control_table as ct
from raas_drivers.dynamixel.emulator import DynamixelEmulator

from tests.conftest import require
from tests.drivers.dxl_support import LEAP_TOML

pytestmark = [pytest.mark.system, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _cell_files() -> bool:
    """The cell-file composition is there (it brought `raasd devices` with it)."""
    return importlib.util.find_spec("raas.commands.devices") is not None


def _cell(tmp_path: Path, port: str) -> Path:
    cell = tmp_path / "leap_cell.toml"
    cell.write_text(
        f"""
[hand]
driver = "dynamixel"
port = "{port}"
calibration = "{LEAP_TOML}"

[deadlines]
hand_ms = 25   # a 16-servo sync read at 1 Mbaud is ~4.6 ms on the bus; the emulator is Python

[loop]
rate_hz = 12.5
warmup_cycles = 5
"""
    )
    return cell


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raas.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_raasd_run_drives_the_dynamixel_hand(tmp_path: Path) -> None:
    require("cell files (raasd run --config)", _cell_files(), "raas.commands.devices missing")
    with DynamixelEmulator(range(16)) as emu:
        cell = _cell(tmp_path, emu.port)
        stats_path = tmp_path / "stats.json"
        proc = _run(
            "run", "--config", str(cell), "--duration", "2", "--quiet", "--no-rt",
            "--stats-json", str(stats_path),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "hand dynamixel 'leap-hand' (16 actuators)" in proc.stdout
        stats = json.loads(stats_path.read_text())
        assert stats["cycles"]["run"] == 25
        assert stats["sources"]["hand"]["stale_cycles"] <= 3  # a loaded machine may delay one
        # the loop drove the servos: torque on (held after the run), goals away from the start
        assert all(s.table[ct.TORQUE_ENABLE] == 1 for s in emu.servos.values())
        goals = [
            struct.unpack_from("<i", s.table, ct.GOAL_POSITION)[0] for s in emu.servos.values()
        ]
        assert any(g != 2048 for g in goals)

        bundles = tmp_path / "bundles"
        made = subprocess.run(
            [sys.executable, "-m", "raas.policy.examples", str(bundles), "--cell", str(cell)],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr[-2000:]
        bundle = made.stdout.split("hand:", 1)[1].strip()
        proc = _run(
            "run", "--config", str(cell), "--policy", bundle, "--duration", "2", "--quiet",
            "--no-rt", "--stats-json", str(stats_path),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        stats = json.loads(stats_path.read_text())
        assert stats["cycles"]["run"] == 25
        assert stats["sources"]["hand"]["stale_cycles"] <= 3  # a loaded machine may delay one
