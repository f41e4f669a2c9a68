"""M bad frames in a row: the hand's link is declared dead, the loop tells the hand to hold
where it was measured and stops, and `raasd run` exits with code 3 naming the hand (the
lost-device path)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.system]


@pytest.mark.parametrize("clock", ["realtime", "lockstep"])
def test_noisy_hand_link_dies_and_raasd_exits_3(tmp_path: Path, clock: str) -> None:
    cfg = tmp_path / "cell.toml"
    # from cycle 10 on, one bit in 50 flips on the hand's line: no STATE frame survives
    cfg.write_text(
        "[rig.link]\nbit_error_rate = 0.02\nfaults_from_cycle = 10\nmax_bad_frames = 8\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "raas.cli", "run", "--sim", "--config", str(cfg),
         "--clock", clock, "--rate", "50", "--duration", "30", "--cameras", "0", "--no-rt"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "DEVICE LOST: hand" in proc.stderr
    assert "hand held where it was measured" in proc.stderr
    if clock == "realtime":
        assert "bad frames in a row (limit 8)" in proc.stderr
    else:
        # lockstep: the hand asks again after every bad frame, so the link dies the same way,
        # unless a flipped bit destroyed a frame's 0x00 delimiter: that frame then never ends,
        # nothing makes the port readable, and the lockstep clock's device timeout names the
        # hand instead (docs/protocol-serial.md, Link behaviour)
        assert (
            "bad frames in a row (limit 8)" in proc.stderr or "no device answered" in proc.stderr
        ), proc.stderr
