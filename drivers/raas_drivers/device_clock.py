"""A driver's view of its device's clock domain: the ClockMapper and the host clock it stamps with.

    clock = DeviceClock("hand")                        # realtime: host = CLOCK_MONOTONIC
    clock = DeviceClock("hand", lockstep_period_ns=P)  # lockstep: host = sim time, k * P
    sent = clock.host_ns(k)                            # when the request of cycle k left
    capture_ns = clock.observe(device_ns, sent, clock.host_ns(k))   # reply: add, then map

In lockstep the host's time is the simulated time of the cycle's grid point, `cycle * period`:
time stands still while a lockstep cycle's devices answer, so every observation of cycle k is
stamped k * period, which keeps a run deterministic.
"""

from __future__ import annotations

import time

from raas_drivers.clock_sync import ClockMapper

_SHOWN = ("offset_ns", "drift_ppm", "residual_ns", "samples")


class DeviceClock:
    def __init__(
        self,
        name: str,
        *,
        lockstep_period_ns: int | None = None,
        window: int = 256,
        latency_ns: int = 0,
        refit_interval_ns: int = 20_000_000,
    ) -> None:
        """refit_interval_ns: least device time between two fits made by `to_host`; a driver
        that calls `refit()` itself in its spare time sets it long."""
        self.name = name
        self.lockstep_period_ns = lockstep_period_ns
        self._last: tuple[int, int, int] | None = None
        self.mapper = ClockMapper(
            name, window=window, latency_ns=latency_ns, refit_interval_ns=refit_interval_ns
        )

    def host_ns(self, cycle: int) -> int:
        """The host's time now (lockstep: the grid time of `cycle`)."""
        if self.lockstep_period_ns is not None:
            return max(cycle, 0) * self.lockstep_period_ns
        return time.monotonic_ns()

    def observe(self, device_ns: int, host_before_ns: int, host_after_ns: int | None = None) -> int:
        """Add one observation and return `device_ns` mapped to host time."""
        self.mapper.add(device_ns, host_before_ns, host_after_ns)
        return self.mapper.to_host(device_ns)

    def to_host(self, device_ns: int) -> int:
        return self.mapper.to_host(device_ns)

    def exchange(self, device_ns: int, host_before_ns: int, host_after_ns: int) -> None:
        """A request/answer observation; `map` keeps this stamp inside its own exchange."""
        self.mapper.add(device_ns, host_before_ns, host_after_ns)
        self._last = (device_ns, host_before_ns, host_after_ns)

    def map(self, device_ns: int) -> int:
        """`device_ns` on the host's clock. The stamp of the latest exchange is held inside that
        exchange (it was taken between the request leaving and the answer being read, whatever
        the fit says; the fit may still rest on older exchanges only)."""
        host = self.mapper.to_host(device_ns)
        last = self._last
        if last is not None and last[0] == device_ns:
            host = min(max(host, last[1]), last[2])
        return host

    def stats(self) -> dict[str, float]:
        """The mapper's offset, drift, residual and window fill, keys prefixed `clock_` (for a
        driver's stats(); the metrics board has a fixed number of slots for them)."""
        s = self.mapper.stats()
        return {f"clock_{k}": s[k] for k in _SHOWN}
