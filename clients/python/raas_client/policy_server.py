"""A policy server: your model, next to your GPU, drives a robot with chunks of actions.

    from raas_client.policy_server import serve
    serve(fn, chunk=16, robot="tcp://robot:5555", lease=TOKEN, server_key=KEY)

`fn(observation) -> (H, n_actuators) array`: H actions, row i for the observation's cycle + i.
The server dials the robot (a DEALER to its control socket, CurveZMQ, so it works from behind a
lab's NAT), opens a `control` session with the lease and sends `serve`. Or the robot dials the
server (`serve(fn, chunk=16, bind="tcp://*:7000", robot_key=ROBOT_KEY)`, for a robot that may
only dial out): a researcher's control session sends `serve` with `dial` (`ask_to_dial`).
Then, forever: take the newest observation, call `fn`, send the chunk with the cycle it was
computed from and this machine's receive and send stamps. The robot never waits for it: it
indexes into the newest chunk by how many cycles have passed (docs/protocol.md, Policy servers).

`SimulatedLatency` makes any `fn` slow on purpose (a delay drawn per call, occasional stalls), for
tests and demos of what a real model's latency does to the hand.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from zmq.auth.thread import ThreadAuthenticator

from raas_client.errors import RemoteError, RobotTimeoutError, SafetyStopError, SessionClosedError
from raas_client.session import Observation, RemoteRobot
from raas_client.wire import Msg, decode, layouts_from_spaces

PolicyFn = Callable[[Observation], np.ndarray]


@dataclass
class SimulatedLatency:
    """Latency drawn from a normal distribution (mean, sd in ms, clipped at 0); with probability
    `stall_prob` per call a stall of `stall_ms` instead. Seeded: the same run twice is the same."""

    mean_ms: float
    sd_ms: float = 0.0
    stall_prob: float = 0.0
    stall_ms: float = 1000.0
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mean_ms < 0 or self.sd_ms < 0:
            raise ValueError(f"latency must be >= 0 ms, got {self.mean_ms} +- {self.sd_ms}")
        if not 0 <= self.stall_prob <= 1:
            raise ValueError(f"stall_prob must be in 0..1, got {self.stall_prob}")
        self._rng = random.Random(self.seed)

    def draw_s(self) -> float:
        if self.stall_prob and self._rng.random() < self.stall_prob:
            return self.stall_ms / 1000
        return max(0.0, self._rng.gauss(self.mean_ms, self.sd_ms)) / 1000

    def wrap(self, fn: PolicyFn) -> PolicyFn:
        def slow(obs: Observation) -> np.ndarray:
            start = time.monotonic()
            out = fn(obs)
            left = self.draw_s() - (time.monotonic() - start)
            if left > 0:
                time.sleep(left)
            return out

        return slow


@dataclass
class ServeStats:
    chunks: int = 0
    refused: int = 0
    dropped: int = 0  # finished after a newer chunk was sent (workers > 1): not sent
    last_cycle: int = -1
    reason: str = ""
    summary: dict[str, Any] | None = None
    unsent: int = 0  # bound: chunks not sent because no robot was connected
    refused_peers: int = 0  # bound: handshakes of a robot other than the expected one, refused
    sessions: int = 0  # bound: serving sessions served (more than one with keep_serving)


def serve(
    fn: PolicyFn,
    chunk: int,
    robot: str | None = None,
    *,
    lease: str | None = None,
    server_key: str | None = None,
    blend: str = "newest",
    max_chunks: int | None = None,
    duration_s: float | None = None,
    latency: SimulatedLatency | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int = 1,
    on_connect: Callable[[dict[str, Any]], None] | None = None,
    bind: str | None = None,
    robot_key: str | Sequence[str] | None = None,
    keypair: tuple[bytes, bytes] | None = None,
    on_bound: Callable[[PolicyListener], None] | None = None,
    keep_serving: bool = False,
) -> ServeStats:
    """Serve `fn` to `robot` until the session ends, the robot stops the hand, `max_chunks` were
    sent or `duration_s` passed. Returns what was sent and why it ended.

    `bind` instead of `robot`: the robot dials this server (a researcher's control session sends
    `serve` with `dial: {endpoint, server_key}`; docs/protocol.md, Policy servers). The server
    binds there with `keypair` (public, secret; Z85; default a fresh pair, its public key on
    `PolicyListener.public_key`, which `on_bound` is given once bound) and admits only the robot
    whose Curve public key is `robot_key` (the robot's server key; a list: any of those robots):
    any other is refused in the handshake and counted (`ServeStats.refused_peers`). It serves one
    serving session: until the robot stops sending observations (the session ended, the hand
    stopped) or the limits above. `keep_serving`: one serving session after another (each
    episode of an evaluation job is one: docs/fleet.md, "Jobs with a policy server") until the
    limits above; a robot's new `serve` ends the session before it at once. One robot at a
    time: the bound socket answers whoever sent the newest `serve`.

    `workers` > 1 runs that many calls of `fn` at once (threads: for a model that releases the
    GIL, e.g. on a GPU, or a remote one): a free worker starts on the newest observation at once,
    so a chunk's age is about one latency, not two. A result older than a chunk already sent is
    dropped (`ServeStats.dropped`).

    `on_connect(info)` is called with the robot's `hello` reply before serving (a bundle
    checks itself against the robot's hand there: raas_client.bundle_policy)."""
    if (robot is None) == (bind is None):
        raise ValueError("serve needs either robot (this server dials) or bind (the robot dials)")
    policy = latency.wrap(fn) if latency is not None else fn
    stats = ServeStats()
    end = None if duration_s is None else time.monotonic() + duration_s
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    # One wait for both: a message from the robot, or a worker done (a byte on the pipe). Closed
    # only after the pool has finished every call (a late callback writes to it).
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)

    def wake(_: Future[np.ndarray]) -> None:
        with contextlib.suppress(OSError):
            os.write(wake_w, b"x")

    loop = _Loop(policy, chunk, stats, max_chunks, end, should_stop, workers, wake_r, wake)
    try:
        if bind is not None:
            if not robot_key:
                raise ValueError("a bound policy server needs robot_key (the robot's server key)")
            with PolicyListener(bind, robot_key, keypair) as listener:
                if on_bound is not None:
                    on_bound(listener)
                return listener.serve(loop, blend, on_connect, keep_serving=keep_serving)
        assert robot is not None
        with RemoteRobot(robot, server_key=server_key, lease=lease) as r:
            if on_connect is not None:
                on_connect(r.hello())
            session = r.open("control")
            r.request(Msg.SERVE, {"horizon": chunk, "blend": blend})
            r._stopped = None  # armed now: a stop from before does not count
            if loop.run(r, str(session["session"])):
                with contextlib.suppress(RemoteError, RobotTimeoutError):
                    stats.summary = r.request(Msg.STOP).get("summary")
            # a refused chunk is answered with an error carrying its request id
            stats.refused = sum(1 for m in r._replies.values() if m.type == Msg.ERROR)
        return stats
    finally:
        os.close(wake_r)
        os.close(wake_w)


