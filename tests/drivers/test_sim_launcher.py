"""SimRig starts its processes behind a handshake and leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from raas_drivers import DeviceNotReadyError
from raas_drivers.sim import RigConfig, SimRig

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
from raas_drivers.sim import RigConfig, SimRig
rig = SimRig(RigConfig(clock="realtime", cameras=0)).start()
print(json.dumps({"pid": rig.pid, "dir": rig.sock_dir}), flush=True)
os.kill(os.getpid(), 9)  # the parent dies without any clean-up
"""


def test_rig_dies_with_its_parent() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == -9, out.stderr
    info = json.loads(out.stdout.splitlines()[0])
    wait_for(lambda: process_gone(info["pid"]), 10.0, "the orphaned rig to exit")
    wait_for(lambda: not Path(info["dir"]).exists(), 10.0, "the orphan's sockets to go")
