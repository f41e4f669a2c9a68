"""The remote side of the loop: a Controller that serves the control socket inside the cycle.

`decide()` first services at most `max_messages_per_cycle` control messages and the revocation
inbox (bounded work, never blocking past the cycle's budget), checks the controller's lease and
liveness, then decides by mode:

    hold    no session, disarmed, lease ended, client lost: the hold target (last target sent)
    estop   latched by anyone with a lease for this robot: the hand holds where it was measured
    step    remote step: observation k goes to the controlling client, its action for cycle k is
            awaited until the action deadline; late or missing -> the loop's fallback, reported
    policy  an uploaded bundle runs in the loop (its Controller decides)

It is also a loop Publisher (first in the list): after apply it completes the step report of
cycle k (observation sent, action received, action applied, fallback), which travels to the
client with observation k+1.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from raas_client.errors import ProtocolError
from raas_client.wire import (
    MAX_HEADER_BYTES,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    ErrorCode,
    Msg,
    Topic,
    decode,
    encode,
    request_limit,
)

from raas import __version__
from raas.core.controller import Controller
from raas.core.fallback import FallbackKind
from raas.core.observation import Observation, Step
from raas.daemon import SessionSink
from raas.leases import LeaseClaims
from raas.safety import Cause, Reason, SafetyState, Supervisor, Transition, TransitionRefusedError
from raas.safety.health import CheckResult, HealthCheck
from raas.task.stepping import SteppingTask
from raas.transport.config import TransportConfig
from raas.transport.errors import RequestRefusedError
from raas.transport.leases import LeaseGate
from raas.transport.service_link import ClearEstop, Estop, Revoked, ServiceLink
from raas.transport.sockets import RobotSockets
from raas.transport.spaces import ObservationPacker
from raas.transport.stream_auth import parse_stream_key
from raas.transport.uploads import Upload

_MS = 1_000_000

#: Every request type (docs/protocol.md, Requests); anything else answers unknown_type.
_REQUESTS = frozenset(
    {
        Msg.HELLO,
        Msg.STATUS,
        Msg.OPEN,
        Msg.CLOSE,
        Msg.HEARTBEAT,
        Msg.ARM,
        Msg.DISARM,
        Msg.STEP,
        Msg.RESET,
        Msg.UPLOAD_BEGIN,
        Msg.UPLOAD_CHUNK,
        Msg.UPLOAD_END,
        Msg.RUN,
        Msg.STOP,
        Msg.ESTOP,
        Msg.CLEAR_ESTOP,
        Msg.FETCH,
    }
)


@dataclass(slots=True)
class Peer:
    identity: bytes
    claims: LeaseClaims
    role: str  # control | observe
    session_id: str
    last_seen_ns: int


@dataclass(slots=True)
class RunRequest:
    bundle: Path
    sha256: str
    episodes: int
    seed: int


@dataclass(slots=True)
class StepTiming:
    cycle: int = -1
    obs_sent_ns: int = 0
    deadline_ns: int = 0  # an action read after this is late (obs_sent_ns + action wait)
    action_ns: int = -1  # -1: no action in time
    late: bool = False


@dataclass(slots=True)
class Counters:
    steps: int = 0  # remote-step cycles
    actions_on_time: int = 0
    actions_late: int = 0  # arrived after the deadline: not applied
    actions_missing: int = 0  # never arrived for the cycle
    messages: int = 0
    malformed: int = 0
    refused: int = 0
    sessions_closed: dict[str, int] = field(default_factory=dict)


class SessionController:
    """Controller + Publisher; see the module docstring."""

    name = "remote"

    def __init__(
        self,
        sockets: RobotSockets,
        gate: LeaseGate,
        cfg: TransportConfig,
        packer: ObservationPacker,
        *,
        rate_hz: float,
        decide_budget_ns: int,
        realtime: bool,
        supervisor: Supervisor,
        sinks: Sequence[SessionSink] = (),
        inbox: ServiceLink | None = None,
        on_segment_end: Callable[[str], None] | None = None,
        health_check: Callable[[], HealthCheck] | None = None,
        on_health: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.sockets = sockets
        self.gate = gate
        self.cfg = cfg
        self.packer = packer
        self.rate_hz = rate_hz
        self.period_ns = round(1e9 / rate_hz)
        self.realtime = realtime
        self.sinks = list(sinks)
        self.inbox = inbox
        self.on_segment_end = on_segment_end
        if realtime:
            wait = cfg.action_wait_ms
            self.action_wait_ns = round(wait * _MS) if wait else int(decide_budget_ns * 0.8)
        else:
            self.action_wait_ns = round(cfg.lockstep_action_timeout_s * 1e9)
        self.liveness_ns = round(cfg.liveness_timeout_s * 1e9)
        self.needs: frozenset[str] = frozenset({"hand", "mocap"})
        self.peers: dict[bytes, Peer] = {}
        self.controller: Peer | None = None
        self.mode = "hold"
        #: Decides what reaches the hand; this controller only asks it for transitions.
        self.supervisor = supervisor
        supervisor.listeners.append(self._on_transition)
        self.hold = packer.idle.copy()
        self.episode = 0
        self.cycle = -1
        self.counters = Counters()
        self.timing = StepTiming()
        self.report: dict[str, Any] | None = None
        self.upload: Upload | None = None
        self.bundle: tuple[Path, str] | None = None
        self.pending_run: RunRequest | None = None
        self.policy: Controller | None = None
        self.policy_done: Callable[[], bool] | None = None
        self.policy_summary: Callable[[], Mapping[str, Any]] | None = None
        self.recording: str | None = None  # the controller session being recorded
        self.recording_paths: dict[str, tuple[str, Path]] = {}  # session -> (owner sub, file)
        #: The post-session health check: built after every controlling session, once the hand
        #: is idle again; its report goes to `on_health` (the service link).
        self.health_check = health_check
        self.on_health = on_health
        self.health: HealthCheck | None = None
        self.health_due = False
        self.last_health: dict[str, Any] | None = None
        self._action = np.zeros(len(packer.actuators))
        self._have_action = False
        self._reset_now = False
        chunk = cfg.max_chunk_bytes
        self._limit: Callable[[str], int] = lambda kind: request_limit(kind, chunk)
        #: The cell's task for a remote stepper (raas.task.stepping); built here, at start-up,
        #: so that no import happens inside a cycle when a client arms.
        self.task = SteppingTask.for_cell(packer.markers, 1.0 / rate_hz, cfg.task)

    @property
    def estopped(self) -> bool:
        sup = self.supervisor
        return sup.state is SafetyState.FAULT and sup.reason is Reason.ESTOP

    # ---------------------------------------------------------------- Controller protocol
    def reset(self) -> None:
        if self.policy is not None:
            self.policy.reset()

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        now = time.monotonic_ns()
        self.cycle = obs.cycle
        self._service(self.cfg.max_messages_per_cycle)
        self._check_sessions(now)
        self.sockets.serve_stream_auth()  # after the closes: an ended session's key goes now
        obs.episode = self.episode
        if self.health_due and self.controller is None:
            self._start_health()
        if self.mode == "health" and self.health is not None:
            ok = self.health.decide(obs, out)
            if self.health.done:
                self._finish_health(None)
            return ok
        if not self.supervisor.active:  # nothing this controller says reaches the hand
            out[:] = self.hold
            if self.mode == "step":
                self._remote_observation(obs)
            self._pace()
            return True
        if self.mode == "policy" and self.policy is not None:
            ok = self.policy.decide(obs, out)
            if self.policy_done is not None and self.policy_done():
                self._finish_policy("done")
            if ok:
                self.hold[:] = out
            return ok
        if self.mode == "step" and self.controller is not None:
            return self._remote_step(obs, out)
        out[:] = self.hold
        self._pace()
        return True

    # ---------------------------------------------------------------- Publisher protocol
    def publish(self, step: Step) -> None:
        step.lease_holder = None if self.controller is None else self.controller.claims.sub
        t = self.timing
        if t.cycle == step.obs.cycle and t.cycle >= 0:
            self.report = {
                "cycle": t.cycle,
                "fallback": int(step.fallback),
                "obs_sent_ns": t.obs_sent_ns,
                "action_ns": t.action_ns,
                "applied_ns": step.apply_ns if self.realtime else time.monotonic_ns(),
                "decide_ns": step.decide_ns,
                "late_total": self.counters.actions_late,
            }
            if step.fallback is not FallbackKind.NONE and t.action_ns < 0 and not t.late:
                self.counters.actions_missing += 1
            t.cycle = -1
        if step.fallback is FallbackKind.NONE:
            self.hold[:] = step.applied

    # ---------------------------------------------------------------- remote step
    def _remote_step(self, obs: Observation, out: np.ndarray) -> bool:
        ctl = self.controller
        assert ctl is not None
        k = obs.cycle
        t = self.timing
        t.cycle, t.action_ns, t.late = k, -1, False
        self._have_action = False
        self._reset_now = False
        t.obs_sent_ns = self._remote_observation(obs)
        self.counters.steps += 1
        deadline = t.deadline_ns = t.obs_sent_ns + self.action_wait_ns
        while not self._have_action and not self._reset_now and self.mode == "step":
            now = time.monotonic_ns()
            remaining = deadline - now
            if remaining <= 0:
                break
            if now - ctl.last_seen_ns > self.liveness_ns:  # a lost client is not waited for
                self._close(ctl, "liveness")
                break
            # Whole milliseconds block in zmq_poll; the last sub-millisecond is polled.
            if self.sockets.wait(remaining // _MS if remaining >= _MS else 0):
                self._service(self.cfg.max_messages_per_cycle)
        if self._have_action:
            out[:] = self._action
            return True
        if self._reset_now or self.mode != "step" or self.controller is None:
            out[:] = self.hold
            return True
        return False  # the loop's fallback, counted and reported

    def _remote_observation(self, obs: Observation) -> int:
        """Send observation k to the controlling client (also while held: it sees why)."""
        ctl = self.controller
        if ctl is None:
            return 0
        judged = self.task.judge(obs) if self.task is not None else None  # writes obs.goal
        arrays = self.packer.fill(obs)
        sup = self.supervisor
        fields: dict[str, Any] = {
            "cycle": obs.cycle,
            "episode": self.episode,
            "stale": _stale(obs),
            "safety": sup.state.label,
            "safety_reason": sup.reason.value,
        }
        if judged is not None:
            fields["task"] = judged
        if self.report is not None:
            fields["report"] = self.report
            self.report = None
        sent = time.monotonic_ns()
        self.sockets.send_to(ctl.identity, Msg.OBS, fields, arrays)
        return sent

    def _new_task_episode(self) -> None:
        """The task starts an episode (goals from (0, episode)) on the next observation."""
        if self.task is not None:
            self.task.new_episode(self.episode)

    def _on_step(self, peer: Peer, msg_cycle: object, action: np.ndarray | None) -> None:
        if self.mode == "step" and not self.supervisor.active:
            self.counters.actions_late += 1  # held: counted, never applied (the client was told)
            return
        if self.mode != "step":
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "not armed for remote step")
        if action is None or action.shape != self._action.shape:
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, f"action must have shape {self._action.shape}"
            )
        t = self.timing
        now = time.monotonic_ns()  # judged on when it is read, however long that took
        if msg_cycle == t.cycle and t.cycle >= 0 and not self._have_action and now <= t.deadline_ns:
            self._action[:] = action
            self._have_action = True
            t.action_ns = now
            self.counters.actions_on_time += 1
        else:  # past the deadline, a cycle already decided, or not a cycle: not applied
            self.counters.actions_late += 1
            if msg_cycle == t.cycle and t.cycle >= 0:
                t.late = True

    # ---------------------------------------------------------------- message service
    def _pace(self) -> None:
        """Lockstep has no wall clock to wait on: idle cycles wait for a message up to one
        period instead, so an idle lockstep robot does not spin a CPU."""
        if not self.realtime and self.sockets.wait(self.period_ns // _MS):
            self._service(self.cfg.max_messages_per_cycle)

    def _service(self, limit: int) -> None:
        if self.inbox is not None:
            for item in self.inbox.drain(limit):
                if isinstance(item, Revoked):
                    self.gate.revoke(item.jti, item.expires)
                elif isinstance(item, Estop):
                    self.estop(item.by, via="rest")
                elif isinstance(item, ClearEstop):
                    self._clear_from_service(item)
        for _ in range(limit):
            frames = self.sockets.recv()
            if frames is None:
                return
            self.counters.messages += 1
            if len(frames) < 2:
                self.counters.malformed += 1
                continue
            identity = bytes(frames[0].buffer)
            try:
                msg = decode(frames[1:], self._limit)
            except ProtocolError as exc:
                self.counters.malformed += 1
                code = ErrorCode.BAD_REQUEST
                if exc.version:
                    code = ErrorCode.UNSUPPORTED_VERSION
                elif exc.too_large:
                    code = ErrorCode.TOO_LARGE
                self.sockets.error(identity, exc.request_id, code, str(exc))
                continue
            req_id = msg.get("id")
            try:
                self._handle(identity, msg.type, msg.header, msg.arrays, req_id)
            except RequestRefusedError as exc:
                self.counters.refused += 1
                self.sockets.error(identity, req_id, exc.code, exc.message)
            except Exception as exc:  # a bug meets bad input: refuse it, keep the robot running
                self.counters.malformed += 1
                self.sockets.error(identity, req_id, ErrorCode.BAD_REQUEST, repr(exc))

    def _handle(
        self,
        ident: bytes,
        kind: str,
        h: dict[str, Any],
        arrays: dict[str, np.ndarray],
        req_id: Any,
    ) -> None:
        now = time.monotonic_ns()
        peer = self.peers.get(ident)
        if peer is not None:
            code = self.gate.still_valid(peer.claims)  # every command re-checks the lease
            if code is not None:
                self._close(peer, code)
                raise RequestRefusedError(code, "the lease no longer holds; session closed")
            peer.last_seen_ns = now  # any message is a heartbeat, even an unknown one
        if kind not in _REQUESTS:  # before the role checks: with or without a session
            raise RequestRefusedError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r}")
        if kind == Msg.STEP:  # hot path first
            self._on_step(self._controller_peer(peer), h.get("cycle"), arrays.get("action"))
            return
        if kind == Msg.HELLO:
            self.sockets.reply(ident, req_id, self._hello())
        elif kind == Msg.STATUS:
            self.sockets.reply(ident, req_id, self.status(peer))
        elif kind == Msg.HEARTBEAT:
            if peer is None:
                raise RequestRefusedError(ErrorCode.NO_SESSION, "open a session first")
            self.sockets.reply(ident, req_id, {"mode": self._mode()})
        elif kind == Msg.OPEN:
            self._open(ident, h, req_id, now)
        elif kind == Msg.CLOSE:
            if peer is not None:
                self._close(peer, "closed by client")
            self.sockets.reply(ident, req_id)
        elif kind == Msg.ESTOP:
            self._estop(peer, h.get("lease"))
            self.sockets.reply(ident, req_id, {"mode": self._mode()})
        elif kind == Msg.FETCH:
            self._fetch(ident, peer, h, req_id)
        else:
            ctl = self._controller_peer(peer)
            fields = self._control(ctl, kind, h, arrays)
            self.sockets.reply(ident, req_id, fields)

    def _control(
        self, ctl: Peer, kind: str, h: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> dict[str, Any] | None:
        if kind in (Msg.ARM, Msg.RUN) and self.mode == "health":
            raise RequestRefusedError(
                ErrorCode.BUSY, "the post-session health check is running (about 20 s); retry"
            )
        if kind == Msg.ARM:
            if self.mode == "policy":
                raise RequestRefusedError(ErrorCode.BUSY, "a policy is running; stop it first")
            self._arm(Cause.CLIENT, Reason.CLIENT_LATE)
            self._start_recording(ctl, None)
            self.mode = "step"
            self._new_task_episode()
            return {
                "mode": self.mode,
                "action_wait_ms": self.action_wait_ns / _MS,
                "safety": self.supervisor.state.label,
            }
        if kind == Msg.DISARM:
            if self.mode == "step":
                self.mode = "hold"
                self.supervisor.disarm(Cause.CLIENT, Reason.CLIENT_DISARM)
            return {"mode": self._mode()}
        if kind == Msg.RESET:
            self.episode += 1
            self._reset_now = True
            self.report = None
            self._new_task_episode()
            return {"episode": self.episode}
        if kind == Msg.CLEAR_ESTOP:
            was_estopped = self.estopped
            try:
                self.supervisor.clear(Cause.CLIENT)
            except TransitionRefusedError as exc:  # a fault other than an e-stop: staff only
                raise RequestRefusedError(ErrorCode.FAULT, str(exc)) from None
            if was_estopped:
                self._estop_cleared(ctl.claims.sub, "zmq", "")
            return {"mode": self._mode()}
        if kind == Msg.UPLOAD_BEGIN:
            if self.upload is not None:
                self.upload.abort()
            self.upload = Upload(
                self.cfg.upload_dir,
                h.get("name"),
                h.get("size"),
                h.get("sha256"),
                self.cfg.max_upload_bytes,
            )
            return {"chunk_bytes": min(self.cfg.max_chunk_bytes, 256 * 1024)}
        if kind == Msg.UPLOAD_CHUNK:
            data = arrays.get("data")
            if self.upload is None or data is None or data.dtype != np.uint8:
                raise RequestRefusedError(
                    ErrorCode.BAD_REQUEST, "upload_chunk needs an open upload and data"
                )
            if data.nbytes > self.cfg.max_chunk_bytes:
                raise RequestRefusedError(
                    ErrorCode.TOO_LARGE, f"chunks are at most {self.cfg.max_chunk_bytes}"
                )
            try:
                self.upload.chunk(h.get("offset"), data.data.cast("B"))
            except RequestRefusedError:
                self.upload.abort()
                self.upload = None
                raise
            return {"received": self.upload.received}
        if kind == Msg.UPLOAD_END:
            up, self.upload = self.upload, None
            if up is None:
                raise RequestRefusedError(ErrorCode.BAD_REQUEST, "no upload in progress")
            self.bundle = (up.finish(), up.sha256)
            return {"sha256": up.sha256, "size": up.size}
        if kind == Msg.RUN:
            return self._request_run(h)
        if kind == Msg.STOP:
            summary = self._finish_policy("stopped by client") if self.mode == "policy" else None
            if self.mode == "step":
                self.mode = "hold"
            self.supervisor.disarm(Cause.CLIENT, Reason.CLIENT_DISARM)
            return {"mode": self._mode(), "summary": summary}
        raise RequestRefusedError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r}")

    # ---------------------------------------------------------------- sessions
    def _controller_peer(self, peer: Peer | None) -> Peer:
        if peer is None:
            raise RequestRefusedError(ErrorCode.NO_SESSION, "open a session first")
        if peer is not self.controller:
            raise RequestRefusedError(ErrorCode.NOT_CONTROLLER, "this session only observes")
        return peer

    def _open(self, ident: bytes, h: dict[str, Any], req_id: Any, now: int) -> None:
        lease, role = h.get("lease"), h.get("role", "control")
        if role not in ("control", "observe"):
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "role must be control or observe")
        try:
            stream_key = parse_stream_key(h.get("stream_key"))
        except ValueError as exc:
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, str(exc)) from exc
        claims = self.gate.verify(lease, str(role))
        if role == "control" and self.controller is not None and self.controller.identity != ident:
            raise RequestRefusedError(
                ErrorCode.CONTROLLER_BUSY, "another client controls this robot"
            )
        old = self.peers.get(ident)
        if old is not None:
            self._close(old, "reopened")
        peer = Peer(ident, claims, str(role), uuid.uuid4().hex[:12], now)
        self.peers[ident] = peer
        self.sockets.allow_subscriber(peer.session_id, stream_key)
        if role == "control":
            self.controller = peer
            self.mode = "hold"
        self._event("session_opened", {"session": peer.session_id, "role": role, "sub": claims.sub})
        self.sockets.reply(
            ident,
            req_id,
            {
                "session": peer.session_id,
                "role": role,
                "sub": claims.sub,
                "rid": claims.rid,
                "expires_at": claims.exp,
                "liveness_timeout_s": self.cfg.liveness_timeout_s,
            },
        )

    def _close(self, peer: Peer, reason: str) -> None:
        self.peers.pop(peer.identity, None)
        self.sockets.forget_subscriber(peer.session_id)
        c = self.counters.sessions_closed
        c[reason] = c.get(reason, 0) + 1
        if peer is self.controller:
            self.controller = None
            if self.mode == "policy":
                self._finish_policy(reason)
            self.mode = "hold"
            self._stop_for_close(reason)
            if self.health_check is not None and reason != "daemon stopping":
                self.health_due = True
            self.timing.cycle = -1
            self._stop_recording()
            if self.upload is not None:
                self.upload.abort()
                self.upload = None
            self.pending_run = None
        data = {"session": peer.session_id, "reason": reason, "closed_ns": time.monotonic_ns()}
        data["last_seen_ns"] = peer.last_seen_ns
        self.sockets.send_to(peer.identity, Msg.EVENT, {"kind": "session_closed", **data})
        self._event("session_closed", data)

    def _stop_for_close(self, reason: str) -> None:
        """The controlling session ended: a planned end ramps the hand home, a lost client
        holds it where it is."""
        sup = self.supervisor
        if reason == "liveness":
            sup.hold(Cause.WATCHDOG, Reason.CLIENT_LOST)
        elif reason == ErrorCode.LEASE_EXPIRED:
            sup.ramp_down(Cause.LEASE, Reason.LEASE_ENDED)
        elif reason == ErrorCode.LEASE_REVOKED:
            sup.ramp_down(Cause.LEASE, Reason.LEASE_REVOKED)
        elif reason == "daemon stopping":
            sup.hold(Cause.OPERATOR, Reason.DAEMON_STOPPING)
        else:  # closed by the client, reopened
            sup.ramp_down(Cause.CLIENT, Reason.CLIENT_CLOSED)

    def _arm(self, cause: Cause, late_reason: Reason) -> None:
        try:
            self.supervisor.arm(cause, late_reason=late_reason)
        except TransitionRefusedError as exc:
            code = ErrorCode.ESTOPPED if self.estopped else ErrorCode.FAULT
            raise RequestRefusedError(code, str(exc)) from None

    def _on_transition(self, t: Transition) -> None:
        """Every supervisor transition: told to the client, the stream and the recording. A
        stop while a policy runs ends the run; a stop while stepping leaves step mode (the
        client re-arms)."""
        data = t.as_dict()
        self._event("safety", data)
        if self.controller is not None:
            self.sockets.send_to(self.controller.identity, Msg.EVENT, {"kind": "safety", **data})
        if t.after in (SafetyState.ARMED, SafetyState.RUNNING):
            return
        if self.mode == "health" and t.cause is not Cause.OPERATOR:
            self._finish_health(f"stopped by the supervisor: {t.after.label} {t.reason.value}")
        elif self.mode == "policy" and self.policy is not None and t.cause is not Cause.POLICY:
            self._finish_policy(f"{t.after.label}: {t.reason.value}")
        elif self.mode == "step":
            self.mode = "hold"

    def _clear_from_service(self, item: ClearEstop) -> None:
        """Staff cleared the e-stop in the service (REST): staff may clear any fault."""
        sup = self.supervisor
        if sup.state is SafetyState.FAULT and sup.reason is Reason.ESTOP:
            sup.clear(Cause.OPERATOR)
            self._estop_cleared(item.by, "rest", item.note)

    def _estop_cleared(self, by: str, via: str, note: str) -> None:
        data = {"by": by, "via": via, "note": note}
        self._event("estop_cleared", data)
        if self.controller is not None:
            self.sockets.send_to(
                self.controller.identity, Msg.EVENT, {"kind": "estop_cleared", **data}
            )

    def _start_health(self) -> None:
        """Once the hand is still again (a ramp-down home ended, or a lost client left it held)
        and nobody controls it."""
        sup = self.supervisor
        idle = sup.state in (SafetyState.IDLE, SafetyState.HOLD)
        if not idle or self.mode != "hold" or self.health_check is None:
            if sup.state is SafetyState.FAULT:  # a latched fault: no motion; reported as such
                self.health_due = False
                self._report_health(
                    {
                        "ok": False,
                        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "checks": [
                            {
                                "name": "supervisor",
                                "ok": False,
                                "detail": f"not run: a {sup.reason.value} fault is latched",
                            }
                        ],
                    }
                )
            return
        self.health_due = False
        self.health = self.health_check()
        self.health.reset()
        sup.needs = self.health.needs
        self.mode = "health"
        sup.arm(Cause.OPERATOR)
        self._event("health_started", {})

    def _finish_health(self, aborted: str | None) -> None:
        check, self.health = self.health, None
        if check is None:
            return
        extra = [CheckResult("completed", aborted is None, aborted or "the whole motion ran")]
        report = check.report(extra).as_dict()
        self.mode = "hold"
        self.supervisor.needs = self.needs
        if aborted is None:
            self.supervisor.ramp_down(Cause.OPERATOR, Reason.HEALTH_CHECK_DONE)
        self._report_health(report)

    def _report_health(self, report: dict[str, Any]) -> None:
        self.last_health = report
        self._event("health", report)
        if self.on_health is not None:
            self.on_health(report)

    def _check_sessions(self, now: int) -> None:
        wall = time.time()
        self.gate.prune(wall)
        for peer in list(self.peers.values()):
            code = self.gate.still_valid(peer.claims, wall)
            if code is not None:
                self._close(peer, code)
            elif now - peer.last_seen_ns > self.liveness_ns:
                self._close(peer, "liveness")

    def _estop(self, peer: Peer | None, lease: object) -> None:
        if peer is None:  # anyone with a lease for this robot, any scope (staff get observe)
            claims = self.gate.verify(lease, None)
            who = claims.sub
        else:
            who = peer.claims.sub
        self.estop(who)

    def estop(self, who: str, via: str = "zmq") -> None:
        """Latch the e-stop: the supervisor holds the hand where it is from this cycle on."""
        if self.mode == "policy":
            self._finish_policy("e-stop")
        self.mode = "hold"
        self.supervisor.fault(Cause.OPERATOR, Reason.ESTOP, f"{who} via {via}")
        self._event("estop", {"by": who, "via": via})
        if self.controller is not None:
            self.sockets.send_to(
                self.controller.identity, Msg.EVENT, {"kind": "estop", "by": who, "via": via}
            )

    # ---------------------------------------------------------------- policy runs
    def _request_run(self, h: dict[str, Any]) -> dict[str, Any]:
        if self.supervisor.state is SafetyState.FAULT:
            code = ErrorCode.ESTOPPED if self.estopped else ErrorCode.FAULT
            raise RequestRefusedError(code, f"a {self.supervisor.reason.value} fault is latched")
        if self.bundle is None:
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "upload a bundle first")
        episodes, seed = h.get("episodes", 1), h.get("seed", 0)
        if not (isinstance(episodes, int) and 1 <= episodes <= 100_000 and isinstance(seed, int)):
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, "episodes must be 1..100000 and seed an integer"
            )
        if self.on_segment_end is None:
            raise RequestRefusedError(ErrorCode.UNAVAILABLE, "this daemon cannot run bundles")
        self.pending_run = RunRequest(self.bundle[0], self.bundle[1], episodes, seed)
        self.mode = "hold"
        # The loop ends at this cycle's boundary; the bundle loads outside any cycle.
        self.on_segment_end("load bundle")
        return {"mode": "loading", "sha256": self.bundle[1]}

    def start_policy(
        self,
        controller: Controller,
        done: Callable[[], bool],
        summary: Callable[[], Mapping[str, Any]],
    ) -> None:
        """Called between loop segments once the bundle is loaded."""
        self.policy, self.policy_done, self.policy_summary = controller, done, summary
        self.needs = frozenset(controller.needs) | {"hand"}
        self.supervisor.needs = self.needs
        self.mode = "policy"
        self.supervisor.arm(Cause.POLICY, late_reason=Reason.INFERENCE_OVERRUN)

    def run_event(self, kind: str, data: Mapping[str, Any]) -> None:
        """Progress of a policy run (episode ends, successes), to the controller and stream."""
        data = plain(data)
        self._event(kind, data)
        if self.controller is not None:
            self.sockets.send_to(self.controller.identity, Msg.EVENT, {"kind": kind, **data})

    def _finish_policy(self, reason: str) -> dict[str, Any]:
        detach = getattr(self.policy, "detach", None)  # a controller following the supervisor
        if callable(detach):
            detach()
        summary = dict(self.policy_summary()) if self.policy_summary is not None else {}
        summary["reason"] = reason
        self.policy = self.policy_done = self.policy_summary = None
        self.mode = "hold"
        if reason == "done":
            self.supervisor.ramp_down(Cause.POLICY, Reason.RUN_DONE)
        self.run_event("run_done", {"summary": summary})
        return summary

    def fail_run(self, message: str) -> None:
        self.pending_run = None
        self.mode = "hold"
        self.run_event("run_failed", {"message": message})

    # ---------------------------------------------------------------- recordings
    def _start_recording(
        self, ctl: Peer, bundle_sha: str | None, bundle_name: str | None = None
    ) -> None:
        if self.recording is not None or not self.sinks:
            return
        meta = {
            "robot": self.gate.robot,
            "rid": str(ctl.claims.rid),
            "sub": ctl.claims.sub,
            "reservation": str(ctl.claims.rid),  # the recorder's names for rid and sub
            "user": ctl.claims.sub,
            "session": ctl.session_id,
            "software": f"raas {__version__}",
            "protocol": str(PROTOCOL_VERSION),
        }
        if self.cfg.revocations is not None:
            meta["robot_id"] = str(self.cfg.revocations.robot_id)
        if bundle_sha is not None:
            meta["bundle_sha256"] = bundle_sha
        if bundle_name is not None:
            meta["bundle"] = bundle_name
        path: Path | None = None
        for sink in self.sinks:
            got = sink.start_session(ctl.session_id, meta)
            path = path or got
        self.recording = ctl.session_id
        path = path or self.cfg.recordings_dir / f"{ctl.session_id}.mcap"
        self.recording_paths[ctl.session_id] = (ctl.claims.sub, path)

    def start_recording_for_run(self, bundle_sha: str, bundle_name: str | None = None) -> None:
        if self.controller is not None:
            self._start_recording(self.controller, bundle_sha, bundle_name)
            for sink in self.sinks:
                sink.event("bundle", {"sha256": bundle_sha})

    def _stop_recording(self) -> None:
        if self.recording is None:
            return
        for sink in self.sinks:
            sink.end_session()
        self.recording = None

    def _fetch(self, ident: bytes, peer: Peer | None, h: dict[str, Any], req_id: Any) -> None:
        if peer is None:
            raise RequestRefusedError(ErrorCode.NO_SESSION, "open a session first")
        sid, offset, length = h.get("session"), h.get("offset", 0), h.get("length", 0)
        entry = self.recording_paths.get(sid) if isinstance(sid, str) else None
        if entry is None or entry[0] != peer.claims.sub:
            raise RequestRefusedError(
                ErrorCode.NOT_FOUND, f"no recording {sid!r} of yours on this robot"
            )
        if not (isinstance(offset, int) and isinstance(length, int) and offset >= 0):
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "offset and length must be integers")
        path = entry[1]
        if sid == self.recording:
            raise RequestRefusedError(
                ErrorCode.BUSY, "the session is still recording; close it first"
            )
        try:
            size = path.stat().st_size
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read(max(0, min(length, self.cfg.max_chunk_bytes)))
        except OSError as exc:
            raise RequestRefusedError(
                ErrorCode.NOT_FOUND, f"recording unreadable: {exc.strerror}"
            ) from None
        buf = np.frombuffer(data, dtype=np.uint8)
        self.sockets.reply(ident, req_id, {"size": size, "offset": offset}, arrays={"data": buf})

    # ---------------------------------------------------------------- status
    def _mode(self) -> str:
        return "estop" if self.estopped else self.mode

    def _hello(self) -> dict[str, Any]:
        return {
            "robot": self.gate.robot,
            "software": f"raas {__version__}",
            "protocol": PROTOCOL_VERSION,
            "rate_hz": self.rate_hz,
            "realtime": self.realtime,
            "capabilities": ["step", "policy", "upload", "fetch", "estop"],
            "stream_endpoint": self.sockets.stream_endpoint,
            "action_wait_ms": self.action_wait_ns / _MS,
            "liveness_timeout_s": self.cfg.liveness_timeout_s,
            "max_upload_bytes": self.cfg.max_upload_bytes,
            "limits": {
                "header_bytes": MAX_HEADER_BYTES,
                "message_bytes": MAX_MESSAGE_BYTES,
                "upload_chunk_bytes": self._limit(Msg.UPLOAD_CHUNK),
                "frame_bytes": self.cfg.max_frame_bytes,
            },
            "spaces": self.packer.spec(),
        }

    def status(self, peer: Peer | None = None) -> dict[str, Any]:
        c = self.counters
        ctl = self.controller
        return {
            "robot": self.gate.robot,
            "mode": self._mode(),
            "cycle": self.cycle,
            "episode": self.episode,
            "controlled": ctl is not None,
            "controller": ctl.claims.sub if ctl is not None and peer is not None else None,
            "lease_ends": ctl.claims.exp if ctl is not None else None,
            "observers": sum(1 for p in self.peers.values() if p.role == "observe"),
            "steps": c.steps,
            "actions_on_time": c.actions_on_time,
            "actions_late": c.actions_late,
            "actions_missing": c.actions_missing,
            "malformed": c.malformed,
            "refused": c.refused,
            "dropped_sends": self.sockets.dropped,
            "sessions_closed": dict(c.sessions_closed),
            "recording": self.recording,
            "safety": self.supervisor.status(),
            "health": self.last_health,
        }

    def _event(self, kind: str, data: Mapping[str, Any]) -> None:
        self.sockets.publish(Topic.EVENT, encode(Msg.EVENT, {"kind": kind, **data}))
        for sink in self.sinks:
            sink.event(kind, data)

    def close_all(self, reason: str) -> None:
        for peer in list(self.peers.values()):
            self._close(peer, reason)


def plain(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with only msgpack-able values (numpy scalars and arrays become Python ones)."""

    def default(o: object) -> object:
        if isinstance(o, np.generic | np.ndarray):
            return o.tolist()
        return str(o)

    out: dict[str, Any] = json.loads(json.dumps(dict(data), default=default))
    return out


def _stale(obs: Observation) -> list[str]:
    return [name for name, r in obs.sources.items() if r.stale]
