"""SimRig starts its processes behind a handshake and leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from raas_drivers import DeviceNotReadyError
from raas_drivers.sim import RigConfig, SimRig

from tests.conftest import require
from tests.drivers.conftest import SMALL, process_gone, start_rig, wait_for

pytestmark = [pytest.mark.system]
ROOT = Path(__file__).resolve().parents[2]


def test_exit_leaves_no_process_socket_or_shared_memory() -> None:
    rig = start_rig(RigConfig(clock="lockstep", cameras=2, seed=0, **SMALL))
    with rig:
        assert rig.alive()
        pids = [rig.pid, rig.renderer_pid]
        sock_dir = Path(rig.sock_dir)
        segments = [n for n, _ in rig.renderer_info["slots"].values()]
        assert all((Path("/dev/shm") / s).exists() for s in segments)
        assert rig.renderer_backend
    for pid in pids:
        assert pid is not None and process_gone(pid)
    assert not sock_dir.exists()
    assert not any((Path("/dev/shm") / s).exists() for s in segments)


def test_failing_start_names_the_process_and_shows_its_stderr(tmp_path: Path) -> None:
    fake = tmp_path / "fakepython"
    fake.write_text("#!/bin/sh\necho 'boom: no physics today' >&2\nexec sleep 30\n")
    fake.chmod(0o755)
    rig = SimRig(RigConfig(cameras=0, ready_timeout_s=0.5), python=str(fake))
    with pytest.raises(DeviceNotReadyError) as info:
        rig.start()
    assert info.value.device == "rig"
    assert "boom: no physics today" in str(info.value)
    assert "0.5 s" in str(info.value)
    assert not rig.alive()


def test_crashing_start_reports_the_exit_code(tmp_path: Path) -> None:
    fake = tmp_path / "fakepython"
    fake.write_text("#!/bin/sh\necho 'Traceback: it broke' >&2\nexit 7\n")
    fake.chmod(0o755)
    with pytest.raises(DeviceNotReadyError) as info:
        SimRig(RigConfig(cameras=0), python=str(fake)).start()
    assert "7" in str(info.value) and "it broke" in str(info.value)


CHILD = """
import json, os, sys
from raas_drivers import DeviceNotReadyError
from raas_drivers.sim import RigConfig, SimRig
cfg = RigConfig(clock="realtime", cameras=int(sys.argv[1]), camera_width=64, camera_height=48)
try:
    rig = SimRig(cfg).start()
except DeviceNotReadyError as exc:
    print(json.dumps({"error": str(exc)}), flush=True)
    raise SystemExit(0)
segments = [n for n, _ in rig.renderer_info.get("slots", {}).values()]
print(json.dumps({"pids": [rig.pid, rig.renderer_pid], "dir": rig.sock_dir, "shm": segments}),
      flush=True)
os.kill(os.getpid(), 9)  # the parent dies without any clean-up
"""


@pytest.mark.parametrize("cameras", [0, 1])
def test_rig_dies_with_its_parent_and_cleans_up(cameras: int) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(cameras)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    info = json.loads(out.stdout.splitlines()[0])
    if "error" in info:
        require("offscreen GL", "no offscreen GL backend" not in info["error"], info["error"])
        raise AssertionError(info["error"])
    assert out.returncode == -9, out.stderr
    for pid in info["pids"]:
        if pid is not None:
            wait_for(lambda pid=pid: process_gone(pid), 10.0, f"orphaned process {pid} to exit")
    wait_for(lambda: not Path(info["dir"]).exists(), 10.0, "the orphan's sockets to go")
    shm = [Path("/dev/shm") / name for name in info["shm"]]
    assert len(shm) == cameras
    wait_for(lambda: not any(p.exists() for p in shm), 10.0, "the orphan's frames to go")
