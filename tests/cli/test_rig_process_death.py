"""If the rig process dies, the daemon applies the idle action, names the lost device and exits
non-zero."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.system]
ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(x) for x in out.stdout.split()]


def _wait_for(cond, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_rig_means_idle_action_named_device_and_nonzero_exit(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "raas.cli", "run", "--sim", "--clock", "realtime", "--rate", "50",
         "--duration", "60", "--cameras", "0", "--no-rt"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = _wait_for(proc.stdout.readline, 60, "the cell to come up")
        assert "simulated cell up" in line
        rig = _wait_for(lambda: _children(proc.pid), 10, "the rig process")
        for pid in rig:
            os.kill(pid, signal.SIGKILL)
        code = proc.wait(timeout=30)
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 3, err
    assert "DEVICE LOST" in err
    assert "hand held where it was measured" in err
    assert any(name in err for name in ("hand", "trigger", "mocap"))
