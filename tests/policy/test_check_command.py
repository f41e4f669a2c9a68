"""`raasd policy check BUNDLE`: the checks of a load without a robot, a timing estimate from the
real onnxruntime session, a non-zero exit and the field at fault."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from policy_bundles import copy_bundle, dense_model, write_manifest

pytestmark = [pytest.mark.slow]


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "raas.cli", "policy", "check", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_a_good_bundle_passes_with_its_timing(small_bundle: Path) -> None:
    proc = _check(str(small_bundle), "--runs", "200")
    assert proc.returncode == 0, proc.stderr
    assert "hand         shadow-dexterous: the policy drives 20 of its 20 actuators" in proc.stdout
    assert "state        h->h_out [1, 1, 32], c->c_out [1, 1, 32]" in proc.stdout
    assert "200 runs after 30 warm-up on CPUExecutionProvider" in proc.stdout
    assert "budget 40000 us" in proc.stdout
    assert "OK, the bundle would load" in proc.stdout
    proc = _check(str(small_bundle), "--runs", "50", "--json", "--hand", "shadow-dexterous")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["ok"] is True and r["bundle"]["reads"] == ["hand", "mocap"]
    lat = r["timing"]["latency_us"]
    assert lat["n"] == 50 and 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    assert r["timing"]["budget_us"] == 40000


def test_a_bad_manifest_names_the_field(small_bundle: Path, tmp_path: Path) -> None:
    b = copy_bundle(small_bundle, tmp_path / "dup")
    m = json.loads((b / "manifest.json").read_text())
    m["action"]["actuators"][3] = m["action"]["actuators"][1]
    (b / "manifest.json").write_text(json.dumps(m))
    proc = _check(str(b), "--json")
    assert proc.returncode == 5
    r = json.loads(proc.stdout)
    assert r["ok"] is False and r["field"] == "action.actuators"
    assert r["error"] == "ManifestError" and "listed twice" in r["message"]
    proc = _check(str(b))
    assert proc.returncode == 5
    assert "REFUSED: action.actuators: 'A_WRJ0' is listed twice" in proc.stderr


def test_the_period_and_the_budget_are_judged(small_bundle: Path) -> None:
    proc = _check(str(small_bundle), "--rate", "50")
    assert proc.returncode == 5
    assert "REFUSED: control_period_s: the policy was trained for 80 ms" in proc.stderr
    proc = _check(str(small_bundle), "--budget-ms", "0.0001", "--runs", "20", "--json")
    assert proc.returncode == 5
    r = json.loads(proc.stdout)
    assert r["field"] == "budget_ms" and r["timing"]["latency_us"]["n"] == 20


def test_an_unknown_hand_is_a_usage_error(small_bundle: Path) -> None:
    proc = _check(str(small_bundle), "--hand", "leap-v1")
    assert proc.returncode == 2
    assert "unknown hand model 'leap-v1'; known: shadow-dexterous" in proc.stderr


def _hand_only(tmp_path: Path) -> Path:
    """A policy that reads the hand alone (joint positions in, targets out)."""
    b = tmp_path / "hand_only"
    b.mkdir(parents=True)
    dense_model(b / "model.onnx", 24, 20)
    write_manifest(
        b, observation={"input": "obs", "fields": [{"key": "joint_positions", "shape": [24]}]}
    )
    return b


def test_a_hand_only_policy_reads_no_object_pose(tmp_path: Path) -> None:
    """Before: "reads hand (object pose from mocap)" for a policy that reads no object pose."""
    b = _hand_only(tmp_path)
    proc = _check(str(b), "--runs", "20")
    assert proc.returncode == 0, proc.stderr
    assert "reads        hand (no object pose)\n" in proc.stdout
    r = json.loads(_check(str(b), "--runs", "20", "--json").stdout)
    assert r["bundle"]["reads"] == ["hand"] and r["bundle"]["object_pose_from"] == "none"


def test_a_bundle_over_the_upload_limit_is_warned_about(tmp_path: Path) -> None:
    """A 300 MB bundle loads, but the robot refuses its upload (too_large, 256 MiB): the check
    says so beforehand (before: "OK, the bundle would load" and nothing else)."""
    b = _hand_only(tmp_path)
    with (b / "junk.bin").open("wb") as f:  # sparse: no disk used, still hashed and uploaded
        f.truncate(300 * 1000 * 1000)
    proc = _check(str(b), "--runs", "20")
    assert proc.returncode == 0, proc.stderr  # a warning: the bundle itself would load
    assert (
        "upload       286.1 MiB as sent (the robot takes up to 256 MiB by default)" in proc.stdout
    )
    assert (
        "WARNING: the bundle is 286.1 MiB as uploaded, over the robot's default upload limit"
        in (proc.stdout)
    )
    assert "[transport] max_upload_bytes" in proc.stdout
    r = json.loads(_check(str(b), "--runs", "20", "--json").stdout)
    assert r["ok"] is True and r["upload"]["over_limit"] is True
    assert r["upload"]["limit_bytes"] == 256 * 1024 * 1024 and len(r["warnings"]) == 1
    small = json.loads(_check(str(_hand_only(tmp_path / "small")), "--runs", "20", "--json").stdout)
    assert small["upload"]["over_limit"] is False and small["warnings"] == []
