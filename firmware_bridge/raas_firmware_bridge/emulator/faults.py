"""Fault injection on the bytes of a link: bit errors, dropped and inserted bytes, truncation.

`ByteFaults.apply(frame)` takes one encoded frame and returns what goes on the wire. It never
touches anything but the bytes, so whatever comes out is judged by the receiver's decoder alone:
a corrupted frame must fail its CRC (or its framing) and is never acted on.
"""

from __future__ import annotations

import numpy as np
from raas_firmware_bridge.emulator.config import LinkConfig


class ByteFaults:
    """The byte-level faults of one direction of one link, from its own random stream."""

    def __init__(self, cfg: LinkConfig, rng: np.random.Generator) -> None:
        self.ber = cfg.bit_error_rate
        self.drop = cfg.drop_byte_rate
        self.insert = cfg.insert_byte_rate
        self.truncate = cfg.truncate_rate
        self.rng = rng
        self.enabled = True  # switched on and off by the emulator (LinkConfig.faults_from_cycle)
        self.bits_flipped = 0
        self.bytes_dropped = 0
        self.bytes_inserted = 0
        self.frames_truncated = 0
        self.frames_touched = 0

    @property
    def active(self) -> bool:
        return self.enabled and (
            self.ber > 0 or self.drop > 0 or self.insert > 0 or self.truncate > 0
        )

    def apply(self, frame: bytes) -> bytes:
        if not self.active or not frame:
            return frame
        rng = self.rng
        data = np.frombuffer(frame, dtype=np.uint8).copy()
        touched = False
        if self.truncate > 0 and rng.random() < self.truncate:
            data = data[: int(rng.integers(0, len(data)))]
            self.frames_truncated += 1
            touched = True
        if self.ber > 0 and data.size:
            nbits = data.size * 8
            flips = int(rng.binomial(nbits, self.ber))
            if flips:
                where = rng.choice(nbits, size=flips, replace=False)
                np.bitwise_xor.at(data, where // 8, (1 << (where % 8)).astype(np.uint8))
                self.bits_flipped += flips
                touched = True
        if self.drop > 0 and data.size:
            keep = rng.random(data.size) >= self.drop
            dropped = int(data.size - keep.sum())
            if dropped:
                data = data[keep]
                self.bytes_dropped += dropped
                touched = True
        if self.insert > 0 and data.size:
            at = np.flatnonzero(rng.random(data.size) < self.insert)
            if at.size:
                data = np.insert(data, at, rng.integers(0, 256, size=at.size, dtype=np.uint8))
                self.bytes_inserted += int(at.size)
                touched = True
        if touched:
            self.frames_touched += 1
        return data.tobytes()

    def counters(self) -> dict[str, int]:
        return {
            "bits_flipped": self.bits_flipped,
            "bytes_dropped": self.bytes_dropped,
            "bytes_inserted": self.bytes_inserted,
            "frames_truncated": self.frames_truncated,
            "frames_touched": self.frames_touched,
        }
