"""The clock mapper: offset, drift, wrapping counters, delayed replies, residual, clock jumps."""

from __future__ import annotations

import numpy as np
import pytest
from raas_drivers.clock_sync import ClockMapper, TickUnwrapper
from raas_drivers.errors import DriverConfigError

PERIOD = 80_000_000  # 12.5 Hz
HOST0 = 5_000_000_000_000
OFFSET = -3_141_592_653_589  # host - device at HOST0 (device clock runs ahead)


def device_of(host_ns: int, drift_ppm: float) -> int:
    """The true device clock: HOST0 - OFFSET at HOST0, running drift_ppm faster than the host."""
    d0 = HOST0 - OFFSET
    return d0 + round((host_ns - HOST0) * (1.0 + drift_ppm * 1e-6))


def exchanges(
    mapper: ClockMapper,
    n: int,
    drift_ppm: float,
    rng: np.random.Generator,
    delayed: float = 0.0,
) -> None:
    """n request/response exchanges at 12.5 Hz with jittery, symmetric links; a share `delayed`
    of replies is held up by 2-20 ms (a busy USB buffer)."""
    for k in range(n):
        before = HOST0 + k * PERIOD
        up = 100_000 + int(rng.exponential(20_000))
        down = 100_000 + int(rng.exponential(20_000))
        if rng.random() < delayed:
            down += int(rng.uniform(2e6, 20e6))
        mapper.add(device_of(before + up, drift_ppm), before, before + up + down)


def errors_after(mapper: ClockMapper, n: int, drift_ppm: float) -> np.ndarray:
    """Mapping error of device stamps within the last exchange period (what a driver maps)."""
    last = HOST0 + (n - 1) * PERIOD
    hosts = last + np.linspace(0, PERIOD, 17).astype(np.int64)
    return np.array([mapper.to_host(device_of(int(h), drift_ppm)) - int(h) for h in hosts])


def test_offset_and_drift_are_found() -> None:
    rng = np.random.default_rng(3)
    m = ClockMapper("hand")
    exchanges(m, 250, 50.0, rng)
    err = errors_after(m, 250, 50.0)
    assert m.ready
    assert np.abs(err).max() < 20_000  # 20 us against a 100 us symmetric link jitter
    stats = m.stats()
    assert stats["drift_ppm"] == pytest.approx(50.0, abs=1.0)
    # offset (host - device) at the latest observation: the device gained 50 ppm of the 20 s run
    expected = OFFSET - 50e-6 * 249 * PERIOD
    assert stats["offset_ns"] == pytest.approx(expected, abs=20_000)
    assert stats["samples"] == 250


def test_delayed_replies_do_not_move_the_fit() -> None:
    clean = ClockMapper("clean")
    noisy = ClockMapper("noisy")
    exchanges(clean, 250, -30.0, np.random.default_rng(4))
    exchanges(noisy, 250, -30.0, np.random.default_rng(4), delayed=0.2)
    assert np.abs(errors_after(noisy, 250, -30.0)).max() < 20_000
    assert noisy.stats()["drift_ppm"] == pytest.approx(-30.0, abs=2.0)


def test_naive_midpoint_is_spoiled_by_delayed_replies() -> None:
    """The peer the fit must beat: the last exchange's midpoint is off by half the delay."""
    rng = np.random.default_rng(5)
    before = HOST0
    dev = device_of(before + 100_000, 0.0)
    after = before + 200_000 + 10_000_000  # a reply held up by 10 ms
    m = ClockMapper("one", min_samples=1)
    m.add(dev, before, after)
    assert abs(m.to_host(dev) - (before + 100_000)) > 4_000_000
    exchanges(m, 100, 0.0, rng, delayed=0.3)
    assert abs(m.to_host(dev) - (before + 100_000)) < 20_000


def test_residual_reports_the_link_jitter() -> None:
    tight = ClockMapper("tight")
    loose = ClockMapper("loose")
    rng = np.random.default_rng(6)
    for k in range(200):
        before = HOST0 + k * PERIOD
        tight.add(device_of(before + 50_000, 0.0), before, before + 100_000)
        # device stamp anywhere in a 2 ms exchange: up to 1 ms either side of the midpoint
        up = int(rng.uniform(0, 2_000_000))
        loose.add(device_of(before + up, 0.0), before, before + 2_000_000)
    assert tight.stats()["residual_ns"] < 2_000
    assert 200_000 < loose.stats()["residual_ns"] < 1_500_000


