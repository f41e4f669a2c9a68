"""`raasd eval` with a policy that outputs NaN: the safety pipeline holds the hand, and the held
episode ends at once with the hold's reason code, printed, in the JSON summary and in the
recording; the exit code says an episode was held (6), and the status line shows HOLD."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from raas_client.report import format as fmt
from raas_client.report.reader import RecordingFile

pytestmark = [pytest.mark.slow, pytest.mark.system]

EXIT_HELD = 6


def test_a_held_episode_ends_at_once_with_the_reason(nan_bundle_dir: Path, tmp_path: Path) -> None:
    out, rec = tmp_path / "eval.json", tmp_path / "rec"
    cmd = [sys.executable, "-m", "raas.cli", "eval", str(nan_bundle_dir), "--sim", "--no-rt"]
    cmd += ["--episodes", "2", "--goal-timeout", "30", "--json", str(out), "--record", str(rec)]
    cmd += ["--status"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == EXIT_HELD, proc.stdout + proc.stderr
    assert "ended by a safety stop (nonfinite_action)" in proc.stdout
    assert "HELD: 2 episode(s) ended by a safety stop {'nonfinite_action': 2}" in proc.stdout
    s = json.loads(out.read_text())
    assert s["end_reasons"] == {"held": 2}
    assert s["safety_stops"] == {"nonfinite_action": 2}
    for ep in s["episodes"]:
        assert ep["reason"] == "held" and ep["safety_reason"] == "nonfinite_action"
        assert ep["seconds"] < 2.0  # at once (3 NaN cycles), not after the 30 s goal timeout
    files = sorted(rec.glob("*.mcap"))
    assert len(files) == 2
    events = [m.data for m in RecordingFile(files[0]).messages([fmt.TOPIC_EVENTS])]
    holds = [e["data"] for e in events if e["kind"] == "safety" and e["data"]["to"] == "hold"]
    assert holds and holds[0]["reason"] == "nonfinite_action"
    end = [e["data"] for e in events if e["kind"] == "episode_end"]
    assert end and end[0]["reason"] == "held" and end[0]["safety_reason"] == "nonfinite_action"


def test_same_rig_re_arms_after_a_held_episode(nan_bundle_dir: Path, tmp_path: Path) -> None:
    """One rig and loop: the next episode re-arms the held supervisor and is judged again."""
    out = tmp_path / "eval.json"
    cmd = [sys.executable, "-m", "raas.cli", "eval", str(nan_bundle_dir), "--sim", "--no-rt"]
    cmd += ["--episodes", "2", "--same-rig", "--goal-timeout", "30", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == EXIT_HELD, proc.stdout + proc.stderr
    s = json.loads(out.read_text())
    assert [e["reason"] for e in s["episodes"]] == ["held", "held"]
    assert s["loop"]["cycles"] == 6  # 3 NaN cycles each (safety.watchdogs.nonfinite_cycles)