def load_or_create_keypair(key_dir: Path) -> tuple[bytes, bytes]:
    """A bound policy server's Curve keypair (public, secret; Z85) in `key_dir` (server.public,
    server.secret made mode 0600 on first use), so its public key stays the one researchers pass
    as `dial.server_key` across restarts. ValueError when the files are not a Z85 keypair."""
    pub, sec = key_dir / "server.public", key_dir / "server.secret"
    if not sec.exists():
        key_dir.mkdir(parents=True, exist_ok=True)
        public, secret = zmq.curve_keypair()
        fd = os.open(sec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secret + b"\n")
        pub.write_bytes(public + b"\n")
    secret = sec.read_bytes().strip()
    try:
        public = zmq.curve_public(secret)
    except (ValueError, zmq.ZMQError):
        raise ValueError(f"{sec}: not a Curve secret key (40 Z85 characters)") from None
    if pub.exists() and pub.read_bytes().strip() != public:
        raise ValueError(f"{pub} does not belong to {sec}")
    return public, secret


def ask_to_dial(
    r: RemoteRobot,
    endpoint: str,
    server_key: str,
    chunk: int,
    blend: str = "newest",
    *,
    episode: bool = False,
    seed: int | None = None,
) -> dict[str, Any]:
    """From a researcher's open control session: have the robot dial a bound policy server and
    serve its chunks. The session owns the serving: keep it open (heartbeats) while the policy
    serves; closing it ends the serving and stops the hand. With `episode`, the robot serves one
    episode of its cell's task (goals from `seed`) and ends the serving by itself; the record is
    in the summary's `episodes`. RemoteError `bad_dial` when the robot refuses `dial`,
    `unavailable` when its cell cannot judge the task."""
    fields: dict[str, Any] = {
        "horizon": chunk,
        "blend": blend,
        "dial": {"endpoint": endpoint, "server_key": server_key},
    }
    if episode:
        fields["episode"] = True
        if seed is not None:
            fields["seed"] = seed
    return r.request(Msg.SERVE, fields)


