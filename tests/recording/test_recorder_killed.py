"""A SIGKILLed recorder leaves a file readable up to its last chunk; the tap never blocks."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import pytest
from raas_client.report import format as fmt
from raas_client.report.reader import RecordingFile
from recording_helpers import SyntheticSteps, synthetic_layout

from raas.recording.config import RecordingConfig
from raas.recording.launch import run_recorder

pytestmark = [pytest.mark.system]


def _file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def test_sigkilled_recorder_leaves_a_readable_file(tmp_path: Path) -> None:
    cfg = RecordingConfig(
        enabled=True, directory=tmp_path, chunk_kib=16, flush_interval_s=0.05, queue_cycles=256
    )
    steps = SyntheticSteps()
    err = io.StringIO()
    with run_recorder(cfg, synthetic_layout(), now_ns=lambda: 10**9, err=err) as tap:
        tap.close_timeout_s = 2.0
        path = tap.start_session("killed", {"user": "tester"})
        assert path is not None
        k = 0
        deadline = time.monotonic() + 60
        # Record until a few chunks are on disk, at most ~1000 cycles/s like a 1 kHz loop.
        while _file_size(path) < 200_000 and time.monotonic() < deadline:
            tap.publish(steps.next(k))
            k += 1
            if k % 100 == 0:
                time.sleep(0.05)
        assert tap.recorder_pid is not None
        os.kill(tap.recorder_pid, signal.SIGKILL)
        time.sleep(0.2)

        # The loop side goes on: publishing never blocks, what cannot be queued is counted.
        t0 = time.monotonic()
        for j in range(2000):
            tap.publish(steps.next(k + j))
        assert time.monotonic() - t0 < 10  # 2000 non-blocking sends; a blocked send never ends
        assert tap.dropped_cycles > 0
        sent_before_kill = k

    rf = RecordingFile(path)
    cycles = [m.data["cycle"] for m in rf.messages([fmt.TOPIC_OBSERVATION])]
    assert rf.truncated  # no footer: the writer never finished
    assert rf.metadata[fmt.META_SESSION]["user"] == "tester"
    assert len(cycles) > 100
    assert cycles == list(range(len(cycles)))  # readable, in order, up to the last chunk
    assert len(cycles) <= sent_before_kill
    assert "did not confirm closing" in err.getvalue()


def test_publish_never_waits_for_a_recorder_that_does_not_read(tmp_path: Path) -> None:
    """A stopped (SIGSTOP) recorder: the queue fills, cycles are dropped and counted."""
    cfg = RecordingConfig(enabled=True, directory=tmp_path, queue_cycles=64)
    steps = SyntheticSteps()
    with run_recorder(cfg, synthetic_layout(), now_ns=lambda: 10**9, err=io.StringIO()) as tap:
        tap.close_timeout_s = 20.0
        path = tap.start_session("stalled", {})
        assert path is not None and tap.recorder_pid is not None
        os.kill(tap.recorder_pid, signal.SIGSTOP)
        try:
            worst = 0
            for k in range(3000):
                t0 = time.perf_counter_ns()
                tap.publish(steps.next(k))
                worst = max(worst, time.perf_counter_ns() - t0)
            assert tap.dropped_cycles > 2000
            assert tap.sent_cycles + tap.dropped_cycles == 3000
            assert worst < 50_000_000  # never waits (a blocked send would hang here forever)
        finally:
            os.kill(tap.recorder_pid, signal.SIGCONT)
        time.sleep(1.0)  # the recorder catches up; the next cycles get through again
        dropped = tap.dropped_cycles
        for k in range(3000, 3010):
            tap.publish(steps.next(k))
        assert tap.dropped_cycles == dropped
    rf = RecordingFile(path)
    timing = [m.data for m in rf.messages([fmt.TOPIC_TIMING])]
    closing = rf.metadata[fmt.META_RECORDING]
    assert int(closing["dropped_cycles"]) == tap.dropped_cycles  # the drop count is in the file
    assert len(timing) == tap.sent_cycles
    assert timing[-1]["dropped_before"] > 0  # and every later cycle carries the count so far
