"""A full disk stops the recording with a clear error; the loop keeps its timing."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from raas_client.report import format as fmt
from raas_client.report.reader import RecordingFile
from recording_helpers import cell_config, record

from tests.conftest import require

pytestmark = [pytest.mark.system]


def _check_stopped_cleanly(stats: dict[str, Any], path: Path, err: str, cycles: int) -> None:
    # The loop ran its whole duration.
    assert stats["cycles"]["run"] == cycles
    # The error is clear and names the cause.
    assert "RECORDING STOPPED" in err
    assert "disk is full" in err
    assert "the loop goes on" in err
    # The file keeps what was written before: readable, in order, some but not all cycles.
    rf = RecordingFile(path)
    recorded = [m.data["cycle"] for m in rf.messages([fmt.TOPIC_OBSERVATION])]
    assert 0 < len(recorded) < cycles
    assert recorded == list(range(len(recorded)))
    assert fmt.META_SESSION in rf.metadata


@pytest.mark.slow
def test_size_limit_stops_the_recording_not_the_loop(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Realtime at 25 Hz (no cameras: their collect phase would dominate the timing on a
    loaded 2-core machine): the recording fills its limit after a few chunks, the loop runs on
    to the end of its duration, its publish phase never waiting on the recorder."""
    limit = 20 * 1024
    cfg = cell_config(
        tmp_path / "rec",
        clock="realtime",
        rate_hz=25.0,
        duration_s=3.0,
        recording={"max_bytes": limit, "flush_interval_s": 0.1},
    )
    outcome, path = record(cfg)
    assert outcome.exit_code == 0
    err = capfd.readouterr().err
    _check_stopped_cleanly(outcome.stats, path, err, cycles=75)
    # The tap never held the loop up: its publish phase stayed far below the 40 ms period.
    # (Missed cycles are not asserted to be 0: on a loaded 2-core test machine the rig's
    # processes compete for the CPU; bench/bench_recording.py measures the timing cost.)
    assert outcome.stats["phases_us"]["publish"]["max"] < 20_000
    assert outcome.stats["cycles"]["missed"] <= 3
    assert path.stat().st_size <= limit


@contextlib.contextmanager
def _tiny_tmpfs(where: Path, size: str) -> Iterator[bool]:
    where.mkdir()
    ok = (
        subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={size}",
                f"raas-{uuid.uuid4().hex[:6]}",
                str(where),
            ],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


@pytest.mark.slow
def test_a_really_full_tmpfs_stops_the_recording(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with _tiny_tmpfs(tmp_path / "tiny", "120k") as mounted:  # full well before cycle 50
        require("tmpfs", mounted, "mounting a tmpfs needs root (CAP_SYS_ADMIN)")
        cfg = cell_config(
            tmp_path / "tiny" / "rec",
            duration_s=4.0,
            cameras=1,
            recording={"flush_interval_s": 0.05, "camera_format": "png"},
        )
        outcome, path = record(cfg)
        assert outcome.exit_code == 0
        err = capfd.readouterr().err
        assert "No space left on device" in err
        _check_stopped_cleanly(outcome.stats, path, err, cycles=50)
