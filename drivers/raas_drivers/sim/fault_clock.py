"""The rig's fault clock (RigConfig.faults): when the scheduled sensor faults happen.

It starts at the first trigger pulse, or, with `faults.start_file`, once that file exists (so a
test can bring the robot into a phase first, then start the clock). It counts CLOCK_MONOTONIC
in both rig clocks: the faults are about the wall-clock life of the processes. The rig and the
camera process each run one; the camera process's first render request is the first trigger's.
"""

from __future__ import annotations

from pathlib import Path

from raas_drivers.sim.config import RigFaults

FILE_CHECK_NS = 10_000_000  # look for the start file at most every 10 ms


class FaultClock:
    def __init__(self, faults: RigFaults) -> None:
        self.faults = faults
        self.start_ns: int | None = None
        self._next_check_ns = 0
        self.fired: set[str] = set()  # faults that already happened (recorded once)

    @property
    def started(self) -> bool:
        return self.start_ns is not None

    def poll(self, now_ns: int) -> float | None:
        """Call on every trigger: starts the clock when due; the elapsed seconds or None."""
        if self.start_ns is None:
            path = self.faults.start_file
            if path is None:
                self.start_ns = now_ns
            elif now_ns >= self._next_check_ns:
                self._next_check_ns = now_ns + FILE_CHECK_NS
                if Path(path).exists():
                    self.start_ns = now_ns
        return self.elapsed(now_ns)

    def elapsed(self, now_ns: int) -> float | None:
        return None if self.start_ns is None else (now_ns - self.start_ns) * 1e-9

    def due(self, at_s: float | None, now_ns: int) -> bool:
        """True while the fault scheduled at `at_s` is in effect."""
        return self.faults.active(at_s, self.elapsed(now_ns))

    def first(self, kind: str) -> bool:
        """True once per kind: the moment to record that the fault happened."""
        if kind in self.fired:
            return False
        self.fired.add(kind)
        return True
