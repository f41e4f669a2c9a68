"""The metrics board: one shared-memory file the loop writes in place and the exporter reads.

    [ header: magic, JSON layout (8 KiB) ][ int64 region ][ float64 region ][ bytes ][ thumbnails ]

The layout (source and camera names, histogram bucket edges, thumbnail shape) is fixed when the
board is created and written into the header as JSON, so a reader needs nothing but the path.
The loop writes the int64 region through a memoryview (tens of ns a store, no allocation); a
reader copies the whole board between two reads of the sequence counter (a seqlock): the count
is odd while the writer is inside a cycle, and a copy is consistent when the counter was even and
unchanged across it. x86 keeps stores in program order, and the interpreter issues them in
program order, so no barrier is needed there (docs/metrics.md).
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raas.metrics.errors import BoardFormatError, BoardNotFound
from raas.safety.conditioning import STAGE_NAMES
from raas.safety.reasons import SafetyState

MAGIC = b"RAASMB01"
HEADER_BYTES = 8192
LEASE_BYTES = 64
LINK_NAME_BYTES = 64
PHASES = ("trigger", "collect", "decide", "condition", "apply", "publish")

#: Lateness (trigger time - t_k) buckets, ns: 5 us .. 100 ms.
LATENESS_EDGES_NS = tuple(
    int(us * 1000)
    for us in (5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
)
#: Trigger-to-apply and decide (inference) buckets, ns: 20 us .. 1 s.
LATENCY_EDGES_NS = tuple(
    int(us * 1000)
    for us in (
        20,
        50,
        100,
        200,
        500,
        1_000,
        2_000,
        5_000,
        10_000,
        20_000,
        50_000,
        100_000,
        200_000,
        500_000,
        1_000_000,
    )
)

#: Scalar int64 slots, in order; `I_<NAME>` constants below index them.
SCALARS = (
    "seq",  # seqlock: odd while the writer is inside a cycle
    "update_ns",  # CLOCK_MONOTONIC of the last publish
    "state",  # STATE_* below
    "loop_pid",
    "cycle",  # index of the last published cycle
    "cycles",  # cycles published since the board was created
    "missed",  # grid slots skipped (gaps in the cycle index)
    "overruns",  # from the loop (after warm-up), when attached
    "fallbacks_repeat",
    "fallbacks_idle",
    "clipped",  # from the loop (after warm-up), when attached
    "apply_late",  # from the loop (after warm-up), when attached
    "loops",  # loops that published to this board (one per run or session)
    "episode",
    "lateness_ns",  # last cycle's
    "trigger_to_apply_ns",
    "decide_ns",
    "lateness_sum_ns",
    "trigger_to_apply_sum_ns",
    "decide_sum_ns",
    "lease_changes",
    "link_count",
    "stats_errors",  # device.stats() calls that raised
    *(f"phase_{p}_ns" for p in PHASES),
    "safety_state",  # raas.safety.SafetyState of the last cycle
    *(f"interventions_{name}" for name in STAGE_NAMES),  # cycles each stage changed the action
)
STATE_IDLE, STATE_RUNNING, STATE_STOPPED = 0, 1, 2
STATE_NAMES = {STATE_IDLE: "IDLE", STATE_RUNNING: "RUNNING", STATE_STOPPED: "STOPPED"}


@dataclass(frozen=True)
class BoardLayout:
    """What the board holds; fixed at creation, stored in the header."""

    rate_hz: float
    sources: tuple[str, ...]
    cameras: tuple[str, ...] = ()  # camera names; their sources are "cameras.<name>"
    thumb_shape: tuple[int, int] = (0, 0)  # (h, w) of each thumbnail
    thumb_stride: int = 1  # every n-th pixel of the camera image
    lateness_edges_ns: tuple[int, ...] = LATENESS_EDGES_NS
    latency_edges_ns: tuple[int, ...] = LATENCY_EDGES_NS
    ring: int = 1024  # recent cycles kept for live percentiles
    link_slots: int = 64
    labels: dict[str, str] = field(default_factory=dict)  # robot name etc., shown as-is

    # -- regions ----------------------------------------------------------------------------
    def int_fields(self) -> dict[str, tuple[int, int]]:
        """name -> (index, length) in the int64 region."""
        out: dict[str, tuple[int, int]] = {}
        i = 0

        def add(name: str, n: int) -> None:
            nonlocal i
            out[name] = (i, n)
            i += n

        for name in SCALARS:
            add(name, 1)
        nb_late = len(self.lateness_edges_ns) + 1
        nb_lat = len(self.latency_edges_ns) + 1
        add("lateness_hist", nb_late)
        add("trigger_to_apply_hist", nb_lat)
        add("decide_hist", nb_lat)
        add("ring_lateness", self.ring)
        add("ring_trigger_to_apply", self.ring)
        add("ring_decide", self.ring)
        n = len(self.sources)
        add("stale_total", n)
        add("stale_now", n)
        add("age_ns", n)
        add("thumb_seq", len(self.cameras))
        return out

    def float_fields(self) -> dict[str, tuple[int, int]]:
        return {"goal": (0, 7), "link_values": (7, self.link_slots)}

    @property
    def n_ints(self) -> int:
        return sum(n for _, n in self.int_fields().values())

    @property
    def n_floats(self) -> int:
        return 7 + self.link_slots

    @property
    def n_bytes(self) -> int:
        raw = LEASE_BYTES + self.link_slots * LINK_NAME_BYTES
        return (raw + 7) // 8 * 8

    @property
    def thumb_bytes(self) -> int:
        h, w = self.thumb_shape
        return len(self.cameras) * h * w * 3

    @property
    def data_bytes(self) -> int:
        return self.n_ints * 8 + self.n_floats * 8 + self.n_bytes + self.thumb_bytes

    def to_json(self) -> str:
        d: dict[str, Any] = {
            "version": 1,
            "rate_hz": self.rate_hz,
            "sources": list(self.sources),
            "cameras": list(self.cameras),
            "thumb_shape": list(self.thumb_shape),
            "thumb_stride": self.thumb_stride,
            "lateness_edges_ns": list(self.lateness_edges_ns),
            "latency_edges_ns": list(self.latency_edges_ns),
            "ring": self.ring,
            "link_slots": self.link_slots,
            "labels": self.labels,
        }
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> BoardLayout:
        d = json.loads(text)
        if d.get("version") != 1:
            raise BoardFormatError(f"board layout version {d.get('version')!r}, expected 1")
        h, w = d["thumb_shape"]
        return cls(
            rate_hz=float(d["rate_hz"]),
            sources=tuple(d["sources"]),
            cameras=tuple(d["cameras"]),
            thumb_shape=(int(h), int(w)),
            thumb_stride=int(d["thumb_stride"]),
            lateness_edges_ns=tuple(int(x) for x in d["lateness_edges_ns"]),
            latency_edges_ns=tuple(int(x) for x in d["latency_edges_ns"]),
            ring=int(d["ring"]),
            link_slots=int(d["link_slots"]),
            labels={str(k): str(v) for k, v in d.get("labels", {}).items()},
        )


def thumbnail_geometry(width: int, height: int, max_px: int) -> tuple[tuple[int, int], int]:
    """((h, w), stride) of `image[::stride, ::stride]` so that neither side exceeds max_px."""
    stride = max(1, math.ceil(max(width, height) / max_px))
    return (math.ceil(height / stride), math.ceil(width / stride)), stride


def default_board_path(tag: str = "") -> Path:
    """A fresh path in /dev/shm (tmpfs) when it exists, else the temp directory."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    return base / f"raas-metrics-{os.getpid()}{'-' + tag if tag else ''}.board"


