"""`RemoteRobot`: one connection to one robot (a DEALER on its control socket).

    robot = RemoteRobot("tcp://robot:5555", server_key=KEY, lease=TOKEN)
    robot.open("control")          # the lease is checked; one controller at a time
    robot.arm()                    # remote step: observation k arrives, answer the action for k
    obs = robot.observation()
    robot.act(obs.cycle, action)
    ...
    robot.close()

Replies, observations and events share the socket; `_pump` sorts them: replies are matched by
request id, the newest observation is kept, events are queued (`events()`).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq

from raas_client import bundles, directory
from raas_client.errors import (
    ConfigurationError,
    ProtocolError,
    RemoteError,
    RobotTimeoutError,
    SafetyStopError,
    SessionClosedError,
)
from raas_client.wire import (
    Layout,
    Msg,
    Topic,
    decode,
    encode,
    layouts_from_spaces,
    step_header_parts,
)
from raas_client.zmq_send import send as _send_frame

# Plain ints: pyzmq's enum flags cost more in arithmetic, and get(EVENTS) with the enum builds
# a PollEvent, than the calls they decorate (a remote step makes several of each).
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_SNDMORE = int(zmq.SNDMORE)
_RCVTIMEO = int(zmq.RCVTIMEO)
_OBS = Msg.OBS
#: Upload chunks in flight at once (RemoteRobot.upload): the robot answers at most
#: `max_messages_per_cycle` (16) control messages a cycle; 8 leaves room for the rest.
UPLOAD_WINDOW = 8


@dataclass(slots=True)
class StepReport:
    """What the robot did with the action for `cycle` (times: the daemon's CLOCK_MONOTONIC)."""

    cycle: int
    fallback: int  # 0: your action was applied; 1 repeat, 2 idle: it was late or missing
    obs_sent_ns: int
    action_ns: int  # when your action arrived (-1: not within the deadline)
    applied_ns: int
    late_total: int  # actions that arrived too late so far in this daemon

    @property
    def applied(self) -> bool:
        return self.fallback == 0

    @property
    def round_trip_us(self) -> float | None:
        """Observation sent -> action received, as the robot measured it."""
        return None if self.action_ns < 0 else (self.action_ns - self.obs_sent_ns) / 1e3

    @classmethod
    def from_header(cls, r: Mapping[str, Any]) -> StepReport:
        return cls(
            int(r["cycle"]),
            int(r["fallback"]),
            int(r["obs_sent_ns"]),
            int(r["action_ns"]),
            int(r["applied_ns"]),
            int(r.get("late_total", 0)),
        )


@dataclass(slots=True)
class Observation:
    cycle: int
    episode: int
    arrays: dict[str, np.ndarray]
    stale: list[str] = field(default_factory=list)
    report: StepReport | None = None  # the report of the previous cycle
    #: the cell's task judged on this cycle (remote stepping): outcome, successes, error_rad,
    #: reward, over (docs/protocol.md); None when the robot sends none
    task: dict[str, Any] | None = None
    safety: str = ""  # the supervisor's state (running, hold, ...) and the reason of it
    safety_reason: str = ""
    #: when this client read it off the socket (time.monotonic_ns(), this machine's clock)
    received_ns: int = 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


def connect_socket(
    ctx: zmq.Context[Any],
    kind: int,
    endpoint: str,
    server_key: str | None,
    keypair: tuple[bytes, bytes] | None = None,
) -> zmq.Socket[bytes]:
    """A socket with CurveZMQ set up for tcp endpoints (unless server_key is 'plain'), with
    `keypair` (public, secret; Z85) as its own keys or a fresh pair."""
    sock: zmq.Socket[bytes] = ctx.socket(kind)
    sock.linger = 0
    if endpoint.startswith("tcp://") and server_key != "plain":
        if not server_key:
            raise ConfigurationError(
                f"{endpoint} is encrypted: pass the robot's server key (--server-key or "
                "RAAS_SERVER_KEY; the daemon prints it), or 'plain' for a plain robot"
            )
        public, secret = keypair if keypair is not None else zmq.curve_keypair()
        sock.curve_publickey = public
        sock.curve_secretkey = secret
        sock.curve_serverkey = server_key.encode("ascii")
    sock.connect(endpoint)
    return sock


def stream_endpoint_for(control: str, announced: str) -> str:
    """The stream endpoint as this client reaches it: the announced one, with the control
    endpoint's host when the daemon bound a wildcard or another interface."""
    if control.startswith("tcp://") and announced.startswith("tcp://"):
        host = control[len("tcp://") :].rsplit(":", 1)[0]
        port = announced.rsplit(":", 1)[1]
        return f"tcp://{host}:{port}"
    return announced


class RemoteRobot:
    def __init__(
        self,
        endpoint: str,
        *,
        server_key: str | None = None,
        lease: str | None = None,
        timeout_s: float = 5.0,
        context: zmq.Context[Any] | None = None,
        sock: zmq.Socket[bytes] | None = None,
    ) -> None:
        """`sock`: a socket already set up (a bound policy server's, raas_client.policy_server)
        instead of a DEALER dialling `endpoint`."""
        self.endpoint = endpoint
        self.server_key = (
            server_key if server_key is not None else os.environ.get("RAAS_SERVER_KEY")
        )
        self.lease = lease if lease is not None else os.environ.get("RAAS_LEASE")
        self.timeout_s = timeout_s
        self.ctx: zmq.Context[Any] = context if context is not None else zmq.Context.instance()
        self.sock = (
            sock
            if sock is not None
            else connect_socket(self.ctx, zmq.DEALER, endpoint, self.server_key)
        )
        self._rcvtimeo = -1  # the socket's ZMQ_RCVTIMEO (ms), set by _pump when it changes
        #: One msgpack packer for this socket's headers (a socket has one thread at a time).
        self._pack = msgpack.Packer().pack
        self._ids = itertools.count(1)
        self._replies: dict[int, Any] = {}
        self._obs: Observation | None = None
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)
        self.info: dict[str, Any] = {}
        #: The robot's block layouts (hello's spaces.layouts), and what act() sends: the step
        #: header's bytes before and after its cycle, the preallocated `step` block and its
        #: `action` view (filled in place).
        self.layouts: dict[str, Layout] = {}
        self._step: tuple[bytes, bytes, np.ndarray, np.ndarray] | None = None
        self.session: dict[str, Any] | None = None
        self.closed_reason: str | None = None
        #: The last supervisor transition the robot reported (a "safety" event), as a dict.
        self.safety: dict[str, Any] | None = None
        self._stopped: dict[str, Any] | None = None  # a stop since the last arm()
        #: A bound policy server's socket: the `serve` of a robot that dialled it (a new
        #: serving session), read while serving the last one (raas_client.policy_server).
        self.intro: dict[str, Any] | None = None
        #: The Curve keys of this client's stream subscriptions: `open` authorises the public
        #: one (`stream_key`), so the stream reaches this client only while its session is open.
        self.stream_keys: tuple[bytes, bytes] = zmq.curve_keypair()
        self._streams: weakref.WeakSet[Stream] = weakref.WeakSet()

    @classmethod
    def connect(
        cls,
        robot: str,
        *,
        service_url: str | None = None,
        token: str | None = None,
        timeout_s: float = 5.0,
        context: zmq.Context[Any] | None = None,
    ) -> RemoteRobot:
        """Connect to a robot by name: look it up in the reservation service (RAAS_SERVICE_URL,
        RAAS_TOKEN or the config file; raas_client.directory), take a control lease for the
        caller's booking running now, and connect with the server key the service pinned. An
        endpoint (tcp://..., ipc://...) connects directly, as the constructor does."""
        if "://" in robot:
            return cls(robot, timeout_s=timeout_s, context=context)
        service = directory.service_from(service_url, token)
        conn = directory.reserve_connection(robot, service, timeout_s=max(timeout_s, 10.0))
        return cls(
            conn.robot.control_endpoint,
            server_key=conn.robot.server_key,
            lease=conn.lease,
            timeout_s=timeout_s,
            context=context,
        )

    # ------------------------------------------------------------- plumbing
    def _send(
        self,
        kind: str,
        fields: Mapping[str, Any] | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
    ) -> int:
        rid = next(self._ids)
        frames = encode(kind, {"id": rid, **(fields or {})}, arrays, pack=self._pack)
        self.sock.send_multipart(frames, copy=False)
        return rid

    def request(
        self,
        kind: str,
        fields: Mapping[str, Any] | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Send a request and wait for its reply; RemoteError when the robot refuses it."""
        return self._reply(self._send(kind, fields, arrays), kind, timeout_s)

    def _reply(self, rid: int, kind: str, timeout_s: float | None) -> dict[str, Any]:
        """Wait for the reply to request `rid`; RemoteError when the robot refused it."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while rid not in self._replies:
            left = deadline - time.monotonic()
            if (left <= 0 or not self._pump(left)) and time.monotonic() >= deadline:
                raise RobotTimeoutError(f"no answer to {kind!r} from {self.endpoint}")
        reply = self._replies.pop(rid)
        if reply.type == Msg.ERROR:
            raise RemoteError(str(reply.get("code")), str(reply.get("message")))
        out: dict[str, Any] = dict(reply.header)
        out.update(reply.arrays)
        return out

    def _pump(self, timeout_s: float) -> bool:
        """Receive and sort one message; False when nothing came within timeout_s."""
        # One blocking recv with a receive timeout (set only when it changes): a single wait
        # inside libzmq, where ZMQ_EVENTS + poll asked the socket's mailbox two or three times.
        ms = max(0, int(timeout_s * 1000))
        if ms == 0:
            if not self.sock.get(_EVENTS) & _POLLIN:  # type: ignore[operator]
                return False
        elif ms != self._rcvtimeo:
            self.sock.setsockopt(_RCVTIMEO, ms)
            self._rcvtimeo = ms
        try:
            frames = self._recv()
        except zmq.Again:
            return False
        received_ns = time.monotonic_ns()
        msg = decode(frames, layouts=self.layouts)
        h = msg.header
        kind = h["t"]  # decode checked it is a str
        if kind == _OBS:  # the hot path first: an observation every step
            rep = h.get("report")
            task = h.get("task")
            self._obs = Observation(
                int(h.get("cycle", -1)),
                int(h.get("episode", 0)),
                msg.arrays,
                list(h.get("stale", [])),
                StepReport.from_header(rep) if isinstance(rep, dict) else None,
                dict(task) if isinstance(task, dict) else None,
                str(h.get("safety", "")),
                str(h.get("safety_reason", "")),
                received_ns,
            )
        elif kind in (Msg.OK, Msg.ERROR):
            rid = h.get("id")
            if isinstance(rid, int):
                self._replies[rid] = msg
                if len(self._replies) > 1000:  # replies nobody waits for (heartbeats)
                    for old in sorted(self._replies)[:500]:
                        del self._replies[old]
        elif kind == Msg.SERVE:
            self.intro = dict(msg.header)
        elif kind == Msg.EVENT:
            ev = dict(msg.header)
            self._events.append(ev)
            if ev.get("kind") == "session_closed":
                self.closed_reason = str(ev.get("reason"))
                self.session = None
            elif ev.get("kind") == "safety":
                self.safety = ev
                if ev.get("to") in ("hold", "ramp_down", "fault", "idle"):
                    self._stopped = ev
        return True

    def _recv(self) -> list[Any]:
        """One waiting message as zmq.Frame (no copy; arrays on them are writable views):
        Frame.more says whether a part follows, where asking ZMQ_RCVMORE after a copying recv
        costs more than the Frame (pyzmq's `get` builds an enum per call)."""
        sock = self.sock
        frame = sock.recv(copy=False)  # blocks up to ZMQ_RCVTIMEO (zmq.Again after it)
        frames: list[Any] = [frame]
        while frame.more:
            frame = sock.recv(copy=False)
            frames.append(frame)
        return frames

    # ------------------------------------------------------------- session
    def hello(self) -> dict[str, Any]:
        info = self.request(Msg.HELLO)
        self.layouts = layouts_from_spaces(info.get("spaces") or {})
        step = self.layouts.get("step")
        if step is None:
            raise ProtocolError("hello's spaces.layouts has no 'step' layout")
        block, views = step.allocate()
        head, tail = step_header_parts(step.name)
        self._step = (head, tail, block, views["action"])
        self.info = info
        return self.info

    def open(self, role: str = "control", lease: str | None = None) -> dict[str, Any]:
        token = lease if lease is not None else self.lease
        if not token:
            raise ConfigurationError("a lease token is needed (--lease or RAAS_LEASE)")
        if not self.info:
            self.hello()
        self.closed_reason = None
        fields = {"lease": token, "role": role, "stream_key": self.stream_keys[0].decode("ascii")}
        self.session = self.request(Msg.OPEN, fields)
        # A subscription made before `open` waits in a refused handshake (about a second);
        # connecting it again lets it in at once with the key this session authorised.
        for stream in list(self._streams):
            stream.reconnect()
        return self.session

    def close(self) -> None:
        """Close the session (if any) and the socket."""
        if self.session is not None:
            with contextlib.suppress(RobotTimeoutError, RemoteError):
                self.request(Msg.CLOSE, timeout_s=1.0)
            self.session = None
        self.sock.close(0)

    def __enter__(self) -> RemoteRobot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def heartbeat(self) -> None:
        """Keep the session alive without waiting for the answer."""
        self._send(Msg.HEARTBEAT)

    def status(self) -> dict[str, Any]:
        return self.request(Msg.STATUS)

    def events(self, timeout_s: float = 0.0) -> Iterator[dict[str, Any]]:
        """Events received so far (and within timeout_s): session closed, run progress...
        Messages already waiting on the socket count as received (timeout 0 reads them too)."""
        deadline = time.monotonic() + timeout_s
        while True:
            while self._events:
                yield self._events.popleft()
            left = deadline - time.monotonic()
            if not self._pump(max(left, 0.0)) and not self._events:
                return

    # ------------------------------------------------------------- remote step
    def arm(self) -> dict[str, Any]:
        """Arm remote stepping (also: re-arm after a hold; the hand starts from where it is)."""
        self._obs = None
        self._stopped = None
        return self.request(Msg.ARM)

    def disarm(self) -> dict[str, Any]:
        return self.request(Msg.DISARM)

    def reset_episode(self) -> dict[str, Any]:
        """Hold for a cycle and start a new episode; the next observation belongs to it."""
        reply = self.request(Msg.RESET)
        self._obs = None
        return reply

    def reset_scene(self, seed: int = 0, timeout_s: float = 10.0) -> dict[str, Any]:
        """Put the cell back to an episode's start (the block in the palm, the hand at its start
        pose, placed from `seed`) and start a new episode. Only while the hand holds (no run,
        not armed); RemoteError `unavailable` on a cell that cannot do it itself (a real cell:
        its reset hook or a person does it)."""
        reply = self.request(Msg.RESET, {"scene": True, "seed": seed}, timeout_s=timeout_s)
        self._obs = None
        return reply
        return reply

    def observation(self, after: int = -1, timeout_s: float | None = None) -> Observation:
        """The newest observation with a cycle after `after` (waits for it)."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while self._obs is None or self._obs.cycle <= after:
            if self.closed_reason is not None:
                raise SessionClosedError(self.closed_reason)
            if self._stopped is not None:
                ev = self._stopped
                raise SafetyStopError(
                    str(ev.get("to")), str(ev.get("reason")), str(ev.get("detail", ""))
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise RobotTimeoutError(f"no observation after cycle {after} from {self.endpoint}")
            self._pump(left)
        # Drain whatever else is already queued so the newest one wins (ZMQ_EVENTS: no syscall
        # when nothing is queued, which is the usual case).
        while self.sock.get(_EVENTS) & _POLLIN and self._pump(0):  # type: ignore[operator]
            pass
        obs = self._obs
        self._obs = None
        return obs

    def act(self, cycle: int, action: np.ndarray) -> None:
        """The action for `cycle` (fire and forget: its report comes with the next observation).

        Written into the preallocated `step` block (hello's layout) and sent as one frame."""
        step = self._step
        if step is None:
            self.hello()
            step = self._step
            assert step is not None
        head, tail, block, view = step
        a = np.asarray(action)
        if a.shape != view.shape:
            raise ValueError(f"action must have shape {view.shape} (hello's spaces), not {a.shape}")
        view[:] = a
        # Header and block, both copied into zmq messages (the block is reused by the next
        # act): two sends without pyzmq's Python wrapper (raas_client.zmq_send). The header
        # is the packed {"v", "t": "step", "cycle", "b": "step"} with only the cycle packed
        # per step (the same bytes: a msgpack map is its entries one after the other).
        sock = self.sock
        _send_frame(sock, head + self._pack(cycle) + tail, _SNDMORE)
        _send_frame(sock, block, 0)

    # ------------------------------------------------------------- e-stop
    def estop(self, lease: str | None = None) -> dict[str, Any]:
        fields = {} if self.session is not None else {"lease": lease or self.lease}
        return self.request(Msg.ESTOP, fields)

    def clear_estop(self) -> dict[str, Any]:
        return self.request(Msg.CLEAR_ESTOP)

    # ------------------------------------------------------------- bundles
    def upload(
        self,
        path: Path,
        progress: Callable[[int, int], None] | None = None,
        *,
        window: int = UPLOAD_WINDOW,
    ) -> str:
        """Upload a bundle (a file; a directory is sent as a tar). Returns its sha256 (the
        upload's, over the archive as sent).

        Up to `window` chunks are in flight at once: the robot answers control messages once
        per cycle (docs/protocol.md), so one chunk per round trip would move one chunk per
        cycle (256 KiB at 12.5 Hz: 3.2 MB/s). The first refused chunk raises RemoteError."""
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        data = bundles.pack(path)
        digest = bundles.sha256(data)
        name = bundles.upload_name(path)
        begin = self.request(Msg.UPLOAD_BEGIN, {"name": name, "size": len(data), "sha256": digest})
        step = int(begin.get("chunk_bytes", 256 * 1024))
        view = np.frombuffer(data, dtype=np.uint8)
        in_flight: collections.deque[tuple[int, int]] = (
            collections.deque()
        )  # (request id, bytes sent once it is in)

        def settle_oldest() -> None:
            rid, done = in_flight.popleft()
            self._reply(rid, Msg.UPLOAD_CHUNK, 30.0)
            if progress is not None:
                progress(done, len(data))

        for offset in range(0, len(data), step):
            if len(in_flight) >= window:
                settle_oldest()
            chunk = view[offset : offset + step]
            rid = self._send(Msg.UPLOAD_CHUNK, {"offset": offset}, {"data": chunk})
            in_flight.append((rid, offset + len(chunk)))
        while in_flight:
            settle_oldest()
        self.request(Msg.UPLOAD_END, timeout_s=30)
        return digest

    def run(self, episodes: int, seed: int = 0) -> dict[str, Any]:
        return self.request(Msg.RUN, {"episodes": episodes, "seed": seed})

    def stop(self) -> dict[str, Any]:
        return self.request(Msg.STOP)

    def fetch_recording(self, session_id: str, dest: Path, chunk: int = 1 << 20) -> Path:
        """Copy the session's MCAP recording to `dest` (a file or a directory).

        The bytes go to `<dest>.part`, renamed to `dest` once complete: a refused or broken
        fetch (no such recording, a lost connection) leaves no file behind."""
        if dest.is_dir():
            dest = dest / f"{session_id}.mcap"
        part = dest.with_name(dest.name + ".part")
        offset, size = 0, None
        try:
            with part.open("wb") as f:
                while size is None or offset < size:
                    r = self.request(
                        Msg.FETCH,
                        {"session": session_id, "offset": offset, "length": chunk},
                        timeout_s=30,
                    )
                    size = int(r["size"])
                    data = r.get("data")
                    if not isinstance(data, np.ndarray) or data.size == 0:
                        break
                    f.write(data.tobytes())
                    offset += data.size
            part.replace(dest)
        finally:
            part.unlink(missing_ok=True)
        return dest

    # ------------------------------------------------------------- stream
    def stream(self, topics: tuple[bytes, ...] = (Topic.STEP, Topic.EVENT)) -> Stream:
        """Subscribe to the stream. On an encrypted robot it arrives only while this client
        has a session open (`open`, either role): a subscription made before `open` starts
        receiving within about a second of it, and stops when the session ends."""
        if not self.info:
            self.hello()
        endpoint = stream_endpoint_for(self.endpoint, str(self.info["stream_endpoint"]))
        stream = Stream(self.ctx, endpoint, self.server_key, topics, self.layouts, self.stream_keys)
        self._streams.add(stream)
        return stream


class Stream:
    """A subscription to the robot's observation stream (PUB): steps, images, events."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoint: str,
        server_key: str | None,
        topics: tuple[bytes, ...],
        layouts: Mapping[str, Layout] | None = None,
        keypair: tuple[bytes, bytes] | None = None,
    ) -> None:
        #: The robot's block layouts (hello's spaces.layouts): a stream step is one block.
        self.layouts = dict(layouts or {})
        self.endpoint = endpoint
        self.sock = connect_socket(ctx, zmq.SUB, endpoint, server_key, keypair)
        self.sock.rcvhwm = 10_000
        for t in topics:
            self.sock.subscribe(t)

    def recv(
        self, timeout_s: float = 1.0
    ) -> tuple[str, dict[str, Any], dict[str, np.ndarray]] | None:
        """(topic, header, arrays) of the next message, or None after timeout_s."""
        if not self.sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return None
        frames = self.sock.recv_multipart(copy=False)
        if len(frames) < 2:
            raise ProtocolError("stream message without a topic frame")
        msg = decode(frames[1:], layouts=self.layouts)
        return bytes(frames[0].buffer).decode("ascii", "replace"), msg.header, msg.arrays

    def reconnect(self) -> None:
        """Connect again (a new handshake): after `open` authorised this subscription's key."""
        if not self.sock.closed:
            with contextlib.suppress(zmq.ZMQError):
                self.sock.disconnect(self.endpoint)
            self.sock.connect(self.endpoint)

    def close(self) -> None:
        self.sock.close(0)
