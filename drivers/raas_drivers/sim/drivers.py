"""Drivers of the simulated rig: the real contracts, reached only through IPC.

Each driver owns its own connection(s) to the rig's processes; nothing here calls rig objects.
The hand and the trigger board are not here: the rig runs their firmware on ptys and they are
reached with the real serial drivers (raas_drivers.hand.serial_driver,
raas_drivers.trigger.serial_driver).
  SimMocapDriver                   control link + UDP datagrams on loopback, like a PhaseSpace
  SimCameraDriver                  one DGRAM notification socket per camera + shared memory

Motion capture and cameras stamp frames in their own clocks (capture and send time); each
frame's (send time, host arrival) pair feeds a ClockMapper (docs/clocks.md) and the capture stamp
is mapped to host time with it. stats() carries the mappers' clock_* figures.

Every call that touches a link raises DeviceLostError naming the device (or the camera source,
e.g. "cameras.left") once the peer process is gone. poll() never blocks; fileno() is the fd that
turns readable when poll() may have something new, for select.poll / epoll.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from raas_drivers.cameras.driver import CAMERA_NAMES, CameraDriver, CameraFrame
from raas_drivers.device_clock import DeviceClock
from raas_drivers.errors import (
    DeviceLostError,
    DeviceNotReadyError,
    LifecycleTransitionError,
)
from raas_drivers.hand.config import ACTUATOR_NAMES, JOINT_NAMES
from raas_drivers.mocap.driver import MocapDriver, MocapFrame
from raas_drivers.sim.link import LinkClosedError, LinkConn
from raas_drivers.sim.protocol import (
    FRAME_MAGIC,
    FRAME_NOTE,
    MOCAP_HEADER,
    MOCAP_MAGIC,
    ShmSegment,
    mocap_datagram_size,
)

DEFAULT_CONNECT_TIMEOUT_S = 5.0
#: Linux SO_TIMESTAMPNS (the socket module has no name for it): the kernel stamps each datagram
#: with CLOCK_REALTIME when it is queued to the socket, so the host's arrival time does not
#: include the wait until the loop reads it.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
_NJ = len(JOINT_NAMES)
_NA = len(ACTUATOR_NAMES)
_STATE_LEN = 2 * _NJ + 2 * _NA


class _Watch:
    """A control link whose only job after the handshake is to say whether the peer lives."""

    def __init__(self, name: str, path: str, hello: list[Any], timeout_s: float) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.settimeout(timeout_s)
        try:
            sock.connect(path)
            self.conn = LinkConn(sock)
            self.conn.send(hello)
            answer = self.conn.recv_wait(timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            sock.close()
            raise DeviceNotReadyError(name, f"no hello at {path}: {exc}") from exc
        if answer[0] != "hello" or not isinstance(answer[1], dict):
            sock.close()
            raise DeviceNotReadyError(name, f"unexpected answer {answer[:1]!r} at {path}")
        self.info: dict[str, Any] = answer[1]

    def check(self, name: str) -> None:
        try:
            while self.conn.recv() is not None:
                pass
        except LinkClosedError as exc:
            raise DeviceLostError(name, f"server process gone: {exc}") from exc

    def close(self) -> None:
        self.conn.close()


class SimMocapDriver(MocapDriver):
    """PhaseSpace-like: subscribe on the control link with our UDP port, then read one datagram
    per triggered frame. A frame is decoded only when it is the one asked for."""

    def __init__(
        self,
        name: str,
        control_sock: str,
        *,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        lockstep_period_ns: int | None = None,
    ) -> None:
        super().__init__(name)
        self.clock = DeviceClock(name, lockstep_period_ns=lockstep_period_ns)
        self.control_sock = control_sock
        self.connect_timeout_s = connect_timeout_s
        self._markers: tuple[str, ...] = ()
        self._udp: socket.socket | None = None
        self._watch: _Watch | None = None
        self._buf = bytearray(65536)
        self._have = 0  # length of the last datagram kept in _keep
        self._keep = bytearray(65536)
        self._keep_cycle = -1
        self._kernel_stamps = False
        self._anc = socket.CMSG_SPACE(_TIMESPEC.size)

    @property
    def marker_names(self) -> tuple[str, ...]:
        return self._markers

    def _on_configure(self) -> None:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        try:
            udp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self._kernel_stamps = True
        except OSError:  # not Linux: the arrival is when poll() reads the datagram
            self._kernel_stamps = False
        try:
            self._watch = _Watch(
                self.name,
                self.control_sock,
                ["sub", udp.getsockname()[1]],
                self.connect_timeout_s,
            )
        except DeviceNotReadyError:
            udp.close()
            raise
        self._udp = udp
        self._markers = tuple(self._watch.info["markers"])

    def _on_shutdown(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    def _sock(self) -> socket.socket:
        if self._udp is None:
            raise LifecycleTransitionError(self.name, f"not connected (state {self.state.value})")
        return self._udp

    def fileno(self) -> int:
        return self._sock().fileno()

    def poll(self, cycle: int) -> MocapFrame | None:
        udp = self._sock()
        result: MocapFrame | None = None
        lockstep = self.clock.lockstep_period_ns is not None
        realtime_to_mono: int | None = None
        while True:
            try:
                n, anc, _, _ = udp.recvmsg_into([self._buf], self._anc)
            except BlockingIOError:
                break
            arrival = time.monotonic_ns()
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                    if realtime_to_mono is None:
                        realtime_to_mono = (
                            time.clock_gettime_ns(time.CLOCK_REALTIME) - time.monotonic_ns()
                        )
                    sec, nsec = _TIMESPEC.unpack_from(data)
                    arrival = min(arrival, sec * 1_000_000_000 + nsec - realtime_to_mono)
            if n < MOCAP_HEADER.size:
                continue
            magic, frame_cycle, _, sent_ns, _ = MOCAP_HEADER.unpack_from(self._buf, 0)
            if magic != MOCAP_MAGIC:
                continue
            self.clock.mapper.add(sent_ns, self.clock.host_ns(frame_cycle) if lockstep else arrival)
            if frame_cycle == cycle:
                result = self._decode(self._buf, n)
            if frame_cycle >= self._keep_cycle:  # the newest, for a later poll of its cycle
                self._keep[:n] = self._buf[:n]
                self._have = n
                self._keep_cycle = frame_cycle
        if result is None and self._keep_cycle == cycle:
            result = self._decode(self._keep, self._have)
        if result is None and self._watch is not None:
            self._watch.check(self.name)
        return result

    def stats(self) -> dict[str, float]:
        return self.clock.stats()

    def newest(self) -> MocapFrame | None:
        """The newest frame received, of any cycle (a late one included); None before one."""
        return self._decode(self._keep, self._have) if self._have else None

    def _decode(self, buf: bytearray, n: int) -> MocapFrame | None:
        _, frame_cycle, device_ns, _, m = MOCAP_HEADER.unpack_from(buf, 0)
        if n < mocap_datagram_size(m):
            return None
        off = MOCAP_HEADER.size
        positions = np.frombuffer(buf, dtype=np.float64, count=3 * m, offset=off)
        visible = np.frombuffer(buf, dtype=np.uint8, count=m, offset=off + 24 * m)
        return MocapFrame(
            cycle=frame_cycle,
            capture_ns=self.clock.to_host(device_ns),
            device_ns=device_ns,
            positions=positions.reshape(m, 3).copy(),
            visible=visible.astype(bool),
        )


class SimCameraSource:
    """One camera of SimCameraDriver, a Source of CameraFrame (image: a view of shared memory)."""

    def __init__(self, driver: SimCameraDriver, camera: str, sock: socket.socket) -> None:
        self.driver = driver
        self.camera = camera
        self.sock = sock
        self._name = f"{driver.source_prefix}.{camera}"
        self.clock = DeviceClock(self._name, lockstep_period_ns=driver.lockstep_period_ns)
        self._note = bytearray(FRAME_NOTE.size)
        self._cycle = -1
        self._capture_ns = 0
        self._slot = 0

    @property
    def source_name(self) -> str:
        return self._name

    def fileno(self) -> int:
        return self.sock.fileno()

    def poll(self, cycle: int) -> CameraFrame | None:
        match: tuple[int, int] | None = None
        while True:
            try:
                n = self.sock.recv_into(self._note)
            except BlockingIOError:
                break
            except OSError as exc:
                raise DeviceLostError(self._name, f"notification socket: {exc}") from exc
            if n != FRAME_NOTE.size:
                continue
            magic, frame_cycle, capture_ns, sent_ns, slot = FRAME_NOTE.unpack_from(self._note, 0)
            if magic != FRAME_MAGIC:
                continue
            self.clock.mapper.add(sent_ns, self.clock.host_ns(frame_cycle))
            if frame_cycle == cycle:
                match = (capture_ns, slot)
            if frame_cycle >= self._cycle:  # the newest, for a later poll of its cycle
                self._cycle, self._capture_ns, self._slot = frame_cycle, capture_ns, slot
        if match is None and self._cycle == cycle:
            match = (self._capture_ns, self._slot)
        if match is None:
            self.driver.check_alive(self._name)
            return None
        return CameraFrame(
            cycle=cycle,
            capture_ns=self.clock.to_host(match[0]),
            device_ns=match[0],
            camera=self.camera,
            image=self.driver.slot_view(self.camera, match[1]),
        )

    def newest(self) -> CameraFrame | None:
        """The newest frame received, of any cycle (a late one included); None before one."""
        if self._cycle < 0:
            return None
        return CameraFrame(
            cycle=self._cycle,
            capture_ns=self.clock.to_host(self._capture_ns),
            device_ns=self._capture_ns,
            camera=self.camera,
            image=self.driver.slot_view(self.camera, self._slot),
        )


class SimCameraDriver(CameraDriver):
    """The cell's cameras, rendered by the camera process into shared-memory slots.

    A frame's image is a view of slot `cycle % slots` of its camera's segment: it stays valid
    until the renderer comes round to that slot again (slots - 1 cycles later). Copy to keep."""

    def __init__(
        self,
        name: str,
        render_sock: str,
        sock_dir: str,
        cameras: Sequence[str] = CAMERA_NAMES,
        *,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        source_prefix: str | None = None,
        lockstep_period_ns: int | None = None,
    ) -> None:
        super().__init__(name)
        #: sources are named "<source_prefix>.<camera>" (default: the driver's name); a cell
        #: file's `[cameras.left]` device is named "cameras.left" and its source too
        self.source_prefix = source_prefix if source_prefix is not None else name
        self.lockstep_period_ns = lockstep_period_ns
        self.render_sock = render_sock
        self.sock_dir = Path(sock_dir)
        self._cameras = tuple(cameras)
        self.connect_timeout_s = connect_timeout_s
        self._resolution = (0, 0)
        self._watch: _Watch | None = None
        self._socks: dict[str, socket.socket] = {}
        self._sources: list[SimCameraSource] = []
        self._segments: dict[str, ShmSegment] = {}
        self._slots: dict[str, list[np.ndarray]] = {}
        self.renderer_info: dict[str, Any] = {}

    @property
    def camera_names(self) -> tuple[str, ...]:
        return self._cameras

    @property
    def resolution(self) -> tuple[int, int]:
        return self._resolution

    def sources(self) -> Sequence[SimCameraSource]:
        if not self._sources:
            raise LifecycleTransitionError(self.name, "sources() needs the driver configured")
        return self._sources

    def _on_configure(self) -> None:
        paths: dict[str, str] = {}
        try:
            for camera in self._cameras:
                path = self.sock_dir / f"cam-{camera}.sock"
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.bind(str(path))
                sock.setblocking(False)
                self._socks[camera] = sock
                paths[camera] = str(path)
            self._watch = _Watch(
                self.name, self.render_sock, ["sub", paths], self.connect_timeout_s
            )
            info = self._watch.info
            self.renderer_info = info
            w, h = int(info["width"]), int(info["height"])
            self._resolution = (w, h)
            frame = w * h * 3
            for camera in self._cameras:
                seg_name, nslots = info["slots"][camera]
                seg = ShmSegment(seg_name)
                self._segments[camera] = seg
                self._slots[camera] = [
                    np.ndarray((h, w, 3), dtype=np.uint8, buffer=seg.buf, offset=i * frame)
                    for i in range(int(nslots))
                ]
        except (OSError, KeyError, ValueError) as exc:
            self._on_shutdown()
            raise DeviceNotReadyError(self.name, f"camera set-up failed: {exc!r}") from exc
        except DeviceNotReadyError:
            self._on_shutdown()
            raise
        self._sources = [SimCameraSource(self, c, self._socks[c]) for c in self._cameras]

    def _on_shutdown(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        for camera, sock in self._socks.items():
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                (self.sock_dir / f"cam-{camera}.sock").unlink()
        self._socks.clear()
        self._sources = []
        self._slots.clear()
        for seg in self._segments.values():
            seg.close()
        self._segments.clear()

    def stats(self) -> dict[str, float]:
        """Each camera's clock figures, keys `<camera>.clock_*`."""
        d: dict[str, float] = {}
        for source in self._sources:
            for k, v in source.clock.stats().items():
                d[f"{source.camera}.{k}"] = v
        return d

    def check_alive(self, who: str) -> None:
        if self._watch is None:
            raise LifecycleTransitionError(who, f"not connected (state {self.state.value})")
        self._watch.check(who)

    def slot_view(self, camera: str, slot: int) -> np.ndarray:
        return self._slots[camera][slot]


__all__ = [
    "SimCameraDriver",
    "SimCameraSource",
    "SimMocapDriver",
]
