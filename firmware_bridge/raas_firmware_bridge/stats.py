"""Link statistics: what a serial link counts, for metrics and for the status line.

Counters only ever grow (until the link object is dropped); round-trip times are kept in a fixed
ring of the most recent `RTT_WINDOW` samples so p50/p99 describe the recent past and the memory
never grows. `as_dict()` is cheap enough to call between two control cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RTT_WINDOW = 4096


@dataclass(slots=True)
class LinkStats:
    """Counters of one link. Names match the keys of `as_dict()` (prefixed `link_`)."""

    frames_sent: int = 0
    frames_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    crc_errors: int = 0  # frames whose CRC did not match: dropped, never acted on
    bad_frames: int = 0  # every frame the decoder refused (CRC, length, header, payload)
    resyncs: int = 0  # times the decoder threw bytes away to find the next frame start
    drops: int = 0  # answers that never came (sequence gaps, lost requests)
    timeouts: int = 0  # requests whose answer did not come within the request timeout
    retries: int = 0  # requests sent again after a bad frame arrived while waiting
    faults: int = 0  # FAULT messages from the board
    consecutive_bad: int = 0  # bad frames since the last good one (M of them: link dead)
    _rtt_ns: np.ndarray = field(default_factory=lambda: np.zeros(RTT_WINDOW, dtype=np.int64))
    _rtt_n: int = 0

    def add_rtt(self, ns: int) -> None:
        self._rtt_ns[self._rtt_n % RTT_WINDOW] = ns
        self._rtt_n += 1

    @property
    def rtt_count(self) -> int:
        return self._rtt_n

    def rtts_ns(self) -> np.ndarray:
        """The kept round-trip times (a copy), oldest first is not guaranteed."""
        n = min(self._rtt_n, RTT_WINDOW)
        out: np.ndarray = self._rtt_ns[:n].copy()
        return out

    def as_dict(self, prefix: str = "link_") -> dict[str, float]:
        d: dict[str, float] = {
            f"{prefix}frames_sent": float(self.frames_sent),
            f"{prefix}frames_received": float(self.frames_received),
            f"{prefix}bytes_sent": float(self.bytes_sent),
            f"{prefix}bytes_received": float(self.bytes_received),
            f"{prefix}crc_errors": float(self.crc_errors),
            f"{prefix}bad_frames": float(self.bad_frames),
            f"{prefix}resyncs": float(self.resyncs),
            f"{prefix}drops": float(self.drops),
            f"{prefix}timeouts": float(self.timeouts),
            f"{prefix}retries": float(self.retries),
            f"{prefix}faults": float(self.faults),
            f"{prefix}consecutive_bad": float(self.consecutive_bad),
            f"{prefix}rtt_count": float(self._rtt_n),
        }
        rtts = self.rtts_ns()
        if rtts.size:
            p50, p99 = np.percentile(rtts, [50, 99])
            d[f"{prefix}rtt_p50_us"] = float(p50) / 1e3
            d[f"{prefix}rtt_p99_us"] = float(p99) / 1e3
            d[f"{prefix}rtt_max_us"] = float(rtts.max()) / 1e3
        return d
