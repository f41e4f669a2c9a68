"""Policy server (mode `serve`): a remote policy server sends chunks of H actions; the loop never
waits for them.

The policy server is a client like any other: it dials the robot's control socket (DEALER to the
ROUTER, CurveZMQ), opens a `control` session with the lease and sends `serve` (the chunk size
H). From then on, each cycle k the daemon sends observation k (`obs`, the remote step's message)
and decides at once: until the first chunk arrives the hand holds where it is (counted as
`cycles_before_first_chunk`, not a fallback); then cycle k's action is row `k - c` of the newest
accepted chunk computed from a cycle `c` covering k (raas/core/chunks.py has the rule and its
blending; the row is planned for k, so the loop's decide budget does not apply to it: a stalled
cycle applies it late rather than repeating the last action); none -> the loop's fallback,
counted, and after N in a row the supervisor holds the hand (`client_late`), as for a late remote
step. Every applied action goes through the
supervisor and conditioning like any other.

A `chunk` request carries the session id, the cycle it was computed from and the server's
receive and send stamps (its own clock); it is refused (`bad_chunk`, counted per reason) when it
names another session, a cycle whose observation was not sent in this mode (future), a chunk too
old to have a row left, a wrong shape or non-finite values. Each accepted chunk's timing (the
observation's cycle, sent and arrival stamps, the server's stamps, the clock offset estimate,
arrival cycle, rows used and discarded) becomes a `chunk` event when it leaves the buffer: on
the stream and in the recording. docs/protocol.md, Policy servers.

The other direction (`serve` with `dial: {endpoint, server_key}`): a policy server that binds
(reachable, e.g. a GPU server) while the robot may only dial out (behind a lab's NAT). The
researcher's control session sends `serve` with `dial`; the robot connects a DEALER to that
endpoint (CurveZMQ: the policy server's key pinned, the robot's own keypair as the client key,
so the server can check which robot dialled), sends it a `serve` message (session, horizon,
blend, the robot's hello) and then each observation, and reads its chunks there: the same
rules, counters, fallback, watchdog and recording. The connect never blocks the loop (ZeroMQ
connects in its I/O thread; sends that would block are dropped). The session that sent `serve`
owns the mode: when it closes, serving ends and the hand stops as for any closed session.

`serve` with `episode: true` (and an optional `seed`): serve one episode of the cell's task (the
remote stepper's referee, raas/task/stepping.py) and end by itself. The episode starts with the
first chunk (until then each observation is the episode's first: the goal, no judgement, so a
server's connect and warm-up do not eat into the first goal's timeout); its goals come from
(seed, 0), those of a bundle run `run(1, seed)`. When the task ends it (a drop, a goal timeout,
the last success) the daemon ends serving as `stop` would (the hand holds where it is:
`episode_over`) and the `serve_done` summary carries `episodes: [record]`, shaped like a bundle
run's episode record; a safety stop while serving ends it as `held` with the stop's reason.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import zmq
from raas_client.errors import ProtocolError
from raas_client.wire import ErrorCode, Msg, decode

from raas.core.chunks import REFUSALS, Blend, ChunkBuffer, ChunkUse, Verdict
from raas.core.observation import Observation
from raas.safety import Cause, Reason, Transition
from raas.transport.errors import RequestRefusedError

if TYPE_CHECKING:
    from raas.transport.session import SessionController

_MS = 1_000_000
MAX_HORIZON = 1000
#: Refusal reasons the daemon adds to the chunk rule's own (raas.core.chunks.Verdict).
WRONG_SESSION = "wrong_session"
BAD_FIELDS = "bad_fields"
UNSENT = "unsent"
_POLLIN, _EVENTS = int(zmq.POLLIN), int(zmq.EVENTS)


@dataclass(frozen=True, slots=True)
class ServeRequest:
    """`serve`'s fields, checked (PolicyServe.parse)."""

    horizon: int
    blend: Blend
    dial: tuple[str, bytes] | None = None
    #: serve one episode of the cell's task, then end by itself
    episode: bool = False
    #: the episode's goals come from (seed, 0) (None: the task's own seed)
    seed: int | None = None


