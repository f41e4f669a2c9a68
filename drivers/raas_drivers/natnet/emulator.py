"""A NatNet server on loopback UDP, for tests and for a cell without an OptiTrack system.

It answers a client's command-port requests the way Motive does (NAT_CONNECT -> NAT_SERVERINFO,
NAT_REQUEST_MODELDEF -> NAT_MODELDEF, NAT_REQUEST -> NAT_RESPONSE, NAT_KEEPALIVE remembered, any
other id -> NAT_UNRECOGNIZED_REQUEST) and streams NAT_FRAMEOFDATA packets at `rate_hz` to every
client that spoke to it in the last `client_timeout_s` (unicast: to the client's command socket,
which is where a unicast NatNet client reads them), or with `multicast` to a multicast group and
data port as Motive's multicast mode does (on loopback: IP_MULTICAST_IF 127.0.0.1). Packets are
laid out per the NatNet bitstream of the version it announces (3.0, 3.1, 4.0 or 4.1; 4.1 is
Motive 3.x), the layout the
`natnet` package and OptiTrack's own NatNet SDK sample parse: frame prefix, marker sets,
unlabeled markers, rigid bodies (id, position, quaternion, mean error, tracking-valid flag),
skeletons, assets (4.1), labeled markers (id = model id << 16 | marker index, position, size,
params with the occluded bit, residual), force plates, devices, suffix (timecode, timestamp in
seconds as a double, the three high-resolution stamps, params).

The scene: rigid body "hand" (id 1) with five labeled fingertip markers (fftip .. thtip) that
wave, and rigid body "block" (id 2) with its eight corner markers (block_m0 .. block_m7, the
simulated cell's block:m0 .. m7 layout) that slides and turns slowly. Faults:
  dropout(marker, mode)   "absent": the labeled marker (e.g. "thtip") leaves the frame;
                          "occluded": it stays with the occluded bit and a zero position;
                          None: back to normal
  freeze(body, True)      the body's pose (and its markers) stop changing while frames go on
  track_lost(body, True)  the body is sent with tracking_valid cleared
The server's clock: timestamp = (now - start) * (1 + drift_ppm * 1e-6) + offset_s.

Run it:  python -m raas_drivers.natnet.emulator --port 1510 [--rate 120] [--version 4.1]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import selectors
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

NAT_CONNECT = 0
NAT_SERVERINFO = 1
NAT_REQUEST = 2
NAT_RESPONSE = 3
NAT_REQUEST_MODELDEF = 4
NAT_MODELDEF = 5
NAT_REQUEST_FRAMEOFDATA = 6
NAT_FRAMEOFDATA = 7
NAT_MESSAGESTRING = 8
NAT_DISCONNECT = 9
NAT_KEEPALIVE = 10
NAT_UNRECOGNIZED_REQUEST = 100

VERSIONS: dict[str, tuple[int, int, int, int]] = {
    "3.0": (3, 0, 0, 0),
    "3.1": (3, 1, 0, 0),
    "4.0": (4, 0, 0, 0),
    "4.1": (4, 1, 0, 0),
}

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_HEADER = struct.Struct("<HH")

#: Fingertip marker names, as the simulated cell names its mocap rows.
FINGERTIPS = ("fftip", "mftip", "rftip", "lftip", "thtip")
#: The block's 8 corner markers, 1 mm inside its 25 mm half-size, in the cell's z-up block frame
#: and in the order of the simulated cell's rows block:m0..m7 (raas.policy.cell)
BLOCK_CORNERS_ZUP = tuple(
    (sx * 0.024, sy * 0.024, sz * 0.024) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)
)


@dataclass
class Body:
    """A rigid body of the scene, with its markers' offsets from the body's origin (m)."""

    name: str
    id_num: int
    centre: tuple[float, float, float]
    markers: list[tuple[str, tuple[float, float, float]]]
    frozen: bool = False
    tracking_valid: bool = True
    # the last pose sent, kept while frozen
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rot: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    marker_pos: list[tuple[float, float, float]] = field(default_factory=list)


def default_scene() -> list[Body]:
    """A hand above the table, fingertips 9 cm in front of the palm; a 5 cm block below it.
    Y is up, as Motive streams by default."""
    tips = [(n, (-0.04 + 0.02 * i, 0.0, 0.09)) for i, n in enumerate(FINGERTIPS)]
    # z-up (x, y, z) is y-up (x, z, -y): the driver turns it back with up_axis = "y"
    block = [(f"block_m{i}", (x, z, -y)) for i, (x, y, z) in enumerate(BLOCK_CORNERS_ZUP)]
    return [
        Body("hand", 1, (0.0, 0.30, 0.0), tips),
        Body("block", 2, (0.0, 0.22, 0.08), block),
    ]


def _s(text: str) -> bytes:
    return text.encode() + b"\0"


def _vec(*v: float) -> bytes:
    return struct.pack(f"<{len(v)}f", *v)


class NatNetEmulator:
    """The server. `start()` runs it on a thread of this process; `close()` stops it and closes
    its socket (a client then sees the server vanish)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        command_port: int = 0,
        *,
        rate_hz: float = 120.0,
        version: str = "4.1",
        offset_s: float = 1000.0,
        drift_ppm: float = 0.0,
        client_timeout_s: float = 5.0,
        scene: list[Body] | None = None,
        multicast: tuple[str, int] | None = None,
    ) -> None:
        if version not in VERSIONS:
            raise ValueError(f"version {version!r}: choose one of {', '.join(VERSIONS)}")
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        self.version = VERSIONS[version]
        self.rate_hz = rate_hz
        self.offset_s = offset_s
        self.drift_ppm = drift_ppm
        self.client_timeout_s = client_timeout_s
        self.bodies = scene if scene is not None else default_scene()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, command_port))
        self.sock.setblocking(False)
        self.address: tuple[str, int] = self.sock.getsockname()
        #: (group, data port): frames go there, as Motive's multicast mode sends them, instead of
        #: to each client; requests are still answered to their sender
        self.multicast = multicast
        if multicast is not None:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(host))
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        self.frame_number = 0
        self.frames_sent = 0
        self.requests: dict[int, int] = {}
        self._clients: dict[tuple[str, int], float] = {}
        self._dropout: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()

    # -- faults --------------------------------------------------------------------------------

    def dropout(self, marker: str, mode: str | None) -> None:
        """Make a labeled marker (by its name, e.g. "thtip") absent or occluded; None restores."""
        if mode not in (None, "absent", "occluded"):
            raise ValueError(f"dropout mode {mode!r}: absent, occluded or None")
        with self._lock:
            if mode is None:
                self._dropout.pop(marker, None)
            else:
                self._dropout[marker] = mode

    def freeze(self, body: str, frozen: bool = True) -> None:
        with self._lock:
            self._body(body).frozen = frozen

    def track_lost(self, body: str, lost: bool = True) -> None:
        with self._lock:
            self._body(body).tracking_valid = not lost

    def _body(self, name: str) -> Body:
        for b in self.bodies:
            if b.name == name:
                return b
        raise KeyError(f"no body {name!r} in the scene")

    # -- running -------------------------------------------------------------------------------

    def start(self) -> NatNetEmulator:
        self._thread = threading.Thread(target=self.serve, name="natnet-emulator", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.sock.close()

    def __enter__(self) -> NatNetEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def server_time(self, now: float | None = None) -> float:
        t = (time.monotonic() if now is None else now) - self._start
        return t * (1.0 + self.drift_ppm * 1e-6) + self.offset_s

    def serve(self) -> None:
        """Answer requests and stream frames until close()."""
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        period = 1.0 / self.rate_hz
        next_frame = time.monotonic()
        try:
            while not self._stop.is_set():
                timeout = max(0.0, next_frame - time.monotonic())
                if sel.select(min(timeout, 0.05)):
                    self._answer()
                now = time.monotonic()
                if now >= next_frame:
                    self._stream(now)
                    next_frame += period
                    if next_frame < now:  # fell behind (a loaded machine): no burst
                        next_frame = now + period
        finally:
            sel.close()

    def _answer(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, OSError):
                return
            if len(data) < 4:
                continue
            msg_id, _ = _HEADER.unpack_from(data, 0)
            self.requests[msg_id] = self.requests.get(msg_id, 0) + 1
            with self._lock:
                self._clients[addr] = time.monotonic()
            if msg_id == NAT_CONNECT:
                self._send(NAT_SERVERINFO, self._server_info(), addr)
            elif msg_id == NAT_REQUEST_MODELDEF:
                self._send(NAT_MODELDEF, self._model_def(), addr)
            elif msg_id == NAT_REQUEST:
                self._send(NAT_RESPONSE, struct.pack("<i", 0), addr)
            elif msg_id == NAT_REQUEST_FRAMEOFDATA:
                self._send(NAT_FRAMEOFDATA, self._frame(time.monotonic()), addr)
            elif msg_id == NAT_DISCONNECT:
                with self._lock:
                    self._clients.pop(addr, None)
            elif msg_id != NAT_KEEPALIVE:
                self._send(NAT_UNRECOGNIZED_REQUEST, b"", addr)

    def _send(self, msg_id: int, payload: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendto(_HEADER.pack(msg_id, len(payload)) + payload, addr)

    def _stream(self, now: float) -> None:
        with self._lock:
            alive = [a for a, t in self._clients.items() if now - t < self.client_timeout_s]
        packet = self._frame(now)
        self.frame_number += 1
        if self.multicast is not None:
            self._send(NAT_FRAMEOFDATA, packet, self.multicast)
            self.frames_sent += 1
            return
        for addr in alive:
            self._send(NAT_FRAMEOFDATA, packet, addr)
        if alive:
            self.frames_sent += 1

    # -- packets -------------------------------------------------------------------------------

    def _server_info(self) -> bytes:
        name = b"raas NatNet emulator".ljust(256, b"\0")
        return name + bytes((3, 1, 0, 0)) + bytes(self.version)

    def _at_least(self, major: int, minor: int = 0) -> bool:
        return self.version[:2] >= (major, minor)

    def _sized(self, count: int, body: bytes) -> bytes:
        """A data set: its count, then (4.1+) its size in bytes, then its items."""
        if self._at_least(4, 1):
            return _U32.pack(count) + _U32.pack(len(body)) + body
        return _U32.pack(count) + body

    def _model_def(self) -> bytes:
        sets: list[bytes] = []
        for b in self.bodies:  # a marker set per body, as Motive sends with each rigid body
            names = b"".join(_s(n) for n, _ in b.markers)
            sets.append(_U32.pack(0) + self._desc(_s(b.name) + _U32.pack(len(b.markers)) + names))
        for b in self.bodies:
            desc = _s(b.name) + _U32.pack(b.id_num) + _U32.pack(0xFFFFFFFF) + _vec(0, 0, 0)
            if self._at_least(4, 2):
                desc += _vec(0, 0, 0, 1)
            n = len(b.markers)
            desc += _U32.pack(n)
            desc += b"".join(_vec(*off) for _, off in b.markers)
            desc += b"".join(_U32.pack(0) for _ in b.markers)
            if self._at_least(4):
                desc += b"".join(_s(name) for name, _ in b.markers)
            sets.append(_U32.pack(1) + self._desc(desc))
        return _U32.pack(len(sets)) + b"".join(sets)

    def _desc(self, body: bytes) -> bytes:
        return (_U32.pack(len(body)) + body) if self._at_least(4, 1) else body

    def _pose(self, b: Body, t: float) -> None:
        """Move the body (unless frozen): the hand bobs, the block turns about the vertical."""
        if b.frozen and b.marker_pos:
            return
        cx, cy, cz = b.centre
        if b.name == "hand":
            pos = (cx + 0.01 * math.sin(t), cy + 0.005 * math.sin(2 * t), cz)
            ang = 0.0
        else:
            pos = (cx + 0.01 * math.sin(0.5 * t), cy, cz)
            ang = 0.3 * t
        c, s = math.cos(ang), math.sin(ang)
        b.pos = pos
        b.rot = (0.0, math.sin(ang / 2), 0.0, math.cos(ang / 2))
        wave = 0.01 * math.sin(3 * t) if b.name == "hand" else 0.0
        b.marker_pos = [
            (pos[0] + c * ox + s * oz, pos[1] + oy + wave * (i % 2), pos[2] - s * ox + c * oz)
            for i, (_, (ox, oy, oz)) in enumerate(b.markers)
        ]

    def _frame(self, now: float) -> bytes:
        ts = self.server_time(now)
        with self._lock:
            for b in self.bodies:
                self._pose(b, now - self._start)
            dropout = dict(self._dropout)
            bodies = [
                (b.name, b.id_num, b.pos, b.rot, b.tracking_valid, list(b.markers), b.marker_pos)
                for b in self.bodies
            ]
        out = _U32.pack(self.frame_number)
        # marker sets: each body's markers by name order
        ms = b"".join(
            _s(name) + _U32.pack(len(mp)) + b"".join(_vec(*p) for p in mp)
            for name, _, _, _, _, _, mp in bodies
        )
        out += self._sized(len(bodies), ms)
        out += self._sized(0, b"")  # unlabeled markers
        rb = b""
        for _, id_num, pos, rot, valid, _, _ in bodies:
            rb += _U32.pack(id_num) + _vec(*pos) + _vec(*rot) + struct.pack("<f", 0.0002)
            rb += _U16.pack(0x01 if valid else 0x00)
        out += self._sized(len(bodies), rb)
        out += self._sized(0, b"")  # skeletons
        if self._at_least(4, 1):
            out += self._sized(0, b"")  # assets
        lm = b""
        n_lm = 0
        for _, id_num, _, _, _, markers, mp in bodies:
            for i, ((mname, _), p) in enumerate(zip(markers, mp, strict=True)):
                mode = dropout.get(mname)
                if mode == "absent":
                    continue
                occluded = mode == "occluded"
                lm += _U32.pack((id_num << 16) | (i + 1))
                lm += _vec(*((0.0, 0.0, 0.0) if occluded else p)) + struct.pack("<f", 0.012)
                param = (0x01 if occluded else 0x00) | 0x04 | 0x08  # model solved, has model
                lm += _U16.pack(param) + struct.pack("<f", 0.0001)
                n_lm += 1
        out += self._sized(n_lm, lm)
        out += self._sized(0, b"")  # force plates
        out += self._sized(0, b"")  # devices
        ticks = round(ts * 1e9)
        out += _U32.pack(0) + _U32.pack(0) + struct.pack("<d", ts)
        out += struct.pack("<QQQ", ticks, ticks, ticks)
        out += _U16.pack(0)
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m raas_drivers.natnet.emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1510, help="command port (Motive: 1510)")
    p.add_argument("--rate", type=float, default=120.0, help="frames per second")
    p.add_argument("--version", default="4.1", choices=sorted(VERSIONS))
    p.add_argument("--drift-ppm", type=float, default=0.0)
    p.add_argument("--dropout", action="append", default=[], metavar="MARKER[:occluded]")
    p.add_argument("--freeze", action="append", default=[], metavar="BODY")
    p.add_argument(
        "--multicast",
        metavar="GROUP:PORT",
        help="send frames to this multicast group and data port (Motive: 239.255.42.99:1511)",
    )
    args = p.parse_args(argv)
    multicast = None
    if args.multicast:
        group, _, port = args.multicast.rpartition(":")
        multicast = (group, int(port))
    emu = NatNetEmulator(
        args.host,
        args.port,
        rate_hz=args.rate,
        version=args.version,
        drift_ppm=args.drift_ppm,
        multicast=multicast,
    )
    for spec in args.dropout:
        name, _, mode = spec.partition(":")
        emu.dropout(name, mode or "absent")
    for body in args.freeze:
        emu.freeze(body)
    host, port = emu.address
    print(f"NatNet emulator {args.version} on {host}:{port}, {args.rate:g} Hz", flush=True)  # noqa: T201
    signal.signal(signal.SIGTERM, lambda *_: emu._stop.set())
    try:
        emu.serve()
    except KeyboardInterrupt:
        pass
    finally:
        emu.sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