class Board:
    """A mapped board. `create()` for the writer (the loop), `open()` for readers."""

    def __init__(self, path: Path, layout: BoardLayout, mm: mmap.mmap, writable: bool) -> None:
        self.path = path
        self.layout = layout
        self.writable = writable
        self._mm = mm
        self.ints_at = layout.int_fields()
        self.floats_at = layout.float_fields()
        n_i, n_f = layout.n_ints, layout.n_floats
        base = memoryview(mm)
        self._view = base
        o = HEADER_BYTES
        self.data = base[o : o + layout.data_bytes]
        self.ints_mv = base[o : o + n_i * 8].cast("q")
        self.ints = np.frombuffer(mm, dtype=np.int64, count=n_i, offset=o)
        o += n_i * 8
        self.floats = np.frombuffer(mm, dtype=np.float64, count=n_f, offset=o)
        o += n_f * 8
        self.raw = np.frombuffer(mm, dtype=np.uint8, count=layout.n_bytes, offset=o)
        o += layout.n_bytes
        h, w = layout.thumb_shape
        n_cam = len(layout.cameras)
        self.thumbs = np.frombuffer(mm, dtype=np.uint8, count=n_cam * h * w * 3, offset=o).reshape(
            n_cam, h, w, 3
        )

    @classmethod
    def create(cls, path: Path, layout: BoardLayout) -> Board:
        meta = layout.to_json().encode()
        if len(meta) + 16 > HEADER_BYTES:
            raise BoardFormatError(f"board layout too large ({len(meta)} bytes of JSON)")
        size = HEADER_BYTES + layout.data_bytes
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, size)
            header = MAGIC + len(meta).to_bytes(4, "little") + b"\0" * 4 + meta
            os.pwrite(fd, header, 0)
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        tmp.replace(path)  # readers never see a half-written header
        board = cls(path, layout, mm, writable=True)
        board.ints[:] = 0
        board.ints[board.ints_at["loop_pid"][0]] = os.getpid()
        return board

    @classmethod
    def open(cls, path: Path) -> Board:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise BoardNotFound(f"no metrics board at {path}") from None
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_BYTES:
                raise BoardFormatError(f"{path} is too small for a metrics board")
            head = os.pread(fd, HEADER_BYTES, 0)
            if head[:8] != MAGIC:
                raise BoardFormatError(f"{path} is not a metrics board (magic {head[:8]!r})")
            n = int.from_bytes(head[8:12], "little")
            layout = BoardLayout.from_json(head[16 : 16 + n].decode())
            if size != HEADER_BYTES + layout.data_bytes:
                raise BoardFormatError(f"{path}: size {size} does not match its layout")
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)
        return cls(path, layout, mm, writable=False)

    def index(self, name: str) -> int:
        return self.ints_at[name][0]

    def snapshot(self, timeout_s: float = 0.05) -> Snapshot:
        """A consistent copy (seqlock). If the writer died mid-cycle the counter stays odd: after
        `timeout_s` the last copy is returned with `torn=True`."""
        seq_mv = self.ints_mv
        deadline = time.monotonic() + timeout_s
        while True:
            s1 = seq_mv[0]
            data = bytes(self.data)
            s2 = seq_mv[0]
            if s1 == s2 and not s1 & 1:
                return Snapshot(self.layout, data, torn=False)
            if time.monotonic() > deadline:
                return Snapshot(self.layout, data, torn=True)
            time.sleep(50e-6)

    def close(self) -> None:
        """Unmap now, or, while views handed out earlier (a publisher's) still live, when the
        last of them goes."""
        for attr in ("ints", "floats", "raw", "thumbs"):
            setattr(self, attr, None)
        with contextlib.suppress(BufferError):
            self.ints_mv.release()
            self.data.release()
            self._view.release()
            self._mm.close()


