"""`raasd eval BUNDLE --sim` end to end on the lockstep rig with the small example bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.system]


def test_eval_prints_progress_and_writes_the_summary(
    small_bundle_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval.json"
    cmd = [sys.executable, "-m", "raas.cli", "eval", str(small_bundle_dir), "--sim"]
    cmd += ["--episodes", "2", "--goal-timeout", "2", "--seed", "3", "--no-rt", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "episode 1/2" in proc.stdout and "episode 2/2" in proc.stdout
    assert "median" in proc.stdout and "CPUExecutionProvider" in proc.stdout
    assert "random weights" in proc.stdout
    s = json.loads(out.read_text())
    assert s["episodes_run"] == 2
    assert len(s["successes"]) == 2
    assert set(s["end_reasons"]) <= {"timeout", "dropped", "max_successes"}
    assert s["loop"]["missed"] == 0
    assert s["loop"]["cycles"] == sum(e["cycles"] for e in s["episodes"])
    p = s["policy"]
    assert p["execution_provider"] == "CPUExecutionProvider"
    assert p["inference_latency_us"]["n"] == p["cycles"] > 0
    assert p["nonfinite_outputs"] == 0


def test_eval_refuses_a_mismatched_bundle(small_bundle_dir: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "raas.cli", "eval", str(small_bundle_dir), "--sim", "--no-rt"]
    cmd += ["--budget-ms", "0.0001"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 5
    assert "bundle refused: budget_ms" in proc.stderr
