"""Clocks the loop runs on.

- MonotonicClock: CLOCK_MONOTONIC, the realtime clock. Waits sleep to just before the deadline
  and spin the rest (sleep-then-spin), because a sleep alone overshoots by tens of microseconds
  to milliseconds depending on the scheduler.
- LockstepClock: simulated time. Time moves only when the loop waits for the next grid point;
  waiting for device answers blocks on the real sockets (with a wall-clock timeout) while sim
  time stands still, so no source is ever stale and runs are deterministic.
- FakeClock: virtual time for unit tests; `advance()` injects an overrun.

`wait_readable(fds, deadline_ns)` waits until one of the file descriptors is readable or the
deadline passes (in this clock's time). It returns False when the wait ran into the deadline.
"""

from __future__ import annotations

import select
import time
from collections.abc import Sequence
from typing import Protocol

from raas.errors import DeviceTimeoutError

_NS = 1_000_000_000


class Clock(Protocol):
    #: True when deadlines are on the wall clock (sources can go stale, cycles can be missed).
    realtime: bool

    def now_ns(self) -> int: ...

    def stopwatch_ns(self) -> int:
        """A clock for phase durations (wall time, also in lockstep)."""
        ...

    def sleep_until(self, deadline_ns: int) -> None: ...

    def wait_readable(self, fds: Sequence[int], deadline_ns: int) -> bool: ...


class MonotonicClock:
    """CLOCK_MONOTONIC with sleep-then-spin waits.

    spin_ns: how long before a deadline the loop stops sleeping and spins. Larger is more precise
    and burns more CPU; 200 us suits SCHED_FIFO, 1 ms suits the normal scheduler.
    """

    realtime = True

    def __init__(self, spin_ns: int = 200_000) -> None:
        self.spin_ns = spin_ns

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def stopwatch_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until(self, deadline_ns: int) -> None:
        now = time.monotonic_ns
        remaining = deadline_ns - now() - self.spin_ns
        if remaining > 0:
            time.sleep(remaining / _NS)
        while now() < deadline_ns:
            pass

    def wait_readable(self, fds: Sequence[int], deadline_ns: int) -> bool:
        remaining = deadline_ns - time.monotonic_ns()
        if remaining <= 0:
            return False
        if remaining <= self.spin_ns:
            # Close to the deadline: poll without sleeping (select rounds up to the timer slack).
            ready, _, _ = select.select(fds, [], [], 0)
            return bool(ready)
        ready, _, _ = select.select(fds, [], [], (remaining - self.spin_ns // 2) / _NS)
        return bool(ready) or time.monotonic_ns() < deadline_ns


class LockstepClock:
    """Simulated time for the lockstep rig: t moves only in sleep_until."""

    realtime = False

    def __init__(self, start_ns: int = 0, device_timeout_s: float = 10.0) -> None:
        self._t = start_ns
        self.device_timeout_s = device_timeout_s

    def now_ns(self) -> int:
        return self._t

    def stopwatch_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until(self, deadline_ns: int) -> None:
        self._t = max(self._t, deadline_ns)

    def wait_readable(self, fds: Sequence[int], deadline_ns: int) -> bool:
        ready, _, _ = select.select(fds, [], [], self.device_timeout_s)
        if not ready:
            raise DeviceTimeoutError(
                f"no device answered within {self.device_timeout_s:.1f} s of wall time"
            )
        return True


class FakeClock:
    """Virtual time for tests. Waits jump; wait_readable steps by `tick_ns` toward the deadline."""

    realtime = True

    def __init__(self, start_ns: int = 1_000 * _NS, tick_ns: int = 50_000) -> None:
        self._t = start_ns
        self.tick_ns = tick_ns
        self.sleeps: list[int] = []

    def now_ns(self) -> int:
        return self._t

    def stopwatch_ns(self) -> int:
        return self._t

    def advance(self, dt_ns: int) -> None:
        self._t += dt_ns

    def sleep_until(self, deadline_ns: int) -> None:
        self.sleeps.append(deadline_ns)
        self._t = max(self._t, deadline_ns)

    def wait_readable(self, fds: Sequence[int], deadline_ns: int) -> bool:
        if self._t >= deadline_ns:
            return False
        self._t = min(deadline_ns, self._t + self.tick_ns)
        return True