def test_pushed_readings_fit_the_lower_envelope() -> None:
    """One-way stamps: latency >= 0, so the fit follows the least delayed frames."""
    rng = np.random.default_rng(7)
    m = ClockMapper("mocap", latency_ns=300_000)
    for k in range(250):
        capture = HOST0 + k * PERIOD
        latency = 300_000 + int(rng.exponential(200_000))
        if rng.random() < 0.1:
            latency += 8_000_000
        m.add(device_of(capture, 50.0), capture + latency)
    err = errors_after(m, 250, 50.0)
    assert np.abs(err).max() < 30_000
    assert m.stats()["drift_ppm"] == pytest.approx(50.0, abs=2.0)


def test_ready_needs_min_samples_and_unfitted_mapping_refuses() -> None:
    m = ClockMapper("cam", min_samples=4)
    with pytest.raises(LookupError):
        m.to_host(0)
    for k in range(3):
        m.add(k * PERIOD, HOST0 + k * PERIOD)
    assert not m.ready
    assert m.to_host(0) == HOST0  # offset only until ready
    m.add(3 * PERIOD, HOST0 + 3 * PERIOD)
    assert m.ready


def test_a_clock_jump_restarts_the_window() -> None:
    m = ClockMapper("hand")
    exchanges(m, 50, 0.0, np.random.default_rng(8))
    assert m.stats()["resets"] == 0
    # the firmware rebooted: its counter starts again near zero
    before = HOST0 + 50 * PERIOD
    m.add(1_000, before, before + 200_000)
    stats = m.stats()
    assert stats["resets"] == 1
    assert stats["samples"] == 1
    assert abs(m.to_host(1_000) - (before + 100_000)) < 1_000


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(DriverConfigError, match="window"):
        ClockMapper("hand", window=1)
    with pytest.raises(DriverConfigError, match="segments"):
        ClockMapper("hand", window=16, segments=32)
    with pytest.raises(DriverConfigError, match="modulus"):
        TickUnwrapper(1, 1_000_000)


def test_unwrap_a_15_bit_millisecond_tick() -> None:
    u = TickUnwrapper(1 << 15, 1_000_000)
    raw = [32_700, 32_767, 0, 40, 32_000, 100]
    assert [u.unwrap(r) for r in raw] == [
        32_700_000_000,
        32_767_000_000,
        32_768_000_000,
        32_808_000_000,
        64_768_000_000,
        65_636_000_000,
    ]


def test_unwrap_uses_host_time_across_whole_periods() -> None:
    """Reads 70 s apart on a 32.768 s counter: only the host time tells two wraps passed."""
    u = TickUnwrapper(1 << 15, 1_000_000)
    assert u.unwrap(1_000, host_ns=10_000_000_000) == 1_000_000_000
    later = 10_000_000_000 + 70_000_000_000
    raw = (1_000 + 70_000) % (1 << 15)
    assert u.unwrap(raw, host_ns=later) == 71_000_000_000


def test_mapped_wrapping_tick_follows_the_host() -> None:
    """A 15-bit ms tick through the unwrapper and the mapper: within the tick's quantisation."""
    rng = np.random.default_rng(9)
    u = TickUnwrapper(1 << 15, 1_000_000)
    m = ClockMapper("dxl")
    errs = []
    for k in range(800):  # 64 s: wraps twice
        before = HOST0 + k * PERIOD
        true_dev = device_of(before + 60_000, 50.0)
        raw = (true_dev // 1_000_000) % (1 << 15)
        dev = u.unwrap(raw, host_ns=before)
        m.add(dev, before, before + 120_000 + int(rng.exponential(10_000)))
        if k > 100:
            errs.append(m.to_host(dev) - (before + 60_000))
    # the tick truncates up to 1 ms: the mapping is good to one tick, whatever the wraps did
    assert np.abs(np.array(errs)).max() < 1_050_000
