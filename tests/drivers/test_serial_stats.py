"""The serial drivers' Device.stats(): the same keys as always, round-trip percentiles within one
histogram bucket of the exact ones, and cheap enough for the loop's metrics publisher (the cost
is printed, not asserted: the VM is shared)."""

from __future__ import annotations

import time

import numpy as np
from raas_drivers.hand.serial_driver import SerialHandDriver
from raas_drivers.trigger.serial_driver import SerialTriggerDriver
from raas_firmware_bridge.stats import RTT_WINDOW, rtt_bucket


def test_stats_of_10k_round_trips_are_right_and_cheap() -> None:
    rng = np.random.default_rng(7)
    rtts = np.maximum(rng.lognormal(np.log(250e3), 1.0, 10_000), 1).astype(np.int64)
    for device in (SerialHandDriver("hand", "loop://"), SerialTriggerDriver("trigger", "loop://")):
        for ns in rtts:
            device.link.stats.add_rtt(int(ns))
        stats = device.stats()
        assert stats["link_open"] == 0.0  # never connected
        assert stats["link_rtt_count"] == 10_000
        window = rtts[-RTT_WINDOW:]
        for key, q in (("link_rtt_p50_us", 50), ("link_rtt_p99_us", 99)):
            true = float(np.percentile(window, q))
            assert abs(rtt_bucket(round(stats[key] * 1e3)) - rtt_bucket(int(true))) <= 1, key
        assert stats["link_rtt_max_us"] == window.max() / 1e3
        n = 2000
        t0 = time.perf_counter()
        for _ in range(n):
            device.stats()
        print(f"\n{device.name}.stats(): {(time.perf_counter() - t0) / n * 1e6:.1f} us per call")
