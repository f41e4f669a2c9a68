"""Action-chunk timing from a recording's `chunk` events (a policy server's session,
docs/protocol.md, Policy servers): per chunk its latency split on one clock, and per cycle how
far ahead the applied action was computed.

One clock: the server stamps its receive and send times on its own clock; the offset (server
minus robot) is taken from the chunk with the least network delay in the whole recording (NTP's
rule: its error is at most half that chunk's round trip), so every chunk's `uplink` (observation
sent -> server received), `compute` (server received -> sent) and `downlink` (sent -> arrived)
are on the robot's clock and add up to the chunk's latency.

Per cycle: each chunk reports the first row applied and how many rows were applied after it (its
rows are used one per cycle without a hole, raas/core/chunks.py), so cycle k's action came from
the newest chunk whose applied rows include k, computed `k - c` cycles before."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ChunkTiming:
    cycle: np.ndarray  # the observation each chunk was computed from
    arrival_cycle: np.ndarray
    latency_ms: np.ndarray  # nan where the observation's send stamp was lost
    uplink_ms: np.ndarray
    compute_ms: np.ndarray
    downlink_ms: np.ndarray
    used: np.ndarray
    discarded: np.ndarray
    offset_ns: int | None  # server minus robot, from the least-delayed exchange
    offset_error_ms: float | None  # at most half that exchange's network time
    applied_cycle: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    age_cycles: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.cycle.size)


def _num(e: dict[str, Any], key: str) -> float:
    v = e.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else float("nan")


def chunk_timing(events: list[dict[str, Any]]) -> ChunkTiming:
    """`events`: the `data` of each `chunk` event, in recording order."""
    f = {k: np.array([_num(e, k) for e in events]) for k in (
        "cycle", "arrival_cycle", "obs_sent_ns", "arrival_ns", "server_recv_ns", "server_send_ns",
        "used", "discarded", "first_row")}  # fmt: skip
    sent, arrived = f["obs_sent_ns"], f["arrival_ns"]
    recv, send = f["server_recv_ns"], f["server_send_ns"]
    with np.errstate(invalid="ignore"):
        sent = np.where(sent > 0, sent, np.nan)
        network = (arrived - sent) - (send - recv)
    offset: int | None = None
    error: float | None = None
    ok = np.isfinite(network) & (network >= 0)
    if ok.any():
        i = int(np.flatnonzero(ok)[np.argmin(network[ok])])
        offset = int(((recv[i] - sent[i]) + (send[i] - arrived[i])) // 2)
        error = float(network[i]) / 2e6
    off = float(offset) if offset is not None else np.nan
    timing = ChunkTiming(
        cycle=f["cycle"].astype(np.int64),
        arrival_cycle=f["arrival_cycle"].astype(np.int64),
        latency_ms=(arrived - sent) / 1e6,
        uplink_ms=(recv - off - sent) / 1e6,
        compute_ms=(send - recv) / 1e6,
        downlink_ms=(arrived - (send - off)) / 1e6,
        used=np.nan_to_num(f["used"]).astype(np.int64),
        discarded=np.nan_to_num(f["discarded"]).astype(np.int64),
        offset_ns=offset,
        offset_error_ms=error,
    )
    newest: dict[int, int] = {}
    for c, first, used in zip(timing.cycle, f["first_row"], timing.used, strict=True):
        if used <= 0 or not np.isfinite(first):
            continue
        for k in range(int(c + first), int(c + first + used)):
            newest[k] = max(newest.get(k, -1), int(c))
    ks = np.array(sorted(newest), dtype=np.int64)
    timing.applied_cycle = ks
    timing.age_cycles = np.array([k - newest[int(k)] for k in ks], dtype=np.int64)
    return timing