class Snapshot:
    """A consistent copy of the board, decoded on demand."""

    def __init__(self, layout: BoardLayout, data: bytes, torn: bool) -> None:
        self.layout = layout
        self.torn = torn
        self.taken_ns = time.monotonic_ns()
        n_i, n_f = layout.n_ints, layout.n_floats
        self._ints = np.frombuffer(data, dtype=np.int64, count=n_i)
        self._floats = np.frombuffer(data, dtype=np.float64, count=n_f, offset=n_i * 8)
        o = n_i * 8 + n_f * 8
        self._raw = data[o : o + layout.n_bytes]
        o += layout.n_bytes
        h, w = layout.thumb_shape
        n_cam = len(layout.cameras)
        self._thumbs = np.frombuffer(data, dtype=np.uint8, count=n_cam * h * w * 3, offset=o)
        self._thumbs = self._thumbs.reshape(n_cam, h, w, 3)
        self._at = layout.int_fields()

    def int(self, name: str) -> int:
        return int(self._ints[self._at[name][0]])

    def ints(self, name: str) -> np.ndarray:
        i, n = self._at[name]
        return self._ints[i : i + n]

    @property
    def state(self) -> str:
        return STATE_NAMES.get(self.int("state"), "UNKNOWN")

    @property
    def safety_state(self) -> str:
        """The supervisor's state label ("running", ...) of the last published cycle."""
        code = self.int("safety_state")
        try:
            return SafetyState(code).label
        except ValueError:
            return str(code)

    @property
    def lease_holder(self) -> str | None:
        raw = self._raw[:LEASE_BYTES].rstrip(b"\0")
        return raw.decode("utf-8", "replace") if raw else None

    @property
    def goal(self) -> list[float]:
        return [float(x) for x in self._floats[0:7]]

    def link_stats(self) -> dict[tuple[str, str], float]:
        """(device, stat) -> value, for every stat a device has reported."""
        out: dict[tuple[str, str], float] = {}
        for slot in range(min(self.int("link_count"), self.layout.link_slots)):
            o = LEASE_BYTES + slot * LINK_NAME_BYTES
            name = self._raw[o : o + LINK_NAME_BYTES].rstrip(b"\0").decode("utf-8", "replace")
            device, _, stat = name.partition("\t")
            out[(device, stat)] = float(self._floats[7 + slot])
        return out

    def recent(self, name: str) -> np.ndarray:
        """The ring `ring_<name>` in cycle order, only the cycles that were written."""
        ring = self.ints(f"ring_{name}")
        n = self.int("cycles")
        size = self.layout.ring
        if n <= size:
            return ring[:n]
        start = n % size
        return np.concatenate([ring[start:], ring[:start]])

    def thumbnail(self, camera: str) -> np.ndarray | None:
        """(h, w, 3) uint8 RGB, or None before the first one was written."""
        try:
            i = self.layout.cameras.index(camera)
        except ValueError:
            return None
        if self.ints("thumb_seq")[i] == 0:
            return None
        thumb: np.ndarray = self._thumbs[i]
        return thumb
