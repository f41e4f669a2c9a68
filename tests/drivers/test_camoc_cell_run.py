"""`raasd run --config` on a cell of real-protocol drivers served by emulators: two Basler cameras
in pypylon's emulation fired by the pylon-software trigger, OptiTrack NatNet mocap from the NatNet
emulator, a mirror hand; the full loop with a policy bundle made for the cell's hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from raas_drivers.natnet.emulator import NatNetEmulator

from tests.drivers.camoc_helpers import require_module

pytestmark = [pytest.mark.system, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

CELL = """
[hand]
driver = "mirror"
model = "leap-like"
actuators = 16

[trigger]
driver = "pylon-software"

[mocap]
driver = "natnet"
server = "127.0.0.1"
command_port = {port}

[mocap.markers]
fftip = {{ rigid_body = "hand", marker = 1 }}
mftip = {{ rigid_body = "hand", marker = 2 }}
rftip = {{ rigid_body = "hand", marker = 3 }}
lftip = {{ rigid_body = "hand", marker = 4 }}
thtip = {{ rigid_body = "hand", marker = 5 }}
{block}

[cameras.left]
driver = "pylon"
serial_number = "0815-0000"
emulated = true
trigger_source = "Software"
width = 64
height = 48

[cameras.right]
driver = "pylon"
serial_number = "0815-0001"
emulated = true
trigger_source = "Software"
pixel_format = "Mono8"
width = 64
height = 48
{webcam}"""

WEBCAM = """
[cameras.top]
driver = "uvc"
device = "{video}"
backend = "any"
"""


def webcam_video(tmp_path: Path) -> Path:
    """15 s of 64x48 MJPG at 30 fps, for a `uvc` camera read by OpenCV (no V4L2 device here)."""
    import cv2

    path = tmp_path / "webcam.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    img = np.zeros((48, 64, 3), np.uint8)
    for i in range(450):
        img[:, :, 1] = i % 256
        out.write(img)
    out.release()
    return path


def cell_file(tmp_path: Path, port: int, video: Path | None = None) -> Path:
    block = "\n".join(
        f'"block:m{i}" = {{ rigid_body = "block", marker = {i + 1} }}' for i in range(8)
    )
    webcam = "" if video is None else WEBCAM.format(video=video)
    path = tmp_path / "cell.toml"
    path.write_text(CELL.format(port=port, block=block, webcam=webcam))
    return path


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ),
        check=False,
    )


def test_raasd_run_on_emulated_pylon_and_natnet_with_a_policy(tmp_path: Path) -> None:
    """Two Basler cameras fired by software, NatNet mocap, and a webcam (read from a video file)
    running free beside them."""
    require_module("pypylon", "pypylon")
    require_module("natnet", "natnet")
    require_module("cv2", "opencv-python-headless")
    with NatNetEmulator(rate_hz=120.0) as emu:
        cell = cell_file(tmp_path, emu.address[1], webcam_video(tmp_path))
        made = run("-m", "raas.policy.examples", "--cell", str(cell), str(tmp_path / "bundles"))
        assert made.returncode == 0, made.stderr
        bundle = next((tmp_path / "bundles").iterdir())
        stats_path = tmp_path / "stats.json"
        proc = run(
            "-m", "raas.cli", "run", "--config", str(cell), "--duration", "2", "--no-rt",
            "--quiet", "--policy", str(bundle), "--stats-json", str(stats_path),
        )  # fmt: skip
        frames_sent = emu.frames_sent
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "trigger pylon-software; mocap natnet; cameras left pylon, right pylon, top uvc" in (
        proc.stdout
    )
    stats = json.loads(stats_path.read_text())
    assert stats["cycles"]["run"] == 25
    assert stats["config"]["controller"].startswith("policy:")
    assert set(stats["sources"]) == {
        "hand",
        "trigger",
        "mocap",
        "cameras.left",
        "cameras.right",
        "cameras.top",
    }
    # every source delivered: at most a few cycles stale (a loaded shared machine can make one
    # frame miss its 60 ms deadline; a source that never delivered is stale on every cycle)
    for name, src in stats["sources"].items():
        assert src["stale_cycles"] <= 5, (name, src)
    assert frames_sent > 0


def test_raasd_devices_probes_the_emulated_cell(tmp_path: Path) -> None:
    require_module("pypylon", "pypylon")
    require_module("natnet", "natnet")
    with NatNetEmulator() as emu:
        cell = cell_file(tmp_path, emu.address[1])
        proc = run("-m", "raas.cli", "devices", "--config", str(cell))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "0815-0000" in out and "0815-0001" in out
    assert "raas NatNet emulator" in out


def test_raasd_eval_scores_a_bundle_on_the_emulated_cell(tmp_path: Path) -> None:
    require_module("pypylon", "pypylon")
    require_module("natnet", "natnet")
    with NatNetEmulator(rate_hz=120.0) as emu:
        cell = cell_file(tmp_path, emu.address[1])
        made = run("-m", "raas.policy.examples", "--cell", str(cell), str(tmp_path / "bundles"))
        assert made.returncode == 0, made.stderr
        bundle = next((tmp_path / "bundles").iterdir())
        report = tmp_path / "eval.json"
        proc = run(
            "-m", "raas.cli", "eval", "--config", str(cell), "--episodes", "1",
            "--goal-timeout", "2", "--no-rt", "--quiet", "--json", str(report), str(bundle),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the policy reads no object pose" in proc.stdout  # a hand-only example bundle
    assert "episode 1/1" in proc.stdout
    assert report.exists()
