"""Wire formats of the simulated mocap server and camera process, and shared-memory helpers.

Motion capture (like a PhaseSpace server): a control connection (AF_UNIX SEQPACKET, msgpack)
where the client subscribes with its UDP port and learns the marker names; then one UDP datagram
per frame on loopback:
    header  <4s q q q H magic b"RMC1", cycle, capture_ns, sent_ns, M
    body    M*3 float64 positions (m), then M uint8 visible flags

Cameras: frames live in POSIX shared memory, one segment per camera holding `slots` frames of
(H, W, 3) uint8; the renderer writes slot `cycle % slots` and then sends one datagram to that
camera's AF_UNIX DGRAM socket:
    <4s q q q H magic b"RCF1", cycle, capture_ns, sent_ns, slot

capture_ns and sent_ns are on the device's own clock (RigConfig.clocks: the mocap server's, the
cameras'): when the frame was captured and when it was sent. A driver maps them to host time with
a ClockMapper fed (sent_ns, host arrival time) pairs, like NatNet's transmit timestamp.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from pathlib import Path

MOCAP_MAGIC = b"RMC1"
MOCAP_HEADER = struct.Struct("<4sqqqH")
FRAME_MAGIC = b"RCF1"
FRAME_NOTE = struct.Struct("<4sqqqH")
SHM_DIR = Path("/dev/shm")


def mocap_datagram_size(n_markers: int) -> int:
    return MOCAP_HEADER.size + n_markers * 3 * 8 + n_markers


class ShmSegment:
    """A POSIX shared-memory segment (/dev/shm/<name>) mapped into this process.

    Deliberately not multiprocessing.shared_memory: Python 3.11 registers every segment a process
    opens with a resource-tracker process (spawned on demand) and unlinks it when that process
    exits, pulling frames from under the others. Here the creator (the launcher) unlinks, and the
    renderer unlinks too when it exits on its own (both tolerate the other having done it)."""

    def __init__(self, name: str, *, create: bool = False, size: int = 0) -> None:
        self.name = name
        path = SHM_DIR / name
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, size)
            self.size = os.fstat(fd).st_size
            self.mmap = mmap.mmap(fd, self.size)
        finally:
            os.close(fd)
        self.buf = memoryview(self.mmap)

    def close(self) -> None:
        with contextlib.suppress(BufferError):
            self.buf.release()
        with contextlib.suppress(BufferError):  # numpy views still alive: the mapping stays
            self.mmap.close()

    def unlink(self) -> None:
        unlink_quietly(self.name)


def unlink_quietly(name: str) -> None:
    """Remove a segment if it is still there."""
    with contextlib.suppress(FileNotFoundError):
        (SHM_DIR / name).unlink()
