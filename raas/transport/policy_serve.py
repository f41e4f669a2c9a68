"""Policy server (mode `serve`): a remote policy server sends chunks of H actions; the loop never
waits for them.

The policy server is a client like any other: it dials the robot's control socket (DEALER to the
ROUTER, CurveZMQ), opens a `control` session with the lease and sends `serve` (the chunk size
H). From then on, each cycle k the daemon sends observation k (`obs`, the remote step's message)
and decides at once: until the first chunk arrives the hand holds where it is (counted as
`cycles_before_first_chunk`, not a fallback); then cycle k's action is row `k - c` of the newest
accepted chunk computed from a cycle `c` covering k (raas/core/chunks.py has the rule and its
blending); none -> the loop's fallback, counted, and after N in a row the supervisor holds the
hand (`client_late`), as for a late remote step. Every applied action goes through the
supervisor and conditioning like any other.

A `chunk` request carries the session id, the cycle it was computed from and the server's
receive and send stamps (its own clock); it is refused (`bad_chunk`, counted per reason) when it
names another session, a cycle whose observation was not sent in this mode (future), a chunk too
old to have a row left, a wrong shape or non-finite values. Each accepted chunk's timing (the
observation's cycle, sent and arrival stamps, the server's stamps, the clock offset estimate,
arrival cycle, rows used and discarded) becomes a `chunk` event when it leaves the buffer: on
the stream and in the recording. docs/protocol.md, Policy servers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
from raas_client.wire import ErrorCode

from raas.core.chunks import REFUSALS, Blend, ChunkBuffer, ChunkUse, Verdict
from raas.core.observation import Observation
from raas.safety import Transition
from raas.transport.errors import RequestRefusedError

if TYPE_CHECKING:
    from raas.transport.session import SessionController

_MS = 1_000_000
MAX_HORIZON = 1000
#: Refusal reasons the daemon adds to the chunk rule's own (raas.core.chunks.Verdict).
WRONG_SESSION = "wrong_session"
BAD_FIELDS = "bad_fields"
UNSENT = "unsent"


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

    # ---------------------------------------------------------------- starting
    def start(self, h: dict[str, Any], session_id: str) -> dict[str, Any]:
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
        self.end("restarted")
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
        return {"horizon": horizon, "blend": blend.value, "n_actuators": self.n}

    # ---------------------------------------------------------------- ControlMode
    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        host = self.host
        buf = self.buffer
        assert buf is not None
        if not host.realtime:
            self._lockstep_wait()
        k = obs.cycle
        sent = host.stepping.observation(obs)  # obs k to the server; no wait for its answer
        slot = k % self._sent_ns.shape[0]
        self._sent_ns[slot], self._sent_cycle[slot] = sent, k
        if self.first_cycle < 0:
            self.first_cycle = k
        if buf.accepted == 0:  # no chunk yet: the hand holds where it is, not a fallback
            self.waiting += 1
            out[:] = host.hold
            return True
        if buf.action_for(k, out):
            self.ages.append(buf.last_age)
            return True
        self.gaps += 1
        return False  # the loop's fallback, counted; N+1 in a row: the supervisor holds

    def _lockstep_wait(self) -> None:
        """The lockstep rig has no wall clock: a served cycle lasts one period of wall time, so a
        policy server's latency means the same number of cycles as on the realtime rig."""
        host = self.host
        deadline = time.monotonic_ns() + host.period_ns
        while (left := deadline - time.monotonic_ns()) > 0:
            if host.sockets.wait(max(1, left // _MS)):
                host._service(host.cfg.max_messages_per_cycle)
            if host.mode != "serve":
                return

    def stopped(self, t: Transition) -> None:
        """A stop while serving leaves serve mode (the server sends `serve` again to re-arm)."""
        self.host.mode = "hold"
        self.end(f"{t.after.label}: {t.reason.value}")

    def end(self, reason: str) -> None:
        if self.buffer is None:
            return
        buf, self.buffer = self.buffer, None
        buf.close()  # each chunk still held reports its use
        self.last_summary = {"reason": reason, **self.summary(buf)}
        self.host._event("serve_done", self.last_summary)

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
        }