def parse_dial(value: object) -> tuple[str, bytes]:
    """`serve`'s `dial` -> (endpoint, the policy server's Curve public key); RequestRefusedError
    (`bad_dial`) naming the field at fault."""

    def bad(message: str) -> NoReturn:
        raise RequestRefusedError(ErrorCode.BAD_DIAL, message)

    if not isinstance(value, dict):
        bad("dial must be a map {endpoint, server_key}")
    endpoint, key = value.get("endpoint"), value.get("server_key")
    if not isinstance(endpoint, str) or not endpoint.startswith("tcp://"):
        bad(f"dial.endpoint must be tcp://HOST:PORT, got {endpoint!r}")
    host, _, port = endpoint[len("tcp://") :].rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535 or "*" in host:
        bad(f"dial.endpoint must be tcp://HOST:PORT (a port 1..65535), got {endpoint!r}")
    if not isinstance(key, str) or len(key) != 40:
        bad("dial.server_key must be the policy server's Curve public key (40 Z85 characters)")
    try:
        zmq.utils.z85.decode(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError, KeyError, struct.error):  # struct: > 2**32 per 5
        bad("dial.server_key is not Z85")
    return endpoint, key.encode("ascii")


class PolicyServe:
    """The `serve` mode of a SessionController (raas.transport.modes.ControlMode)."""

    name = "serve"

    def __init__(self, host: SessionController) -> None:
        self.host = host
        self.n = len(host.packer.actuators)
        self.buffer: ChunkBuffer | None = None
        self.session = ""
        self.first_cycle = -1  # the first observation sent in this mode
        #: observation cycle -> when it was sent (a ring: the cycle modulo its size)
        self._sent_ns = np.zeros(4096, dtype=np.int64)
        self._sent_cycle = np.full(4096, -1, dtype=np.int64)
        #: computed cycle -> the accepted chunk's timing, until it leaves the buffer
        self._timing: dict[int, dict[str, Any]] = {}
        self.refused: dict[str, int] = {}
        self.gaps = 0
        self.chunks = 0
        self.waiting = 0  # cycles held before the first chunk arrived
        self.ages: list[int] = []  # computation age of each applied action (this serve)
        #: the clock offset estimate (server minus robot, ns) from the least-delayed exchange
        self.offset_ns: int | None = None
        self._best_delay = 1 << 62
        self.last_summary: dict[str, Any] | None = None
        #: The DEALER to a policy server the robot dialled (None: the server dialled the robot)
        self.dialled: zmq.Socket[bytes] | None = None
        self.dial_endpoint = ""
        self._poller: zmq.Poller | None = None
        #: `serve` with `episode`: one episode of the cell's task, its goals from (seed, 0);
        #: its record once the task (or a safety stop) ended it
        self.episode = False
        self.seed: int | None = None
        self.record: dict[str, Any] | None = None

    # ---------------------------------------------------------------- starting
    def parse(self, h: dict[str, Any]) -> ServeRequest:
        """`serve`'s fields checked before anything changes."""
        horizon = h.get("horizon")
        if not isinstance(horizon, int) or isinstance(horizon, bool):
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "serve needs horizon (an integer)")
        if not 1 <= horizon <= MAX_HORIZON:
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, f"horizon must be 1..{MAX_HORIZON}, got {horizon}"
            )
        blend_name = h.get("blend", Blend.NEWEST.value)
        try:
            blend = Blend(blend_name)
        except ValueError:
            names = ", ".join(b.value for b in Blend)
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, f"blend must be one of {names}, got {blend_name!r}"
            ) from None
        dial = parse_dial(h["dial"]) if h.get("dial") is not None else None
        if dial is not None and self.host.sockets.keys is None:
            raise RequestRefusedError(
                ErrorCode.BAD_DIAL, "this robot runs without CurveZMQ (plain): it does not dial"
            )
        episode, seed = h.get("episode", False), h.get("seed")
        if not isinstance(episode, bool):
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "episode must be true or false")
        if seed is not None and (
            not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63
        ):
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "seed must be an integer >= 0")
        if episode and self.host.stepping.task is None:
            raise RequestRefusedError(
                ErrorCode.UNAVAILABLE,
                "episode: this cell cannot judge its task (its motion capture does not track "
                "the block's markers)",
            )
        return ServeRequest(horizon, blend, dial, episode, seed if episode else None)

    def start(self, parsed: ServeRequest, session_id: str) -> dict[str, Any]:
        horizon, blend, dial = parsed.horizon, parsed.blend, parsed.dial
        keys = self.host.sockets.keys
        self.end("restarted")
        self.dial_endpoint = ""
        self.buffer = ChunkBuffer(self.n, horizon, blend=blend, on_retire=self._retired)
        self.session = session_id
        self.first_cycle = -1
        self._sent_cycle[:] = -1
        self._timing.clear()
        self.refused = {
            **{v.value: 0 for v in REFUSALS},
            WRONG_SESSION: 0,
            BAD_FIELDS: 0,
            UNSENT: 0,
        }
        self.gaps = self.chunks = self.waiting = 0
        self.ages = []
        self.offset_ns, self._best_delay = None, 1 << 62
        self.episode, self.seed, self.record = parsed.episode, parsed.seed, None
        started: dict[str, Any] = {"horizon": horizon, "blend": blend.value, "n_actuators": self.n}
        if parsed.episode:
            started["episode"] = True
        if dial is not None:
            assert keys is not None
            self._dial(dial[0], dial[1], keys.public, keys.secret, started)
            started["dial"] = dial[0]
        # the recording (and the stream) name what served: who asked, and the dialled server
        self.host._event(
            "serve_started",
            {
                **started,
                "session": session_id,
                "episode": parsed.episode,
                "seed": parsed.seed,
                "dial": None if dial is None else dial[0],
                "server_key": None if dial is None else dial[1].decode("ascii"),
            },
        )
        return started

    def _dial(
        self, endpoint: str, server_key: bytes, public: bytes, secret: bytes, intro: dict[str, Any]
    ) -> None:
        """Connect a DEALER to the policy server (ZeroMQ connects in its I/O thread: no wait
        here) and queue the `serve` message it reads first."""
        host = self.host
        sock: zmq.Socket[bytes] = host.sockets.ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.sndhwm = sock.rcvhwm = 1000
        sock.maxmsgsize = host.cfg.max_frame_bytes
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.curve_serverkey = server_key
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            self.end("dial failed")
            raise RequestRefusedError(
                ErrorCode.BAD_DIAL, f"cannot dial {endpoint}: {exc}"
            ) from None
        self.dialled, self.dial_endpoint = sock, endpoint
        self._poller = zmq.Poller()
        self._poller.register(host.sockets.control, zmq.POLLIN)
        self._poller.register(sock, zmq.POLLIN)
        fields = {**intro, "session": self.session, "robot": host._hello()}
        host.sockets.send_on(sock, Msg.SERVE, fields)

    def _read_dialled(self, limit: int) -> None:
        """The dialled policy server's messages: chunks only; each refusal answered there."""
        sock, host = self.dialled, self.host
        for _ in range(limit):
            if sock is None or self.dialled is not sock or not int(sock.get(_EVENTS)) & _POLLIN:
                return
            frames = sock.recv_multipart(copy=False)
            host.counters.messages += 1
            req_id = None
            try:
                msg = decode(frames, host._limit)
                req_id = msg.get("id")
                if msg.type != Msg.CHUNK:
                    raise RequestRefusedError(
                        ErrorCode.BAD_REQUEST,
                        f"a dialled policy server sends chunks, not {msg.type!r}",
                    )
                self.on_chunk(msg.header, msg.arrays.get("actions"))
            except ProtocolError as exc:
                host.counters.malformed += 1
                self._error(req_id, ErrorCode.BAD_REQUEST, str(exc))
            except RequestRefusedError as exc:
                host.counters.refused += 1
                self._error(req_id, exc.code, exc.message)

    def _error(self, req_id: Any, code: str, message: str) -> None:
        if self.dialled is not None:
            fields = {"id": req_id, "code": code, "message": message[:500]}
            self.host.sockets.send_on(self.dialled, Msg.ERROR, fields)

    # ---------------------------------------------------------------- ControlMode
    def prepare(self) -> None:
        """Before the trigger: warm the observation's task judgement (RemoteStep.prepare)."""
        self.host.stepping.prepare()

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        host = self.host
        buf = self.buffer
        assert buf is not None
        if not host.realtime:
            self._lockstep_wait()
        k = obs.cycle
        if self.dialled is not None:
            self._read_dialled(host.cfg.max_messages_per_cycle)
        task = host.stepping.task
        if self.episode and buf.accepted == 0 and task is not None:
            task.new_episode(0, self.seed)  # the episode starts with the first chunk
        sent = host.stepping.observation(obs, self.dialled)  # obs k out; no wait for an answer
        slot = k % self._sent_ns.shape[0]
        self._sent_ns[slot], self._sent_cycle[slot] = sent, k
        if self.first_cycle < 0:
            self.first_cycle = k
        judged = host.stepping.judged
        if self.episode and judged is not None and judged.get("over"):
            self._episode_over(str(judged.get("outcome")))
            out[:] = host.hold
            return True
        if buf.accepted == 0:  # no chunk yet: the hand holds where it is, not a fallback
            self.waiting += 1
            out[:] = host.hold
            return True
        if buf.action_for(k, out):
            self.ages.append(buf.last_age)
            host.planned = True  # row k of a chunk: not stale however long this cycle took
            return True
        self.gaps += 1
        return False  # the loop's fallback, counted; N+1 in a row: the supervisor holds

    def _lockstep_wait(self) -> None:
        """The lockstep rig has no wall clock: a served cycle lasts one period of wall time, so a
        policy server's latency means the same number of cycles as on the realtime rig."""
        host = self.host
        deadline = time.monotonic_ns() + host.period_ns
        while (left := deadline - time.monotonic_ns()) > 0:
            if self._poller is not None:  # the control socket and the dialled one
                if self._poller.poll(max(1, left // _MS)):
                    host._service(host.cfg.max_messages_per_cycle)
                    self._read_dialled(host.cfg.max_messages_per_cycle)
            elif host.sockets.wait(max(1, left // _MS)):
                host._service(host.cfg.max_messages_per_cycle)
            if host.mode != "serve":
                return

    def stopped(self, t: Transition) -> None:
        """A stop while serving leaves serve mode (the server sends `serve` again to re-arm); a
        served episode ends `held` with the stop's reason, as a bundle run's does."""
        self.host.mode = "hold"
        if self.episode and self.buffer is not None and self.record is None:
            self.record = self._record("held", t.reason.value, t.detail)
        self.end(f"{t.after.label}: {t.reason.value}")

    def _record(
        self, reason: str, safety_reason: str = "", safety_detail: str = ""
    ) -> dict[str, Any]:
        """The served episode's record, shaped like a bundle run's (raas/task/evaluation.py)."""
        task = self.host.stepping.task
        assert task is not None  # parse() refused an episode without one
        rec = task.task.record(reason, safety_reason, safety_detail)
        return dict(rec.as_dict(1.0 / self.host.rate_hz))

    def _episode_over(self, outcome: str) -> None:
        """The cell's task ended the served episode: serving ends as `stop` ends it (the hand
        holds where it is), the record in serve_done."""
        host = self.host
        self.record = self._record(outcome)
        host.mode = "hold"
        self.end("done")
        host.supervisor.disarm(Cause.POLICY, Reason.EPISODE_OVER, outcome)

    def end(self, reason: str) -> None:
        if self.dialled is not None:
            self.dialled.close(0)
            self.dialled, self._poller = None, None
        if self.buffer is None:
            return
        buf, self.buffer = self.buffer, None
        buf.close()  # each chunk still held reports its use
        self.last_summary = {"reason": reason, **self.summary(buf)}
        if self.episode:  # as a bundle run's summary: its episodes' records (none: cut short)
            self.last_summary["episodes"] = [self.record] if self.record is not None else []
        # to the stream, the recording and the controlling session (a job's worker waits on it)
        self.host.run_event("serve_done", self.last_summary)

    # ---------------------------------------------------------------- chunks
    def on_chunk(self, h: dict[str, Any], actions: np.ndarray | None) -> None:
        """A `chunk` request from the controller (the host checked who sent it)."""
        host = self.host
        buf = self.buffer
        if host.mode != "serve" or buf is None:
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "not serving: send serve first")
        if h.get("session") != self.session:
            self._refuse(WRONG_SESSION, f"chunk names session {h.get('session')!r}")
        c, recv_ns, send_ns = h.get("cycle"), h.get("recv_ns"), h.get("send_ns")
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (c, recv_ns, send_ns)):
            self._refuse(BAD_FIELDS, "a chunk needs integer cycle, recv_ns and send_ns")
        assert isinstance(c, int) and isinstance(recv_ns, int) and isinstance(send_ns, int)
        if actions is None:
            self._refuse(Verdict.WRONG_SIZE.value, "a chunk carries array 'actions'")
        assert actions is not None
        arrival_ns = time.monotonic_ns()
        k = host.cycle
        if self.first_cycle < 0 or c < self.first_cycle:
            self._refuse(UNSENT, f"cycle {c}: no observation of this serve had that cycle")
        sent_ns = self._sent_of(c) or 0  # 0: its stamp already left the ring (no latency)
        verdict = buf.offer(c, np.asarray(actions, dtype=np.float64), arrival_cycle=k)
        if verdict is not Verdict.ACCEPTED:
            self._refuse(verdict.value, self._why(verdict, c, actions.shape, k))
        self.chunks += 1
        timing: dict[str, Any] = {
            "cycle": c,
            "arrival_cycle": k,
            "obs_sent_ns": sent_ns,
            "server_recv_ns": recv_ns,
            "server_send_ns": send_ns,
            "arrival_ns": arrival_ns,
            "latency_ns": arrival_ns - sent_ns if sent_ns else None,
        }
        if sent_ns:
            # NTP's estimate: offset = ((t1 - t0) + (t2 - t3)) / 2, trusted from the exchange
            # with the least network delay (t3 - t0) - (t2 - t1) so far.
            delay = (arrival_ns - sent_ns) - (send_ns - recv_ns)
            if 0 <= delay < self._best_delay:
                self._best_delay = delay
                self.offset_ns = ((recv_ns - sent_ns) + (send_ns - arrival_ns)) // 2
            timing["network_ns"] = delay
        timing["clock_offset_ns"] = self.offset_ns
        self._timing[c] = timing

    def _sent_of(self, c: int) -> int | None:
        slot = c % self._sent_ns.shape[0]
        return int(self._sent_ns[slot]) if self._sent_cycle[slot] == c else None

    def _why(self, v: Verdict, c: int, shape: tuple[int, ...], k: int) -> str:
        buf = self.buffer
        assert buf is not None
        if v is Verdict.WRONG_SIZE:
            return f"actions must have shape ({buf.horizon}, {self.n}), not {shape}"
        if v is Verdict.NON_FINITE:
            return "actions hold NaN or infinite values"
        if v is Verdict.FUTURE:
            return f"cycle {c} is after the current cycle {k}"
        if v is Verdict.TOO_OLD:
            return f"cycle {c} is too old at cycle {k} (horizon {buf.horizon})"
        return f"cycle {c} is not newer than a chunk already held"

    def _refuse(self, reason: str, message: str) -> NoReturn:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        raise RequestRefusedError(ErrorCode.BAD_CHUNK, f"{reason}: {message}")

    def _retired(self, use: ChunkUse) -> None:
        timing = self._timing.pop(use.computed_cycle, {"cycle": use.computed_cycle})
        timing.update(
            used=use.used,
            discarded=use.discarded,
            first_row=use.first_row if use.used else None,
        )
        self.host._event("chunk", timing)

    # ---------------------------------------------------------------- summary
    def summary(self, buf: ChunkBuffer | None = None) -> dict[str, Any]:
        buf = buf or self.buffer
        ages = np.asarray(self.ages, dtype=np.int64)
        return {
            "horizon": buf.horizon if buf is not None else None,
            "chunks": self.chunks,
            "refused": dict(self.refused),
            "cycles_covered": int(ages.size),
            "fallbacks": self.gaps,
            "cycles_before_first_chunk": self.waiting,
            "age_cycles_p50": float(np.percentile(ages, 50)) if ages.size else None,
            "age_cycles_p99": float(np.percentile(ages, 99)) if ages.size else None,
            "age_cycles_max": int(ages.max()) if ages.size else None,
            "clock_offset_ns": self.offset_ns,
            "dialled": self.dial_endpoint or None,
        }
