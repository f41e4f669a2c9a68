"""Map a device's own clock onto the host's CLOCK_MONOTONIC: online offset and drift estimation.

Every device stamps in its own clock (a servo's tick counter, a camera's timestamp register, a
mocap server's frame time, the hand firmware's microsecond counter). A `ClockMapper` takes
observations that pair a device stamp with the host monotonic time(s) around it and fits

    host_ns = device_ns + offset + drift * (device_ns - device_ref)

over a sliding window of the most recent `window` observations. The fit is robust to the delays
that spoil individual observations (a reply held up in a USB buffer, a UDP frame queued behind
another):

* **Request/response** observations (host time the request left, host time the reply arrived):
  the window is cut into `segments` runs of consecutive observations; in each run the one with the
  smallest round trip is kept (the NTP clock-filter idea: the least delayed exchange bounds the
  offset tightest), its midpoint taken as the host time of the device stamp, and a Theil-Sen line
  (median of pairwise slopes, then median intercept) is put through those minima. Delayed replies
  never reach the fit unless a whole run was delayed, and Theil-Sen shrugs off those.
* **Pushed** observations (only the host arrival time): arrival = device time + offset + latency
  with latency >= 0, so delays only ever push a point up. The fit is the line under all points that
  lies closest to them (Moon, Skelly and Towsley, "Estimation and removal of clock skew from
  network delay measurements", 1999): an edge of the lower convex hull, the one spanning the mean
  device time. The hull is taken over the per-run minima (after removing the previous drift
  estimate), which keeps it small.

Both fits are numpy plus a loop over at most `segments` points; `add` only writes into ring
buffers, the fit runs lazily in `to_host`/`stats` when new observations came in and at most once
per `refit_interval_ns` of device time (bench: `python -m bench clock`).

No library on PyPI does this (clock-skew estimation from timestamp pairs): NTP/PTP daemons do it
for the system clock only, and scipy (not a dependency) would only give the generic Theil-Sen and
hull pieces, which are a few lines of numpy here.

Device counters that wrap (a Dynamixel's 15-bit millisecond Realtime Tick, a 32-bit microsecond
counter) go through `TickUnwrapper` first.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from raas_drivers.errors import DriverConfigError

_I64 = npt.NDArray[np.int64]
_F64 = npt.NDArray[np.float64]


class TickUnwrapper:
    """Turn a wrapping device counter into a monotonic nanosecond stamp.

    `modulus` is the counter's period in ticks (32768 for a 15-bit counter), `tick_ns` the length
    of one tick (1_000_000 for milliseconds). A reading is taken to be the smallest forward step
    from the previous one, unless a host time is given with it: then the number of whole wraps that
    passed is taken from the host time elapsed, so reads further apart than one period (a paused
    loop) still unwrap right, as long as the host interval is known to within half a period.
    """

    __slots__ = ("_last_host", "_last_raw", "_modulus", "_tick_ns", "_total")

    def __init__(self, modulus: int, tick_ns: int) -> None:
        if modulus < 2:
            raise DriverConfigError("clock", f"TickUnwrapper modulus must be >= 2, got {modulus}")
        if tick_ns < 1:
            raise DriverConfigError("clock", f"TickUnwrapper tick_ns must be >= 1, got {tick_ns}")
        self._modulus = modulus
        self._tick_ns = tick_ns
        self._last_raw: int | None = None
        self._last_host: int | None = None
        self._total = 0  # unwrapped ticks of the last reading

    def unwrap(self, raw: int, host_ns: int | None = None) -> int:
        """The unwrapped stamp in ns of counter value `raw` (read at host time `host_ns`)."""
        raw %= self._modulus
        if self._last_raw is None:
            self._total = raw
        else:
            step = (raw - self._last_raw) % self._modulus
            if host_ns is not None and self._last_host is not None:
                elapsed_ticks = (host_ns - self._last_host) / self._tick_ns
                # choose the number of whole periods that brings the step nearest the host's view
                wraps = round((elapsed_ticks - step) / self._modulus)
                step += max(0, wraps) * self._modulus
            self._total += step
        self._last_raw = raw
        if host_ns is not None:
            self._last_host = host_ns
        return self._total * self._tick_ns

    def reset(self) -> None:
        self._last_raw = None
        self._last_host = None
        self._total = 0


class ClockMapper:
    """Online offset+drift estimate of one device clock against the host's CLOCK_MONOTONIC.

    name:              the device, for errors and stats
    window:            observations kept (the fit's horizon: 256 at 12.5 Hz is about 20 s)
    segments:          runs the window is cut into (fewer, of 4 or more, while it fills); the
                       least delayed observation of each run enters the fit
    min_samples:       observations needed before `ready` (and before drift is fitted; below it
                       `to_host` uses the offset of the least delayed observation so far)
    max_drift_ppm:     the fitted drift is clamped to +-this (crystals are within +-100 ppm; a
                       short window with coarse ticks can suggest more)
    refit_interval_ns: least device time between two fits (bounds the cost at 1 kHz)
    reset_after_ns:    an observation further than this from the current fit means the device
                       clock jumped (reset, reboot): the window restarts from it
    latency_ns:        known least latency of a pushed reading (exposure readout, wire time),
                       taken off its arrival time; a one-way fit cannot see a constant latency
    """

    def __init__(
        self,
        name: str,
        *,
        window: int = 256,
        segments: int = 32,
        min_samples: int = 8,
        max_drift_ppm: float = 500.0,
        refit_interval_ns: int = 20_000_000,
        reset_after_ns: int = 1_000_000_000,
        latency_ns: int = 0,
    ) -> None:
        if window < 2:
            raise DriverConfigError(name, f"clock window must be >= 2, got {window}")
        if not 1 <= segments <= window:
            raise DriverConfigError(name, f"clock segments must be in 1..{window}, got {segments}")
        if not 1 <= min_samples <= window:
            raise DriverConfigError(
                name, f"clock min_samples must be in 1..{window}, got {min_samples}"
            )
        self.name = name
        self._window = window
        self._segments = segments
        self._min_samples = min_samples
        self._max_drift = max_drift_ppm * 1e-6
        self._refit_interval = refit_interval_ns
        self._reset_after = reset_after_ns
        self._latency = latency_ns
        self._dev: _I64 = np.zeros(window, dtype=np.int64)
        self._lo: _I64 = np.zeros(window, dtype=np.int64)  # host time the request left (or arrival)
        self._hi: _I64 = np.zeros(window, dtype=np.int64)  # host time the reply arrived
        self._two_way = np.zeros(window, dtype=np.bool_)
        self._head = 0  # next slot to write
        self._count = 0  # valid slots
        self._added = 0  # observations ever added
        self._resets = 0
        self._dirty = False
        self._last_fit_dev: int | None = None
        # the fit: host = dev + _y_ref + _a + _b * (dev - _x_ref)
        self._x_ref = 0
        self._y_ref = 0
        self._a = 0.0
        self._b = 0.0
        self._residual = 0.0
        self._delay = 0.0
        self._fitted = False
        #: fits run so far (where a driver fits: in refit(), or lazily when a stamp is mapped)
        self.fits = 0

    # -- observations --------------------------------------------------------------------------

    def add(self, device_ns: int, host_before_ns: int, host_after_ns: int | None = None) -> None:
        """One observation: a device stamp, and the host monotonic time(s) around it: for a
        request/response exchange the host times the request left and the reply arrived; for a
        pushed reading (a UDP frame, a camera frame) only the host arrival time."""
        lo = host_before_ns
        if host_after_ns is None:
            lo -= self._latency
        hi = lo if host_after_ns is None else host_after_ns
        if hi < lo:
            lo, hi = hi, lo
        if self._fitted and self._count:
            last = self._dev[(self._head - 1) % self._window]
            predicted = self._map(device_ns)
            jumped = device_ns < last or (
                lo - self._reset_after > predicted or predicted > hi + self._reset_after
            )
            if jumped:
                self.reset()
                self._resets += 1
        i = self._head
        self._dev[i] = device_ns
        self._lo[i] = lo
        self._hi[i] = hi
        self._two_way[i] = host_after_ns is not None
        self._head = (i + 1) % self._window
        self._count = min(self._count + 1, self._window)
        self._added += 1
        self._dirty = True

    def reset(self) -> None:
        """Forget every observation (the device clock restarted)."""
        self._head = 0
        self._count = 0
        self._dirty = False
        self._fitted = False
        self._last_fit_dev = None
        self._a = self._b = self._residual = self._delay = 0.0

    # -- mapping -------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Enough observations for a fitted offset and drift."""
        return self._count >= self._min_samples

    @property
    def samples(self) -> int:
        """Observations in the window."""
        return self._count

    def refit(self) -> None:
        """Fit now if observations came in since the last fit. A driver calls it where it has
        time to spare (after sending a request, while the device answers), so that reading an
        answer is not held up by a fit (which takes tens to a hundred us)."""
        if self._dirty and self._count:
            self._fit()
            self._last_fit_dev = int(self._dev[(self._head - 1) % self._window])
            self._dirty = False

    def to_host(self, device_ns: int) -> int:
        """device stamp -> host CLOCK_MONOTONIC ns"""
        self._maybe_fit()
        if not self._fitted:
            raise LookupError(f"{self.name}: no clock observation yet")
        return self._map(device_ns)

    def stats(self) -> dict[str, float]:
        """offset_ns (host - device at the latest observation), drift_ppm (how much faster the
        device clock runs than the host's: 50 means 50 us more per second), residual_ns (p99 of
        the fit's residual over the observations it used), delay_ns (round trip, or latency above
        the fitted line, of the least delayed observation), samples (in the window), observations
        (ever), resets (clock jumps seen)."""
        self._maybe_fit()
        offset = 0.0
        if self._fitted and self._count:
            last = int(self._dev[(self._head - 1) % self._window])
            offset = float(self._map(last) - last)
        return {
            "offset_ns": offset,
            "drift_ppm": -self._b / (1.0 + self._b) * 1e6,
            "residual_ns": self._residual,
            "delay_ns": self._delay,
            "samples": float(self._count),
            "observations": float(self._added),
            "resets": float(self._resets),
        }

    def _map(self, device_ns: int) -> int:
        return device_ns + self._y_ref + round(self._a + self._b * (device_ns - self._x_ref))

    # -- fitting -------------------------------------------------------------------------------

    def _maybe_fit(self) -> None:
        if not self._dirty or self._count == 0:
            return
        last_dev = int(self._dev[(self._head - 1) % self._window])
        if (
            self._fitted
            and self.ready
            and self._last_fit_dev is not None
            and last_dev - self._last_fit_dev < self._refit_interval
        ):
            return
        self._fit()
        self._last_fit_dev = last_dev
        self._dirty = False

    def _ordered(self) -> slice | _I64:
        n = self._count
        if n < self._window:
            return slice(0, n)
        return (np.arange(n, dtype=np.int64) + self._head) % self._window

    def _fit(self) -> None:
        self.fits += 1
        idx = self._ordered()
        dev = self._dev[idx]
        lo = self._lo[idx]
        hi = self._hi[idx]
        two_way = bool(self._two_way[idx].sum() * 2 >= dev.size)
        x_ref = int(dev[-1])
        if two_way:
            # midpoint of the exchange, computed in integers before going to float
            y_int = lo + (hi - lo) // 2 - dev
            delay = (hi - lo).astype(np.float64)
        else:
            y_int = hi - dev
            delay = np.zeros(dev.size)
        y_ref = int(y_int[-1])
        x = (dev - x_ref).astype(np.float64)
        y = (y_int - y_ref).astype(np.float64)
        if dev.size < self._min_samples or x[0] == x[-1]:
            # too few for a slope: the offset of the least delayed observation, no drift
            if two_way:
                k = int(np.argmin(delay))
                a = float(y[k])
            else:
                k = int(np.argmin(y))
                a = float(y[k])
            b = 0.0
            sel = np.array([k])
        elif two_way:
            sel = self._segment_argmin(delay)
            a, b = _theil_sen(x[sel], y[sel])
        else:
            sel = self._segment_argmin(y - self._b * x)
            a, b = _lower_hull_fit(x[sel], y[sel], float(x[sel].mean()))
        b_clamped = min(max(b, -self._max_drift), self._max_drift)
        if b_clamped != b:
            # keep the line through the selected points' centre when the slope is clamped
            a += (b - b_clamped) * _median(x[sel])
            b = b_clamped
        resid = y[sel] - (a + b * x[sel])
        self._x_ref = x_ref
        self._y_ref = y_ref
        self._a = a
        self._b = b
        self._residual = _p99(np.abs(resid)) if resid.size else 0.0
        if two_way:
            self._delay = float(delay[sel].min())
        else:
            self._delay = float(resid.min()) if resid.size else 0.0
        self._fitted = True

    def _segment_argmin(self, key: _F64) -> _I64:
        """Index of the smallest `key` in each of up to `segments` runs of consecutive items
        (runs as equal as the count allows; every item is in one)."""
        n = key.size
        # runs of at least 4 while the window fills (a run of one filters nothing)
        k = min(self._segments, max(min(n, 2), n // 4))
        starts = (np.arange(k, dtype=np.int64) * n) // k
        mins = np.minimum.reduceat(key, starts)
        run_of = np.repeat(np.arange(k), np.diff(np.append(starts, n)))
        hits = np.flatnonzero(key == mins[run_of])
        runs = run_of[hits]  # ascending: keep the first hit of each run
        first = np.empty(runs.size, dtype=np.bool_)
        first[0] = True
        np.not_equal(runs[1:], runs[:-1], out=first[1:])
        picked: _I64 = hits[first].astype(np.int64)
        return picked


_PAIRS: dict[int, tuple[_I64, _I64]] = {}


def _pairs(n: int) -> tuple[_I64, _I64]:
    pairs = _PAIRS.get(n)
    if pairs is None:
        i, j = np.triu_indices(n, k=1)
        pairs = _PAIRS[n] = (i.astype(np.int64), j.astype(np.int64))
    return pairs


def _median(a: _F64) -> float:
    """np.median without its overhead (a few us instead of tens on small arrays)."""
    s = np.sort(a)
    n = s.size
    mid = n // 2
    return float(s[mid]) if n % 2 else 0.5 * float(s[mid - 1] + s[mid])


def _p99(a: _F64) -> float:
    """The 99th percentile (nearest rank) of `a`."""
    s = np.sort(a)
    return float(s[min(s.size - 1, int(np.ceil(0.99 * s.size)) - 1)])


def _theil_sen(x: _F64, y: _F64) -> tuple[float, float]:
    """Median of pairwise slopes, then the median intercept (Theil 1950, Sen 1968)."""
    i, j = _pairs(x.size)
    dx = x[j] - x[i]
    ok = dx != 0.0
    if not ok.any():
        return _median(y), 0.0
    slope = _median((y[j] - y[i])[ok] / dx[ok])
    intercept = _median(y - slope * x)
    return intercept, slope


def _lower_hull_fit(x: _F64, y: _F64, x_mean: float) -> tuple[float, float]:
    """The line below every point closest to them on average: the lower-hull edge over x_mean.

    Points must be sorted by x (they are: observations arrive in device-time order)."""
    hull: list[tuple[float, float]] = []
    for px, py in zip(x.tolist(), y.tolist(), strict=True):
        if hull and px == hull[-1][0]:
            if py >= hull[-1][1]:
                continue
            hull.pop()
        while len(hull) >= 2:
            (ox, oy), (ax, ay) = hull[-2], hull[-1]
            # drop the middle point when it lies on or above the chord (not a lower-hull vertex)
            if (ax - ox) * (py - oy) - (ay - oy) * (px - ox) <= 0.0:
                hull.pop()
            else:
                break
        hull.append((px, py))
    if len(hull) == 1:
        return hull[0][1], 0.0
    k = 1
    while k < len(hull) - 1 and hull[k][0] < x_mean:
        k += 1
    (ax, ay), (bx, by) = hull[k - 1], hull[k]
    slope = (by - ay) / (bx - ax)
    return ay - slope * ax, slope
