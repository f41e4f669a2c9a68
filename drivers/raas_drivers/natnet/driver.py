"""OptiTrack motion capture over NatNet, on the `natnet` package (a pure-Python NatNet client
after OptiTrack's own SDK sample: protocol 2.x to 4.1, unicast and multicast).

The client is driven synchronously: `poll()` calls `NatNetClient.update_sync()`, which reads
every datagram already queued on its non-blocking sockets and parses it; no thread runs.
`fileno()` is the socket frames arrive on (the command socket in unicast, where a unicast server
sends them; the data socket in multicast).

Each frame: the mapped rows (settings.markers) take the rigid bodies' positions or the labeled
markers'; a row whose marker is absent from the frame, flagged occluded, or whose rigid body is
not tracked keeps its last position and is visible False. The server's frame time (suffix
timestamp, seconds) is the device clock: every frame feeds a ClockMapper (pushed observation:
device time, host arrival), and `capture_ns` is the frame's time mapped to the host clock.
The cycle: the CycleWindow of the cycles' first polls; poll(k) returns the newest frame captured
no earlier than half a period before cycle k began, once (a frame is never handed out twice).
"""

from __future__ import annotations

import contextlib
import fcntl
import struct
import time
from typing import Any

import numpy as np

from raas_drivers.clock_sync import ClockMapper
from raas_drivers.cycle_window import CycleWindow
from raas_drivers.errors import (
    DeviceLostError,
    DeviceNotReadyError,
    DriverConfigError,
    LifecycleTransitionError,
)
from raas_drivers.mocap.driver import MocapDriver, MocapFrame
from raas_drivers.natnet.config import NatNetSettings

#: ioctl: the receive time of the last datagram read from a socket (linux/sockios.h)
_SIOCGSTAMPNS = 0x8907
_TIMESPEC = struct.Struct("@qq")

_RB = 0  # row kinds
_LABELED = 1


def load_natnet() -> Any:
    import natnet  # noqa: PLC0415 - vendor library, imported on use

    return natnet


