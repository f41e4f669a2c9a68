"""The dashboard's view of a snapshot: one JSON-ready dict (also served as /status.json)."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from raas.metrics.board import PHASES, STATE_RUNNING, Snapshot
from raas.safety.conditioning import STAGE_NAMES

#: A running loop that has not written the board for this long is not running any more.
IDLE_AFTER_S = 2.0


def live_state(snap: Snapshot, now_ns: int) -> str:
    """RUNNING, IDLE (no loop yet, between sessions, or silent), STOPPED (cell down)."""
    if snap.int("state") == STATE_RUNNING:
        period_s = 1.0 / snap.layout.rate_hz
        silent_s = (now_ns - snap.int("update_ns")) / 1e9
        if silent_s > max(IDLE_AFTER_S, 5 * period_s):
            return "IDLE"
    return snap.state


def _percentiles_us(values_ns: np.ndarray) -> dict[str, float]:
    if values_ns.size == 0:
        return {"n": 0, "p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    v = values_ns.astype(np.float64) / 1e3
    p50, p99, p999 = np.percentile(v, [50, 99, 99.9])
    return {
        "n": int(v.size),
        "p50": round(float(p50), 1),
        "p99": round(float(p99), 1),
        "p999": round(float(p999), 1),
        "max": round(float(v.max()), 1),
    }


class RateMeter:
    """Cycles per second of wall time over the last few seconds of snapshots."""

    def __init__(self, window_s: float = 3.0) -> None:
        self.window_ns = int(window_s * 1e9)
        self._samples: deque[tuple[int, int]] = deque()
        self._lock = threading.Lock()

    def rate(self, now_ns: int, cycles: int) -> float:
        with self._lock:
            s = self._samples
            if s and cycles < s[-1][1]:
                s.clear()  # a new board
            s.append((now_ns, cycles))
            while len(s) > 2 and now_ns - s[1][0] >= self.window_ns:
                s.popleft()
            t0, c0 = s[0]
            return (cycles - c0) * 1e9 / (now_ns - t0) if now_ns > t0 else 0.0


def status(snap: Snapshot, now_ns: int, rate_hz: float) -> dict[str, Any]:
    lay = snap.layout
    thumb_seq = snap.ints("thumb_seq")
    tot, now, ages = snap.ints("stale_total"), snap.ints("stale_now"), snap.ints("age_ns")
    phase_i = {p: snap.int(f"phase_{p}_ns") for p in PHASES}
    return {
        "robot": lay.labels.get("robot", ""),
        "state": live_state(snap, now_ns),
        "board_age_s": round(max(0, now_ns - snap.int("update_ns")) / 1e9, 3),
        "rate_config_hz": lay.rate_hz,
        "rate_hz": round(rate_hz, 2),
        "cycle": snap.int("cycle"),
        "cycles": snap.int("cycles"),
        "loops": snap.int("loops"),
        "missed": snap.int("missed"),
        "overruns": snap.int("overruns"),
        "fallbacks": {"repeat": snap.int("fallbacks_repeat"), "idle": snap.int("fallbacks_idle")},
        "clipped": snap.int("clipped"),
        "apply_late": snap.int("apply_late"),
        "safety": {
            "state": snap.safety_state,
            "interventions": {n: snap.int(f"interventions_{n}") for n in STAGE_NAMES},
        },
        "lateness_us": _percentiles_us(snap.recent("lateness")),
        "trigger_to_apply_us": _percentiles_us(snap.recent("trigger_to_apply")),
        "decide_us": _percentiles_us(snap.recent("decide")),
        "last_phases_us": {p: round(v / 1e3, 1) for p, v in phase_i.items()},
        "lease_holder": snap.lease_holder,
        "episode": snap.int("episode"),
        "goal": [round(x, 4) for x in snap.goal],
        "sources": {
            name: {
                "stale_cycles": int(tot[j]),
                "stale": bool(now[j]),
                "age_us": round(int(ages[j]) / 1e3, 1),
            }
            for j, name in enumerate(lay.sources)
        },
        "devices": {f"{d}.{s}": v for (d, s), v in sorted(snap.link_stats().items())},
        "cameras": {name: int(thumb_seq[i]) for i, name in enumerate(lay.cameras)},
        "torn": snap.torn,
    }