_ZAP_DOMAIN = "raas.policy"


class _RobotKeyPin:
    """ZAP's Curve callback: only the expected robots' public keys get in; the others counted."""

    def __init__(self, robot_keys: Sequence[str]) -> None:
        self.keys = frozenset(k.encode("ascii") for k in robot_keys)
        self.refused = 0

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.keys:
            return True
        self.refused += 1
        return False


class PolicyListener:
    """A bound policy server's socket: a DEALER on `bind` (CurveZMQ server with this server's
    keypair), a ZAP handler on its own context admitting only `robot_key` (one key, or a list:
    any of those robots)."""

    def __init__(
        self,
        bind: str,
        robot_key: str | Sequence[str],
        keypair: tuple[bytes, bytes] | None = None,
    ) -> None:
        if not bind.startswith("tcp://"):
            raise ValueError(f"bind must be tcp://HOST:PORT (the robot dials tcp), got {bind!r}")
        keys = [robot_key] if isinstance(robot_key, str) else list(robot_key)
        if not keys:
            raise ValueError("a bound policy server needs robot_key (the robot's server key)")
        for key in keys:
            if len(key) != 40:
                raise ValueError(
                    f"robot_key must be a robot's Curve public key (40 Z85 characters), got {key!r}"
                )
        self.public_key, secret = keypair if keypair is not None else zmq.curve_keypair()
        self.pin = _RobotKeyPin(keys)
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.auth = ThreadAuthenticator(self.ctx)
        self.auth.start()
        self.auth.configure_curve_callback(_ZAP_DOMAIN, credentials_provider=self.pin)
        self.sock: zmq.Socket[bytes] = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.sndtimeo = 0  # no robot connected: a chunk is not sent (ServeStats.unsent)
        self.sock.zap_domain = _ZAP_DOMAIN.encode("ascii")
        self.sock.curve_publickey, self.sock.curve_secretkey = self.public_key, secret
        self.sock.curve_server = True
        try:
            self.sock.bind(bind)
        except zmq.ZMQError as exc:
            self.close()
            raise ValueError(f"cannot bind {bind}: {exc}") from None
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def serve(
        self,
        loop: _Loop,
        blend: str,
        on_connect: Callable[[dict[str, Any]], None] | None,
        *,
        keep_serving: bool = False,
    ) -> ServeStats:
        """Wait for the robot's `serve` (session, horizon, its hello), then serve it; with
        keep_serving, the next one after it, until the loop's limits."""
        stats = loop.stats
        intro: dict[str, Any] | None = None
        while True:
            r = RemoteRobot(self.endpoint, context=self.ctx, sock=self.sock)
            if intro is None:
                intro = self._intro(loop)
            stats.refused_peers = self.pin.refused
            if intro is None:
                return stats
            horizon = intro.get("horizon")
            if horizon != loop.chunk:
                raise ValueError(
                    f"the robot asks for chunks of {horizon}, this server makes {loop.chunk}"
                )
            r.info = dict(intro.get("robot") or {})
            r.layouts = layouts_from_spaces(r.info.get("spaces") or {})
            if on_connect is not None:
                on_connect(r.info)
            stats.last_cycle = -1
            stats.sessions += 1
            limit = loop.run(r, str(intro.get("session")))
            stats.refused += sum(1 for m in r._replies.values() if m.type == Msg.ERROR)
            stats.refused_peers = self.pin.refused
            if limit or not keep_serving:
                return stats
            intro, r.intro = r.intro, None

    def _intro(self, loop: _Loop) -> dict[str, Any] | None:
        while not loop.over():
            if self.sock.poll(50, zmq.POLLIN):
                msg = decode(self.sock.recv_multipart(copy=False))
                if msg.type == Msg.SERVE:
                    return msg.header
        return None

    def close(self) -> None:
        self.sock.close(0)
        self.auth.stop()
        self.ctx.term()

    def __enter__(self) -> PolicyListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Loop:
    """Observations in, chunks out, until the session ends or a limit is reached."""

    policy: PolicyFn
    chunk: int
    stats: ServeStats
    max_chunks: int | None
    end: float | None
    should_stop: Callable[[], bool] | None
    workers: int
    wake_r: int
    wake: Callable[[Future[np.ndarray]], None]

    def over(self) -> bool:
        """A limit reached (its name in stats.reason)."""
        stats = self.stats
        if self.should_stop is not None and self.should_stop():
            stats.reason = "stopped"
        elif self.max_chunks is not None and stats.chunks >= self.max_chunks:
            stats.reason = "max_chunks"
        elif self.end is not None and time.monotonic() >= self.end:
            stats.reason = "duration"
        else:
            return False
        return True

    def run(self, r: RemoteRobot, session: str) -> bool:
        """True when it ended on a limit (the session still open), False when the robot ended
        it (the session closed, the hand stopped, no observation)."""
        stats, chunk, workers = self.stats, self.chunk, self.workers
        n = len(r.info["spaces"]["action"]["idle"])
        inflight: list[tuple[Future[np.ndarray], int, int]] = []  # (result, cycle, recv_ns)
        last_obs = -1
        last_seen = time.monotonic()
        poller = zmq.Poller()
        poller.register(r.sock, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        with ThreadPoolExecutor(workers, thread_name_prefix="policy") as pool:
            while not self.over():
                # Read everything the robot sent, as it comes, also while every worker is busy:
                # each observation is stamped when it is read (its `recv_ns`), the newest wins.
                while r._pump(0):
                    pass
                if r.closed_reason is not None:
                    stats.reason = f"SessionClosedError: {SessionClosedError(r.closed_reason)}"
                    return False
                if r.intro is not None:  # bound: a robot's new `serve` (the next session)
                    stats.reason = "a new serving session"
                    return False
                if r._stopped is not None:
                    ev = r._stopped
                    exc = SafetyStopError(
                        str(ev.get("to")), str(ev.get("reason")), str(ev.get("detail", ""))
                    )
                    stats.reason = f"SafetyStopError: {exc}"
                    return False
                for item in [x for x in inflight if x[0].done()]:
                    inflight.remove(item)
                    fut, cycle, recv_ns = item
                    if cycle <= stats.last_cycle:  # a newer chunk went out first: useless now
                        stats.dropped += 1
                        continue
                    actions = np.asarray(fut.result(), dtype=np.float64)
                    if actions.shape != (chunk, n):
                        raise ValueError(
                            f"the policy returned shape {actions.shape}, not ({chunk}, {n}) "
                            "(chunk x actuators)"
                        )
                    fields = {
                        "session": session,
                        "cycle": cycle,
                        "recv_ns": recv_ns,
                        "send_ns": time.monotonic_ns(),
                    }
                    try:
                        r._send(Msg.CHUNK, fields, {"actions": np.ascontiguousarray(actions)})
                    except zmq.Again:  # bound, and the robot is not connected (any more)
                        stats.unsent += 1
                        continue
                    stats.chunks += 1
                    stats.last_cycle = cycle
                obs = r._obs
                if obs is not None and obs.cycle > last_obs:
                    last_seen = time.monotonic()
                    if len(inflight) < workers:  # a free worker starts on the newest at once
                        r._obs = None
                        last_obs = obs.cycle
                        fut = pool.submit(self.policy, obs)
                        inflight.append((fut, obs.cycle, obs.received_ns or time.monotonic_ns()))
                        fut.add_done_callback(self.wake)
                        continue
                if not inflight and time.monotonic() - last_seen > r.timeout_s:
                    stats.reason = "RobotTimeoutError: no observation"
                    return False
                if self.wake_r in dict(poller.poll(50)):
                    os.read(self.wake_r, 4096)
        return True


def load_policy(spec: str) -> PolicyFn:
    """`module:fn` -> the function (the module imported from the Python path)."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"policy must be module:function or a bundle directory, got {spec!r}")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"{spec!r}: {name} is not a function of {module}")
    return fn  # type: ignore[no-any-return]
