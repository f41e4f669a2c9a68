"""Bring a cell's metrics up: create the board, start the exporter process, yield the publisher.

The composition (raas.daemon.cell_outputs) hands over what a board needs: the loop's rate, the
cell's sources and cameras, its devices and the loop's CPUs.

On exit the board is marked STOPPED (the dashboard says so for its last moments), the exporter
is stopped and the board file removed.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from raas.metrics.board import Board, BoardLayout, default_board_path, thumbnail_geometry
from raas.metrics.config import MetricsConfig
from raas.metrics.errors import ExporterStartError
from raas.metrics.publisher import MetricsPublisher, StatsDevice

_READY = re.compile(r"serving (http://\S+)")


class ExporterProcess:
    """`python -m raas.metrics.exporter` as a child; `url` once it listens."""

    def __init__(
        self, board: Path, host: str, port: int, cpus: Sequence[int], timeout_s: float
    ) -> None:
        cmd = [sys.executable, "-m", "raas.metrics.exporter", "--board", str(board)]
        cmd += ["--host", host, "--port", str(port), "--parent", str(os.getpid())]
        if cpus:
            cmd += ["--cpus", ",".join(str(c) for c in cpus)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.url = self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if sel.select(left):
                    line = self.proc.stdout.readline()
                    if not line:
                        break
                    if m := _READY.search(line):
                        return m.group(1)
        self.stop()
        code = self.proc.returncode
        raise ExporterStartError(
            f"the metrics exporter did not come up within {timeout_s:g} s (exit code {code}; "
            "is the port taken?)"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def layout_for(
    cfg: MetricsConfig,
    *,
    rate_hz: float,
    sources: Sequence[str],
    cameras: Sequence[str] = (),
    camera_size: tuple[int, int] = (0, 0),
) -> BoardLayout:
    """The board for a cell: its sources, its cameras' thumbnails (camera_size is (w, h))."""
    shape, stride = (0, 0), 1
    if cameras:
        shape, stride = thumbnail_geometry(camera_size[0], camera_size[1], cfg.thumbnail_px)
    labels = {"robot": cfg.robot} if cfg.robot else {}
    return BoardLayout(
        rate_hz=rate_hz,
        sources=tuple(sources),
        cameras=tuple(cameras),
        thumb_shape=shape,
        thumb_stride=stride,
        labels=labels,
    )


@contextmanager
def start_metrics(
    cfg: MetricsConfig,
    layout: BoardLayout,
    devices: Sequence[StatsDevice] = (),
    *,
    loop_cpus: Sequence[int] = (),
    board_path: Path | None = None,
) -> Iterator[MetricsPublisher]:
    """Create the board, start the exporter (off the loop's CPUs), yield the publisher."""
    path = board_path or default_board_path()
    board = Board.create(path, layout)
    exporter: ExporterProcess | None = None
    try:
        others = sorted(set(os.sched_getaffinity(0)) | set(range(os.cpu_count() or 1)))
        others = [c for c in others if c not in set(loop_cpus)] or others
        exporter = ExporterProcess(path, cfg.host, cfg.port, others, cfg.start_timeout_s)
        pub = MetricsPublisher(board, devices, slow_hz=cfg.slow_hz, url=exporter.url)
        try:
            yield pub
        finally:
            pub.close()
    finally:
        if exporter is not None:
            exporter.stop()
        path.unlink(missing_ok=True)
        board.close()
