"""`raasd health --sim` end to end: a real process on the lockstep rig, exit codes and output."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.system, pytest.mark.slow]

FLAGS = ("health", "--sim", "--clock", "lockstep", "--no-rt", "--cameras", "0")


def test_healthy_rig_passes_with_json_report(run_raasd) -> None:  # type: ignore[no-untyped-def]
    proc = run_raasd(*FLAGS, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    names = [c["name"] for c in report["checks"]]
    assert names == [
        "joints_home",
        "joints_range",
        "mocap_markers",
        "temperatures",
        "supervisor",
    ]
    assert all(set(c) == {"name", "ok", "detail"} for c in report["checks"])
    # progress and the PASS/FAIL lines go to stderr with --json
    assert "[1/14] home" in proc.stderr and "[14/14] home (end)" in proc.stderr
    assert "raasd health: PASS" in proc.stderr


def test_hot_rig_fails_with_exit_1_naming_the_check(run_raasd) -> None:  # type: ignore[no-untyped-def]
    proc = run_raasd(*FLAGS, "--rig", "motor_ambient_c=65")
    assert proc.returncode == 1, proc.stderr
    assert "  FAIL  temperatures" in proc.stdout
    assert "  PASS  joints_range" in proc.stdout
    assert "raasd health: FAIL (temperatures)" in proc.stdout


def test_bad_rig_flag_is_a_config_error(run_raasd) -> None:  # type: ignore[no-untyped-def]
    proc = run_raasd(*FLAGS, "--rig", "motor_ambient=65")
    assert proc.returncode == 2
    assert "rig.motor_ambient" in proc.stderr
    proc = run_raasd(*FLAGS, "--rig", "novalue")
    assert proc.returncode == 2 and "expected KEY=VALUE" in proc.stderr
