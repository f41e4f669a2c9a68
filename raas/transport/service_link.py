"""The robot daemon's one link to the reservation service, without a Python thread in the loop.

A child process (`python -m raas.transport.service_link`) does all the talking over HTTP:

    GET  /robots/{id}/revocations?since&wait   long-poll: revoked leases  -> Revoked(jti, expires)
    GET  /robots/{id}/commands?since&wait      long-poll: REST e-stops    -> Estop / ClearEstop
    POST /robots/{id}/heartbeat                every 2 s (at once when `health` changed) with the
                                               latest payload the loop reported

The loop process owns both ends of two ipc sockets and never blocks on either:

    items   PULL (loop binds)  <- PUSH (child)   `ServiceLink.drain(limit)`, bounded, NOBLOCK
    reports PUSH (loop binds)  -> PULL (child)   `ServiceLink.report(payload)`, CONFLATE: only the
                                                 newest payload is kept, a full queue drops
A push from the service reaches the loop within one cycle after it arrives (tens of ms).

The child survives the service being down (each follower retries with a growing pause, up to
5 s, and writes one stderr line per kind of failure, and one when it recovers), exits within
about 0.25 s when its parent dies, and posts a last heartbeat with status "offline" when it is
told to stop. E-stops issued before the child started are not replayed: a restarted daemon does
not re-latch an old e-stop (it starts from the feed's head, delivering only commands dated at or
after its own start).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, cast

import httpx
import msgpack
import zmq

from raas.leases.follow import RevocationFollower
from raas.transport.config import RevocationFeed

HEARTBEAT_S = 2.0
TOKEN_ENV = "RAAS_LINK_TOKEN"
_IPC_MAX = 100  # sun_path is 108 bytes on Linux
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)


@dataclass(frozen=True, slots=True)
class Revoked:
    """A lease of this robot was revoked; refuse its `jti` until `expires` (unix seconds)."""

    jti: str
    expires: float


@dataclass(frozen=True, slots=True)
class Estop:
    """Someone (staff or the holder of a current reservation) pressed e-stop in the service."""

    seq: int
    by: str
    note: str


@dataclass(frozen=True, slots=True)
class ClearEstop:
    """Staff cleared the e-stop in the service."""

    seq: int
    by: str
    note: str


LinkItem = Revoked | Estop | ClearEstop

# Wire between child and loop (msgpack): ["r", jti, expires] | ["e"|"c", seq, by, note]
_REVOKED, _ESTOP, _CLEAR = "r", "e", "c"


def _decode(raw: bytes) -> LinkItem | None:
    try:
        msg = msgpack.unpackb(raw)
        if msg[0] == _REVOKED:
            return Revoked(str(msg[1]), float(msg[2]))
        if msg[0] == _ESTOP:
            return Estop(int(msg[1]), str(msg[2]), str(msg[3]))
        if msg[0] == _CLEAR:
            return ClearEstop(int(msg[1]), str(msg[2]), str(msg[3]))
    except (ValueError, TypeError, IndexError, KeyError, msgpack.ExtraData):
        return None
    return None


def _jsonable(value: Any) -> Any:
    """json.dumps fallback for numpy scalars and arrays in a report payload."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable in a heartbeat payload: {type(value).__name__}")


def _ipc_dir(run_dir: Path) -> Path:
    """run_dir, or the temp dir when an ipc path in run_dir would be too long for a socket."""
    probe = f"{run_dir.resolve()}/link-reports-{os.getpid()}-{'f' * 16}.sock"  # with the tag
    return run_dir if len(probe) <= _IPC_MAX else Path(tempfile.gettempdir())


