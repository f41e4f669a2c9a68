"""Start the recorder process and the tap that feeds it; stop both afterwards."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TextIO

from raas.recording.config import RecordingConfig
from raas.recording.layout import RecordLayout
from raas.recording.tap import RecordingPublisher

READY_TIMEOUT_S = 20.0


@contextlib.contextmanager
def run_recorder(
    cfg: RecordingConfig,
    layout: RecordLayout,
    *,
    now_ns: Callable[[], int],
    static_metadata: Mapping[str, str] | None = None,
    avoid_cpus: tuple[int, ...] = (),
    err: TextIO | None = None,
) -> Iterator[RecordingPublisher]:
    """The recorder process (`python -m raas.recording.process`) and its tap in this process.

    The process is a fresh interpreter, not a fork: it inherits none of the loop's heap, locks
    or real-time settings (it also resets its scheduling itself, see process.py)."""
    tmp = Path(tempfile.mkdtemp(prefix="raas-rec-"))
    eps = {name: f"ipc://{tmp / name}" for name in ("cycles", "frames", "status")}
    cmd = [sys.executable, "-m", "raas.recording.process"]
    cmd += ["--cycles", eps["cycles"], "--frames", eps["frames"], "--status", eps["status"]]
    cmd += ["--config", cfg.model_dump_json()]
    cmd += ["--avoid-cpus", ",".join(str(c) for c in avoid_cpus)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    tap: RecordingPublisher | None = None
    try:
        tap = RecordingPublisher(
            layout,
            cycles_endpoint=eps["cycles"],
            frames_endpoint=eps["frames"],
            status_endpoint=eps["status"],
            directory=cfg.directory,
            now_ns=now_ns,
            static_metadata=static_metadata,
            queue_cycles=cfg.queue_cycles,
            queue_frames=cfg.queue_frames,
            record_cameras=cfg.cameras,
            err=err,
        )
        tap.recorder_pid = tap.wait_ready(READY_TIMEOUT_S, lambda: proc.poll() is None)
        yield tap
    finally:
        if tap is not None:
            tap.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
