"""What the control loop collects from: a Source yields one Sample per cycle, without blocking.

The loop triggers every device at t_k, then polls its sources until each has the sample for
cycle k or its per-source deadline passes (then the source is stale for that cycle and the loop
keeps the previous sample, with its age). `fileno()` lets the loop sleep in poll(2) on all
sources at once instead of spinning.

Optional: `newest() -> Sample | None`, the newest sample received of any cycle. A source that
offers it lets the loop take an answer that came after its cycle's deadline (a slow link, a busy
machine) instead of a sample that keeps getting older; the loop marks that reading `late`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(slots=True)
class Sample:
    """Common header of every sample.

    cycle:      the cycle whose trigger produced it (-1 when the device is free-running)
    capture_ns: when the device captured it, on the host's CLOCK_MONOTONIC (sim time in lockstep):
                the device's own stamp mapped to host time by the driver's ClockMapper
                (raas_drivers.clock_sync; docs/clocks.md), or the host arrival time for a device
                without a clock
    device_ns:  the device's own stamp of the capture, in its own clock (ns), as the device sent
                it (unwrapped); None when the device has no clock of its own
    """

    cycle: int
    capture_ns: int
    device_ns: int | None = field(default=None, kw_only=True)


@runtime_checkable
class Source(Protocol):
    """A device output the loop collects each cycle."""

    @property
    def source_name(self) -> str: ...

    def fileno(self) -> int:
        """A file descriptor that becomes readable when poll() may have something new."""
        ...

    def poll(self, cycle: int) -> Sample | None:
        """Drain what arrived; return the sample for `cycle` if it is there, else None.

        Never blocks. Raises DeviceLostError when the link is gone."""
        ...