class ServiceLink:
    """The loop's side: two ipc sockets and the child process that talks to the service.

    Everything here is non-blocking and allocation-light; `drain` and `report` are meant to be
    called from the loop's cycle (report at ~1 Hz: it encodes JSON), `close` at shutdown.
    """

    def __init__(
        self,
        ctx: zmq.Context[Any],
        feed: RevocationFeed,
        run_dir: Path,
        *,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        ipc = _ipc_dir(run_dir).resolve()
        pid = os.getpid()
        tag = f"{pid}-{id(self):x}"
        self.items_endpoint = f"ipc://{ipc}/link-items-{tag}.sock"
        self.reports_endpoint = f"ipc://{ipc}/link-reports-{tag}.sock"
        self.dropped_reports = 0
        self.malformed_items = 0
        self._items: zmq.Socket[bytes] = ctx.socket(zmq.PULL)
        self._items.linger = 0
        self._reports: zmq.Socket[bytes] = ctx.socket(zmq.PUSH)
        self._reports.linger = 0
        self._reports.setsockopt(zmq.CONFLATE, 1)  # latest wins
        try:
            self._items.bind(self.items_endpoint)
            self._reports.bind(self.reports_endpoint)
        except zmq.ZMQError:
            self._items.close()
            self._reports.close()
            raise
        token = os.environ.get(feed.token_env, "")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "raas.transport.service_link",
                "--items",
                self.items_endpoint,
                "--reports",
                self.reports_endpoint,
                "--service-url",
                feed.service_url,
                "--robot-id",
                str(feed.robot_id),
                "--wait",
                str(feed.wait_s),
                "--heartbeat",
                str(heartbeat_s),
                "--parent",
                str(pid),
            ],
            env={**os.environ, TOKEN_ENV: token},
        )

    def drain(self, limit: int) -> list[LinkItem]:
        """Up to `limit` items that arrived, oldest first; never waits.

        A `Revoked` repeats (the child resends the current set after every feed answer, so a
        loop built later catches up): treat it as idempotent. Estop/ClearEstop come once each."""
        out: list[LinkItem] = []
        # the usual cycle: nothing waiting, and no zmq.Again raised to say so
        if not cast(int, self._items.get(_EVENTS)) & _POLLIN:
            return out
        for _ in range(limit):
            try:
                raw = self._items.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            item = _decode(raw)
            if item is None:
                self.malformed_items += 1
            else:
                out.append(item)
        return out

    def report(self, payload: dict[str, Any]) -> None:
        """Hand the child the heartbeat payload (status/safety/wear/health); latest wins.

        Never blocks and never raises for a full queue or a child that is not connected yet
        (the payload is dropped and the next one goes). A payload that is not JSON raises
        TypeError: that is a programming error, not a runtime condition."""
        data = json.dumps(payload, default=_jsonable, allow_nan=False).encode()
        try:
            self._reports.send(data, zmq.NOBLOCK)
        except zmq.Again:
            self.dropped_reports += 1

    @property
    def alive(self) -> bool:
        """True while the child runs (a waitpid: call it outside the cycle)."""
        return self.proc.poll() is None

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the child (it posts a last "offline" heartbeat first) and close the sockets."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._items.close()
        self._reports.close()
        for endpoint in (self.items_endpoint, self.reports_endpoint):
            Path(endpoint.removeprefix("ipc://")).unlink(missing_ok=True)


# -- the child process ---------------------------------------------------------------------


