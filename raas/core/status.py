"""The live one-line status: rate, lateness p99, misses, fallbacks, state."""

from __future__ import annotations

import sys
from typing import TextIO

import numpy as np

from raas.core.timing import TimingLog


class StatusLine:
    def __init__(self, interval_ns: int, stream: TextIO | None = None) -> None:
        self.interval_ns = interval_ns
        self.stream = stream if stream is not None else sys.stderr
        self._last_ns = -1
        self._last_count = 0
        self._tty = self.stream.isatty()
        self.lines = 0

    def due(self, now_ns: int) -> bool:
        return self._last_ns < 0 or now_ns - self._last_ns >= self.interval_ns

    def show(
        self, now_ns: int, log: TimingLog, missed: int, fallbacks: int, stale: int, state: str
    ) -> None:
        if self._last_ns < 0:
            self._last_ns, self._last_count = now_ns, log.count
            return
        dt = now_ns - self._last_ns
        n = log.count - self._last_count
        rate = n * 1e9 / dt if dt > 0 else 0.0
        late = log.recent("lateness", max(n, 1))
        p99 = float(np.percentile(late, 99)) / 1e3 if late.size else 0.0
        text = (
            f"[raasd] {state:<8} cycle {log.count:>8d} | {rate:8.2f} Hz | "
            f"lateness p99 {p99:8.1f} us | missed {missed} | fallbacks {fallbacks} | "
            f"stale {stale}"
        )
        end = "\r" if self._tty else "\n"
        self.stream.write(text + end)
        self.stream.flush()
        self.lines += 1
        self._last_ns, self._last_count = now_ns, log.count

    def close(self) -> None:
        if self._tty and self.lines:
            self.stream.write("\n")
            self.stream.flush()
