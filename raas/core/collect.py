"""The collect phase: poll every source until it has cycle k's sample or its deadline passes.

Never blocks past the latest per-source deadline. A source that missed its deadline is marked
stale for the cycle and keeps its previous sample with that sample's age, unless the source
offers `newest()` (the newest sample it received, of any cycle) and that is newer: an answer to
an earlier cycle that came after its own deadline. Then the reading takes it and is marked
`late` (still stale: it is not this cycle's instant, but the source is alive and the sample is
about a period old instead of ever older). On a busy machine a serial hand's answers queue behind
the kernel's tty workers for milliseconds; that is lateness, not a lost sensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from raas_drivers.errors import DeviceLostError
from raas_drivers.source import Sample, Source

from raas.core.clock import Clock
from raas.core.observation import Observation, SourceReading
from raas.errors import DeviceTimeoutError


class Collector:
    def __init__(self, clock: Clock, sources: Sequence[tuple[Source, SourceReading]]) -> None:
        self.clock = clock
        self._sources = list(sources)
        self._fds = sorted({s.fileno() for s, _ in self._sources})
        self._pending: list[tuple[Source, SourceReading]] = []
        #: the readings whose source can say what it received last, late answers included
        self._newest: list[tuple[Callable[[], Sample | None], SourceReading]] = [
            (newest, r) for s, r in self._sources if callable(newest := getattr(s, "newest", None))
        ]

    def readings(self) -> dict[str, SourceReading]:
        return {r.name: r for _, r in self._sources}

    def collect(self, obs: Observation, cycle: int, trigger_ns: int) -> None:
        """Fill `obs.sources` for `cycle`. Raises DeviceLostError from a source."""
        clock = self.clock
        pending = self._pending
        pending.clear()
        for pair in self._sources:
            pair[1].stale = True
            pair[1].late = False
            pending.append(pair)
        while pending:
            i = 0
            while i < len(pending):
                source, reading = pending[i]
                sample = source.poll(cycle)
                if sample is not None:
                    reading.sample = sample
                    reading.capture_ns = sample.capture_ns
                    device_ns = sample.device_ns
                    reading.device_ns = -1 if device_ns is None else device_ns
                    reading.arrival_ns = clock.now_ns()
                    reading.stale = False
                    reading.consecutive_stale = 0
                    pending.pop(i)
                else:
                    i += 1
            if not pending:
                break
            now = clock.now_ns()
            # Expire sources whose deadline has passed.
            i = 0
            while i < len(pending):
                reading = pending[i][1]
                deadline = trigger_ns + reading.deadline_ns
                if now >= deadline:
                    reading.stale_cycles += 1
                    reading.consecutive_stale += 1
                    pending.pop(i)
                else:
                    i += 1
            if not pending:
                break
            soonest = min(trigger_ns + r.deadline_ns for _, r in pending)
            try:
                clock.wait_readable(self._fds, soonest)
            except DeviceTimeoutError as exc:  # lockstep: name who stayed silent
                names = ", ".join(r.name for _, r in pending)
                raise DeviceLostError(names, f"no sample for cycle {cycle}: {exc}") from exc
        for newest, reading in self._newest:
            if reading.stale:
                self._take_late(newest(), reading)
        for _, reading in self._sources:
            reading.age_ns = trigger_ns - reading.capture_ns if reading.capture_ns >= 0 else -1
            if reading.stale and reading.age_ns > reading.max_age_ns:
                reading.max_age_ns = reading.age_ns
        obs.cycle = cycle

    def _take_late(self, sample: Sample | None, reading: SourceReading) -> None:
        kept = reading.sample
        if sample is None or (kept is not None and sample.cycle <= kept.cycle):
            return
        reading.sample = sample
        reading.capture_ns = sample.capture_ns
        reading.arrival_ns = self.clock.now_ns()
        reading.late = True
        reading.late_cycles += 1