class _Complaints:
    """One stderr line per kind of failure until the next success, then one 'recovered' line."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.kinds: set[str] = set()
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, httpx.HTTPStatusError):
            kind = f"HTTP {exc.response.status_code}"
            detail = exc.response.text[:200].replace("\n", " ")
        else:
            kind = type(exc).__name__
            detail = str(exc)[:200]
        with self._lock:
            if kind in self.kinds:
                return
            self.kinds.add(kind)
        sys.stderr.write(f"raasd service link: {self.what}: {kind}: {detail} (retrying)\n")
        sys.stderr.flush()

    def ok(self) -> None:
        with self._lock:
            if not self.kinds:
                return
            self.kinds.clear()
        sys.stderr.write(f"raasd service link: {self.what}: recovered\n")
        sys.stderr.flush()


class _Backoff:
    def __init__(self, first: float = 0.5, most: float = 5.0) -> None:
        self.first, self.most = first, most
        self.next = first

    def pause(self) -> float:
        p, self.next = self.next, min(self.next * 2, self.most)
        return p

    def reset(self) -> None:
        self.next = self.first


class CommandFollower:
    """Long-polls `GET /robots/{id}/commands`, starting at the feed's head (no history)."""

    def __init__(
        self, base_url: str, robot_id: int, token: str, *, started_at: float, wait: float = 25.0
    ) -> None:
        self.robot_id = robot_id
        self.wait = wait
        self.started_at = started_at
        self.cursor: int | None = None  # None until the head is known
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, read=wait + 10.0),
        )

    def _get(self, since: int, wait: float) -> dict[str, Any]:
        r = self._client.get(
            f"/robots/{self.robot_id}/commands", params={"since": since, "wait": wait}
        )
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    def _catch_up(self) -> list[dict[str, Any]]:
        """Skip to the head; keep only commands dated at or after this follower's start."""
        cursor, fresh = 0, []
        while True:
            body = self._get(cursor, 0)
            commands = body["commands"]
            fresh += [c for c in commands if _timestamp(c["at"]) >= self.started_at]
            cursor = int(body["cursor"])
            head = body.get("head")
            if not commands or (head is not None and cursor >= int(head)):
                break
        self.cursor = cursor
        return fresh

    def poll(self) -> list[dict[str, Any]]:
        """One round: the new commands (possibly none)."""
        if self.cursor is None:
            return self._catch_up()
        body = self._get(self.cursor, self.wait)
        self.cursor = int(body["cursor"])
        return list(body["commands"])

    def close(self) -> None:
        self._client.close()


def _timestamp(iso: str) -> float:
    at = datetime.fromisoformat(iso)
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


def _follow(
    name: str,
    poll: Callable[[], list[bytes]],
    ctx: zmq.Context[Any],
    endpoint: str,
) -> None:
    """A follower thread: poll forever, PUSH what it yields to the loop (own socket)."""
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    push.connect(endpoint)
    complaints, backoff = _Complaints(name), _Backoff()
    while True:
        try:
            messages = poll()
        except Exception as exc:  # the service is down, restarting or refusing: retry
            complaints.failed(exc)
            time.sleep(backoff.pause())
            continue
        complaints.ok()
        backoff.reset()
        for m in messages:
            push.send(m)  # blocks only while the loop is not draining: this thread waits


class _Heartbeats:
    """The child's main thread: latest payload in, POSTs out, parent watch, clean stop."""

    def __init__(
        self, base_url: str, robot_id: int, token: str, period_s: float, timeout_s: float = 5.0
    ) -> None:
        self.path = f"/robots/{robot_id}/heartbeat"
        self.period_s = period_s
        self.payload: dict[str, Any] = {}
        self.complaints = _Complaints("heartbeat")
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_s),
        )

    def post(self, payload: dict[str, Any], timeout_s: float | None = None) -> bool:
        timeout = self._client.timeout if timeout_s is None else httpx.Timeout(timeout_s)
        try:
            r = self._client.post(self.path, json=payload, timeout=timeout)
            if r.status_code == 422 and set(payload) - {"status"}:
                # The service refuses part of the payload: say so once, and keep the robot
                # online with the part it accepts (the status) rather than go silent.
                self.complaints.failed(httpx.HTTPStatusError("", request=r.request, response=r))
                r = self._client.post(
                    self.path, json={"status": payload.get("status", "available")}, timeout=timeout
                )
                r.raise_for_status()
                return False
            r.raise_for_status()
        except Exception as exc:
            self.complaints.failed(exc)
            return False
        self.complaints.ok()
        return True

    def run(self, pull: zmq.Socket[bytes], parent: int, stop: threading.Event) -> None:
        poller = zmq.Poller()
        poller.register(pull, zmq.POLLIN)
        due = 0.0  # the first heartbeat goes at once
        while not stop.is_set() and os.getppid() == parent:
            now = time.monotonic()
            if now >= due:
                self.post(self.payload)
                due = time.monotonic() + self.period_s
                continue
            if not poller.poll(timeout=int(min(250.0, (due - now) * 1000)) + 1):
                continue
            try:
                raw = pull.recv(zmq.NOBLOCK)
                payload = json.loads(raw)
            except (zmq.Again, ValueError):
                continue
            if isinstance(payload, dict):
                if payload.get("health") != self.payload.get("health"):
                    due = 0.0  # a new health result goes out at once
                self.payload = payload

    def offline(self) -> None:
        """A last heartbeat saying the robot is going offline (short timeout: best effort)."""
        self.post({**self.payload, "status": "offline"}, timeout_s=1.5)


