"""Link statistics: round-trip percentiles from the fixed log-bucket histogram are within one
bucket of numpy's exact ones over the last RTT_WINDOW samples, the maximum is exact over that
window, and as_dict() is cheap (its cost is printed, not asserted: the VM is shared)."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from raas_firmware_bridge.link import SerialLink
from raas_firmware_bridge.messages import Heartbeat
from raas_firmware_bridge.stats import (
    RTT_BUCKETS,
    RTT_WINDOW,
    LinkStats,
    bucket_bounds,
    rtt_bucket,
)

KEYS = {
    "link_frames_sent",
    "link_frames_received",
    "link_bytes_sent",
    "link_bytes_received",
    "link_crc_errors",
    "link_bad_frames",
    "link_resyncs",
    "link_drops",
    "link_timeouts",
    "link_retries",
    "link_faults",
    "link_consecutive_bad",
    "link_rtt_count",
    "link_rtt_p50_us",
    "link_rtt_p99_us",
    "link_rtt_max_us",
}


def _samples(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "lognormal":  # a pty round trip: ~200 us with a long tail
        x = rng.lognormal(np.log(200e3), 0.9, n)
    elif kind == "bimodal":  # most answers fast, some after a descheduling
        x = np.where(rng.random(n) < 0.9, rng.normal(150e3, 20e3, n), rng.normal(4e6, 1e6, n))
    else:  # spread over the whole range, under 1 us to over 1 s
        x = np.exp(rng.uniform(np.log(100), np.log(3e9), n))
    out: np.ndarray = np.maximum(x, 1).astype(np.int64)
    return out


def test_buckets_cover_the_range_in_order() -> None:
    edges = [bucket_bounds(b) for b in range(RTT_BUCKETS)]
    for (lo, hi), (lo2, _) in itertools.pairwise(edges):
        assert lo < hi == lo2
    for ns in (0, 1, 1023, 1024, 1151, 1152, 150_000, 2**30 - 1, 2**30, 10**12):
        lo, hi = bucket_bounds(rtt_bucket(ns))
        assert lo <= ns < hi, ns
    # 8 buckets per octave: a bucket is at most 12.5 % of its lower edge wide
    lo, hi = bucket_bounds(rtt_bucket(200_000))
    assert (hi - lo) / lo <= 0.125


@pytest.mark.parametrize("kind", ["lognormal", "bimodal", "wide"])
def test_percentiles_of_10k_round_trips_within_one_bucket(kind: str) -> None:
    link = SerialLink("loop://", name="hand")
    samples = _samples(kind, 10_000, seed=len(kind))
    for ns in samples:
        link.stats.add_rtt(int(ns))
    window = samples[-RTT_WINDOW:]
    d = link.stats.as_dict()
    assert set(d) == KEYS
    assert d["link_rtt_count"] == 10_000
    true_p50, true_p99 = np.percentile(window, [50, 99])
    for key, true in (("link_rtt_p50_us", true_p50), ("link_rtt_p99_us", true_p99)):
        got_bucket = rtt_bucket(round(d[key] * 1e3))
        assert abs(got_bucket - rtt_bucket(int(true))) <= 1, (key, d[key], true / 1e3)
    assert d["link_rtt_max_us"] == pytest.approx(window.max() / 1e3)

    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        link.stats.as_dict()
    per_call_us = (time.perf_counter() - t0) / n * 1e6
    print(f"\n{kind}: LinkStats.as_dict() {per_call_us:.1f} us per call")


def test_maximum_leaves_with_its_sample() -> None:
    stats = LinkStats()
    stats.add_rtt(50_000_000)  # one 50 ms spike
    for _ in range(RTT_WINDOW - 1):
        stats.add_rtt(100_000)
    assert stats.as_dict()["link_rtt_max_us"] == 50_000.0
    stats.add_rtt(90_000)  # the spike leaves the window
    d = stats.as_dict()
    assert d["link_rtt_max_us"] == 100.0
    assert d["link_rtt_p99_us"] <= 100.0  # never above the maximum
    stats.add_rtt(300_000)
    assert stats.as_dict()["link_rtt_max_us"] == 300.0


def test_no_round_trip_no_percentiles_and_real_round_trips_count() -> None:
    link = SerialLink("loop://", name="loop")
    assert "link_rtt_p50_us" not in link.stats.as_dict()
    link.open()
    for k in range(20):
        link.send(Heartbeat(k, 0))
        link.track(("hb", k))
        for msg in link.receive():
            assert isinstance(msg, Heartbeat)
            assert link.answered(("hb", msg.time_us)) is not None
    d = link.stats.as_dict()
    assert d["link_rtt_count"] == 20
    assert 0 < d["link_rtt_p50_us"] <= d["link_rtt_p99_us"] <= d["link_rtt_max_us"]
    link.close()