class NatNetMocap(MocapDriver):
    def __init__(self, name: str, settings: NatNetSettings, *, period_ns: int) -> None:
        super().__init__(name)
        self.settings = settings
        self.window = CycleWindow(period_ns)
        self.clock = ClockMapper(name, min_samples=8)
        self._names = tuple(settings.markers)
        m = len(self._names)
        self._pos = np.zeros((m, 3))
        self._vis = np.zeros(m, dtype=bool)
        self._kind = np.zeros(m, dtype=np.int64)
        self._ids = np.zeros(m, dtype=np.int64)
        self._client: Any = None
        self._sock: Any = None
        self._inbox: list[tuple[Any, int]] = []
        self._descs: list[Any] = []
        self._last_number = -1  # frame number of the newest frame taken in
        self._given = -1  # frame number of the last frame handed out
        self._newest: tuple[int, int, int] | None = None  # (number, capture_ns, device_ns)
        self._last_arrival = 0
        self._prev = np.zeros((m, 3))
        self.server_info: dict[str, str] = {}
        self.bodies: dict[str, int] = {}
        self.counts = {
            "frames": 0,
            "given": 0,
            "skipped_frames": 0,
            "invisible_rows": 0,
            "frozen_rows": 0,
            "bad_packets": 0,
        }

    # -- contract ------------------------------------------------------------------------------

    @property
    def marker_names(self) -> tuple[str, ...]:
        return self._names

    def fileno(self) -> int:
        if self._sock is None:
            raise LifecycleTransitionError(self.name, f"not connected (state {self.state.value})")
        return int(self._sock.fileno())

    def stats(self) -> dict[str, float]:
        out = {k: float(v) for k, v in self.counts.items()}
        out.update({f"clock_{k}": v for k, v in self.clock.stats().items()})
        return out

    # -- lifecycle -----------------------------------------------------------------------------

    def _connect_problem(self, where: str, exc: BaseException) -> str:
        """The connect's failure on one line; a `local` address this host does not have (the
        library's own text blames the unicast/multicast mode) named as such."""
        text = " ".join(str(exc).split())
        if "Errno 99" in text or "Cannot assign requested address" in text:
            return (
                f"local = {self.settings.local!r} is not an address of this host: set mocap.local "
                "to this host's address on the mocap network (ip -br addr)"
            )
        return f"cannot reach {where}: {text}"

    def _on_configure(self) -> None:
        s = self.settings
        natnet = load_natnet()
        client = natnet.NatNetClient(
            server_ip_address=s.server,
            local_ip_address=s.local,
            multicast_address=s.multicast_group,
            command_port=s.command_port,
            data_port=s.data_port,
            use_multicast=s.multicast,
        )
        client.on_data_frame_received_event.handlers.append(self._on_frame)
        client.on_data_description_received_event.handlers.append(self._descs.append)
        where = f"{s.server}:{s.command_port}"
        try:
            client.connect(timeout=s.connect_timeout_s)
        except TimeoutError as exc:
            raise DeviceNotReadyError(self.name, f"no NatNet server answered at {where}") from exc
        except (OSError, natnet.NatNetError) as exc:
            raise DeviceNotReadyError(self.name, self._connect_problem(where, exc)) from exc
        self._client = client
        try:
            info = client.server_info
            self.server_info = {
                "application": str(info.application_name),
                "server_version": str(info.server_version),
                "natnet_version": str(info.nat_net_protocol_version),
            }
            client.request_modeldef()
            deadline = time.monotonic() + s.connect_timeout_s
            while not self._descs and time.monotonic() < deadline:
                client.update_sync()
                time.sleep(0.01)
            if not self._descs:
                raise DeviceNotReadyError(self.name, f"no model definitions from {where}")
            self._map_rows(self._descs[-1])
            sock_attr = (
                "_NatNetClient__data_socket" if s.multicast else "_NatNetClient__command_socket"
            )
            self._sock = getattr(client, sock_attr)
        except BaseException:
            self._close()
            raise

    def _map_rows(self, descs: Any) -> None:
        self.bodies = {str(rb.name): int(rb.id_num) for rb in descs.rigid_bodies}
        markers_of = {str(rb.name): len(rb.markers) for rb in descs.rigid_bodies}
        for i, (row, src) in enumerate(self.settings.markers.items()):
            if src.labeled_id is not None:
                self._kind[i], self._ids[i] = _LABELED, src.labeled_id
                continue
            body = src.rigid_body
            assert body is not None
            if body not in self.bodies:
                known = ", ".join(sorted(self.bodies)) or "none"
                raise DriverConfigError(
                    f"{self.name}.markers.{row}.rigid_body",
                    f"the server streams no rigid body {body!r} (it has: {known})",
                )
            if src.marker is None:
                self._kind[i], self._ids[i] = _RB, self.bodies[body]
            else:
                if src.marker > markers_of[body]:
                    raise DriverConfigError(
                        f"{self.name}.markers.{row}.marker",
                        f"rigid body {body!r} has {markers_of[body]} markers, not {src.marker}",
                    )
                self._kind[i], self._ids[i] = _LABELED, (self.bodies[body] << 16) | src.marker

    def _on_activate(self) -> None:
        self._drain()
        self._inbox.clear()
        self._newest = None
        self._given = -1
        self._last_arrival = time.monotonic_ns()

    def _on_shutdown(self) -> None:
        self._close()

    def _close(self) -> None:
        client, self._client = self._client, None
        self._sock = None
        if client is not None:
            with contextlib.suppress(Exception):
                client.send_request(client.NAT_DISCONNECT)
            with contextlib.suppress(Exception):
                client.shutdown()

    # -- polling -------------------------------------------------------------------------------

    def _on_frame(self, frame: Any) -> None:
        """Called by update_sync() right after it read the frame's datagram: the kernel's receive
        time of that datagram (SIOCGSTAMPNS, CLOCK_REALTIME) is its arrival, so a frame that
        waited in the socket buffer until this poll is still stamped when it came in."""
        arrival = time.monotonic_ns()
        sock = self._sock
        if sock is not None:
            try:
                sec, nsec = _TIMESPEC.unpack(fcntl.ioctl(sock, _SIOCGSTAMPNS, bytes(16)))
                realtime = sec * 1_000_000_000 + nsec
                arrival = min(arrival, realtime - (time.time_ns() - time.monotonic_ns()))
            except OSError:
                pass
        self._inbox.append((frame, arrival))

    def _drain(self) -> None:
        client = self._client
        if client is None:
            raise LifecycleTransitionError(self.name, f"not connected (state {self.state.value})")
        for _ in range(64):  # a malformed datagram aborts update_sync; go on with the next
            try:
                client.update_sync()
                return
            except (struct.error, ValueError, IndexError) as exc:
                self.counts["bad_packets"] += 1
                if self.counts["bad_packets"] == 1:
                    self.server_info["first_bad_packet"] = repr(exc)
            except OSError as exc:
                raise DeviceLostError(self.name, f"NatNet socket failed: {exc}") from exc

    def poll(self, cycle: int) -> MocapFrame | None:
        now = time.monotonic_ns()
        self.window.mark(cycle, now)
        self._drain()
        inbox = self._inbox
        for frame, arrival in inbox:
            self._take(frame, arrival)
        inbox.clear()
        newest = self._newest
        if newest is not None and newest[0] != self._given:
            number, capture, device_ns = newest
            if self.window.cycle_of(capture) == cycle:
                self._given = number
                self.counts["given"] += 1
                return MocapFrame(
                    cycle=cycle,
                    capture_ns=capture,
                    device_ns=device_ns,
                    positions=self._pos.copy(),
                    visible=self._vis.copy(),
                )
        if now - self._last_arrival > self.settings.lost_after_s * 1e9:
            s = self.settings
            raise DeviceLostError(
                self.name,
                f"no NatNet frame from {s.server}:{s.command_port} for {s.lost_after_s:g} s",
            )
        return None

    def _take(self, frame: Any, arrival: int) -> None:
        number = int(frame.prefix.frame_number)
        if number <= self._last_number and self._last_number - number < 1000:
            return  # a duplicate or reordered datagram (a server restart resets the count)
        if self._last_number >= 0 and number > self._last_number + 1:
            self.counts["skipped_frames"] += number - self._last_number - 1
        self._last_number = number
        self._last_arrival = arrival
        self.counts["frames"] += 1
        device_ns = round(float(frame.suffix.timestamp) * 1e9)
        self.clock.add(device_ns, arrival)
        capture = self.clock.to_host(device_ns) if self.clock.ready else arrival
        capture = min(capture, arrival)
        self._prev[:] = self._pos
        bodies = {int(rb.id_num): rb for rb in frame.rigid_bodies or ()}
        labeled = {int(lm.id_num): lm for lm in frame.labeled_markers or ()}
        s = self.settings
        for i in range(len(self._names)):
            pos: Any = None
            if self._kind[i] == _RB:
                rb = bodies.get(int(self._ids[i]))
                if rb is not None and rb.tracking_valid is not False:
                    pos = rb.pos
            else:
                lm = labeled.get(int(self._ids[i]))
                if lm is not None and not (lm.param is not None and lm.param & 0x01):
                    pos = lm.pos
            if pos is None:
                self._vis[i] = False
                self.counts["invisible_rows"] += 1
                continue
            x, y, z = (float(v) / s.units_per_m for v in pos)
            if s.up_axis == "y":  # Motive's y-up to the cell's z-up: (x, y, z) -> (x, -z, y)
                y, z = -z, y
            self._pos[i, 0] = x - s.origin_m[0]
            self._pos[i, 1] = y - s.origin_m[1]
            self._pos[i, 2] = z - s.origin_m[2]
            self._vis[i] = True
        if self.counts["frames"] > 1:
            same = np.all(self._pos == self._prev, axis=1) & self._vis
            self.counts["frozen_rows"] += int(same.sum())
        self._newest = (number, capture, device_ns)