def _revocation_poll(follower: RevocationFollower) -> Callable[[], list[bytes]]:
    def poll() -> list[bytes]:
        follower.poll()
        follower.revoked.prune(time.time())
        # Send the whole current set each round: cheap, and the loop may have missed some.
        with follower.revoked._lock:  # the set is private to this process
            items = list(follower.revoked._expiry.items())
        return [msgpack.packb([_REVOKED, jti, expires]) for jti, expires in items]

    return poll


def _command_poll(follower: CommandFollower) -> Callable[[], list[bytes]]:
    def poll() -> list[bytes]:
        out = []
        for c in follower.poll():
            kind = {"estop": _ESTOP, "clear_estop": _CLEAR}.get(str(c.get("kind")))
            if kind is not None:
                out.append(
                    msgpack.packb(
                        [kind, int(c["seq"]), str(c.get("by", "")), str(c.get("note", ""))]
                    )
                )
        return out

    return poll


def _leave_realtime() -> None:
    """Spawned from a loop that may hold SCHED_FIFO and a pinned CPU: give both back."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    with contextlib.suppress(OSError):
        os.nice(5)


def run_child(a: argparse.Namespace) -> None:
    started_at = time.time()
    _leave_realtime()
    token = os.environ.get(TOKEN_ENV, "")
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    ctx: zmq.Context[Any] = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    pull.setsockopt(zmq.CONFLATE, 1)
    pull.connect(a.reports)
    revocations = RevocationFollower(a.service_url, a.robot_id, token, wait=a.wait)
    commands = CommandFollower(a.service_url, a.robot_id, token, started_at=started_at, wait=a.wait)
    for name, poll in (
        ("revocations", _revocation_poll(revocations)),
        ("commands", _command_poll(commands)),
    ):
        threading.Thread(
            target=_follow, args=(name, poll, ctx, a.items), name=name, daemon=True
        ).start()
    beats = _Heartbeats(a.service_url, a.robot_id, token, a.heartbeat)
    with contextlib.suppress(KeyboardInterrupt):
        beats.run(pull, a.parent, stop)
    if stop.is_set():  # told to stop by the daemon: say so; a dead parent gets no goodbye
        beats.offline()
    sys.stderr.flush()
    # The follower threads sit in long-polls; their sockets and clients go with the process.
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="the robot daemon's link to the reservation service")
    p.add_argument("--items", required=True, help="ipc endpoint the loop PULLs items from")
    p.add_argument("--reports", required=True, help="ipc endpoint the loop PUSHes reports to")
    p.add_argument("--service-url", required=True)
    p.add_argument("--robot-id", type=int, required=True)
    p.add_argument("--wait", type=float, default=25.0, help="long-poll wait (s)")
    p.add_argument("--heartbeat", type=float, default=HEARTBEAT_S, help="heartbeat period (s)")
    p.add_argument("--parent", type=int, required=True, help="exit when this pid is gone")
    run_child(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
