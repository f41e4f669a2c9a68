"""`raasd run` end to end: real processes, real rig, the JSON figures checked against the schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from raas.core.stats import schema

pytestmark = [pytest.mark.system]


def test_lockstep_run_writes_valid_stats(run_raasd, tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    proc = run_raasd(
        "run", "--sim", "--clock", "lockstep", "--rate", "12.5", "--duration", "4",
        "--cameras", "0", "--quiet", "--stats-json", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(out.read_text())
    jsonschema.validate(stats, schema())
    assert stats["cycles"]["run"] == 50
    assert stats["cycles"]["missed"] == 0
    assert stats["config"]["clock"] == "lockstep"
    assert stats["run"]["speed_vs_realtime"] > 1.0
    assert set(stats["sources"]) == {"hand", "trigger", "mocap"}
    # each device's own clock, mapped to sim time: offset and drift as the rig's defaults say
    assert set(stats["clocks"]) == {"hand", "trigger", "mocap"}
    assert stats["clocks"]["hand"]["offset_ns"] == pytest.approx(-1e9, abs=1e3)
    assert stats["clocks"]["mocap"]["drift_ppm"] == pytest.approx(0.0, abs=0.1)
    assert "lateness" in proc.stdout and "trigger->apply" in proc.stdout
    # each serial link's counters: one STATE_REQUEST and one SET_TARGETS per cycle at least
    cycles = stats["cycles"]["run"] + stats["cycles"]["warmup"]
    for board in ("hand", "trigger"):
        link = stats["devices"][board]
        assert link["link_open"] == 1
        assert link["link_frames_sent"] >= cycles
        assert link["link_frames_received"] >= cycles
        assert link["link_bytes_sent"] > link["link_frames_sent"]
        assert link["link_crc_errors"] == link["link_resyncs"] == link["link_timeouts"] == 0
    assert stats["devices"]["hand"]["link_frames_sent"] >= 2 * cycles
    assert "link hand: frames" in proc.stdout


def test_realtime_run_with_cameras_and_live_status(run_raasd, tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    proc = run_raasd(
        "run", "--sim", "--clock", "realtime", "--rate", "12.5", "--duration", "3",
        "--cameras", "3", "--no-rt", "--stats-json", str(out),
    )  # fmt: skip
    # 6: held by a watchdog (a stale source on a busy machine), which the stats then say
    assert proc.returncode in (0, 6), proc.stderr
    stats = json.loads(out.read_text())
    jsonschema.validate(stats, schema())
    assert stats["config"]["clock"] == "realtime"
    assert {"cameras.left", "cameras.right", "cameras.top"} <= set(stats["sources"])
    assert {"hand", "trigger", "mocap", "cameras.left"} <= set(stats["clocks"])
    assert stats["cycles"]["run"] == round(3 * 12.5)
    assert stats["rt"]["requested"] is False
    # The live status line went to stderr while running; it shows the supervisor's state (and
    # the reason of a hold: a stale camera on a busy machine holds the hand, and says so).
    assert re.search(r"\[raasd\] (ARMED|RUNNING|HOLD [a-z_]+) +cycle +\d+", proc.stderr)
    assert stats["lateness_us"]["n"] == stats["cycles"]["run"]


def test_invalid_flag_value_names_the_field(run_raasd) -> None:
    proc = run_raasd("run", "--sim", "--rate", "-5", "--duration", "1")
    assert proc.returncode == 2
    assert "loop.rate_hz" in proc.stderr


def test_invalid_config_file_names_the_field(run_raasd, tmp_path: Path) -> None:
    cfg = tmp_path / "cell.toml"
    cfg.write_text("[loop]\nrte_hz = 5\n")
    proc = run_raasd("run", "--sim", "--config", str(cfg), "--duration", "1")
    assert proc.returncode == 2
    assert "loop.rte_hz" in proc.stderr
    cfg.write_text("[rig]\ncameras = 7\n")
    proc = run_raasd("run", "--sim", "--config", str(cfg), "--duration", "1")
    assert proc.returncode == 2
    assert "rig.cameras" in proc.stderr


def test_run_without_a_cell_is_refused(run_raasd) -> None:
    proc = run_raasd("run", "--duration", "1")
    assert proc.returncode == 2
    assert "--config CELL.toml" in proc.stderr and "--sim" in proc.stderr
