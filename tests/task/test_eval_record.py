"""`raasd eval --record DIR`: one MCAP recording per episode, with the evaluation's events
(episode start, every success, episode end), that `raas report` turns into its plots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from raas_client.report import format as fmt
from raas_client.report.reader import RecordingFile

pytestmark = [pytest.mark.slow, pytest.mark.system]


def test_eval_records_each_episode_with_its_events(small_bundle_dir: Path, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    # A success threshold of pi counts every judged cycle as a success: each episode ends
    # after 4 of them (max_successes), so the recording holds success events whatever the
    # random weights do.
    cmd = [sys.executable, "-m", "raas.cli", "eval", str(small_bundle_dir), "--sim", "--no-rt"]
    cmd += ["--episodes", "2", "--threshold", "3.14159", "--max-successes", "4"]
    cmd += ["--goal-timeout", "5", "--record", str(rec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = sorted(rec.glob("*.mcap"), key=lambda p: p.name.rsplit("-ep", 1)[1])
    assert [f.name.rsplit("-", 1)[1] for f in files] == ["ep1.mcap", "ep2.mcap"]
    assert f"recording to {files[0]}" in proc.stdout

    for episode, path in enumerate(files):
        rf = RecordingFile(path)
        events = [m.data for m in rf.messages([fmt.TOPIC_EVENTS])]
        session = rf.metadata[fmt.META_SESSION]
        assert session["mode"] == "eval" and session["bundle"] == "small"
        assert session["episode"] == str(episode)
        assert len(session["bundle_sha256"]) == 64
        assert path.name.startswith(f"eval-{session['bundle_sha256'][:12]}-")
        task = [e for e in events if e["kind"] in ("episode_start", "success", "episode_end")]
        kinds = [e["kind"] for e in task]
        assert kinds == ["episode_start", "success", "success", "success", "success", "episode_end"]
        end = task[-1]["data"]
        assert end["episode"] == episode and end["successes"] == 4
        assert end["reason"] == "max_successes"
        assert rf.metadata[fmt.META_RECORDING]["status"] == "complete"

    html = tmp_path / "ep1.html"
    report = [sys.executable, "-m", "raas_client.cli", "report", str(files[0]), "-o", str(html)]
    proc = subprocess.run(report, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    page = html.read_text()
    assert ">Successes over time</h2>" in page and "eval" in page
