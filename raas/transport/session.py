"""The remote side of the loop: a Controller that serves the control socket inside the cycle,
and the session registry that hands each cycle to the control mode in charge
(raas/transport/modes.py: remote_step.py, bundle_run.py, health_run.py).

`decide()` first services at most `max_messages_per_cycle` control messages and the revocation
inbox (bounded work, never blocking past the cycle's budget), checks the controller's lease and
liveness, then decides by mode:

    hold    no session, disarmed, lease ended, client lost: the hold target (last target sent)
    estop   latched by anyone with a lease for this robot: the hand holds where it was measured
    step    remote step: observation k goes to the controlling client, its action for cycle k is
            awaited until the action deadline; late or missing -> the loop's fallback, reported
    policy  an uploaded bundle runs in the loop (its Controller decides)
    serve   a remote policy server's action chunks: observation k goes out, the action for k
            is indexed from the newest chunk covering k, no wait (policy_serve.py)

It is also a loop Publisher (first in the list): after apply it completes the step report of
cycle k (observation sent, action received, action applied, fallback), which travels to the
client with observation k+1.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
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
    Message,
    Msg,
    StepReader,
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
from raas.safety.health import HealthCheck
from raas.transport.bundle_run import BundleRun, RunRequest
from raas.transport.config import TransportConfig
from raas.transport.errors import RequestRefusedError
from raas.transport.health_run import HealthRun
from raas.transport.leases import LeaseGate
from raas.transport.modes import ControlMode
from raas.transport.policy_serve import PolicyServe
from raas.transport.remote_step import RemoteStep, StepTiming
from raas.transport.service_link import ClearEstop, Estop, Revoked, ServiceLink
from raas.transport.sockets import RobotSockets
from raas.transport.spaces import ObservationPacker
from raas.transport.stream_auth import parse_stream_key

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
        Msg.SERVE,
        Msg.CHUNK,
    }
)


#: Requests that would move the hand: refused (`busy`) while the post-session health check is
#: due or running (a `reset` with `scene` too); `stop` and `disarm` leave the check alone.
_MOVES = frozenset({Msg.ARM, Msg.RUN, Msg.SERVE})


@dataclass(slots=True)
class Peer:
    identity: bytes
    claims: LeaseClaims
    role: str  # control | observe
    session_id: str
    last_seen_ns: int


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
        reset_scene: Callable[[int], None] | None = None,
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
        #: control messages that came while no loop ran (the bundle-load pause), served first
        self._deferred: deque[list[Any]] = deque()
        self.on_segment_end = on_segment_end
        #: Puts the cell back to an episode's start (the simulated rig's reset command); None on
        #: a cell that cannot do it itself (a person or the cell's reset hook does it there).
        #: Raises RequestRefusedError when it fails.
        self.reset_scene = reset_scene
        if realtime:
            wait = cfg.action_wait_ms
            action_wait_ns = round(wait * _MS) if wait else int(decide_budget_ns * 0.8)
        else:
            action_wait_ns = round(cfg.lockstep_action_timeout_s * 1e9)
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
        #: This cycle's action is a policy server's chunk row for this cycle (raas.core.controller:
        #: the loop's decide budget does not apply to it).
        self.planned = False
        self.counters = Counters()
        self.recording: str | None = None  # the controller session being recorded
        self.recording_paths: dict[str, tuple[str, Path]] = {}  # session -> (owner sub, file)
        chunk = cfg.max_chunk_bytes
        self._limit: Callable[[str], int] = lambda kind: request_limit(kind, chunk)
        #: A client sends only `step` blocks (protocol 2; hello's spaces.layouts); the robot's
        #: own layouts are known to decode() too, so that a step sent in one of them is refused
        #: saying so (`_step`) instead of as an unknown layout.
        self._layouts = dict(packer.layouts)
        #: The `step` of every remote step, as raas_client writes it, read without decode()
        #: (the same Message; any other encoding goes through decode()).
        self._steps = StepReader(packer.layouts["step"])
        #: The control modes (raas/transport/modes.py), each with its own rules.
        self.stepping = RemoteStep(self, action_wait_ns)
        self.runs = BundleRun(self)
        self.serving = PolicyServe(self)
        #: The post-session health check: built after every controlling session, once the hand
        #: is idle again; its report goes to `on_health` (the service link).
        self.health = HealthRun(self, health_check, on_health)

    @property
    def timing(self) -> StepTiming:
        """The remote step's timing of the cycle being decided."""
        return self.stepping.timing

    @property
    def pending_run(self) -> RunRequest | None:
        """A `run` waiting for the bundle to load between loop segments."""
        return self.runs.pending

    @pending_run.setter
    def pending_run(self, value: RunRequest | None) -> None:
        self.runs.pending = value

    @property
    def last_health(self) -> dict[str, Any] | None:
        return self.health.last

    def _active(self) -> ControlMode | None:
        """The mode deciding the cycle, if any (hold and estop decide nothing)."""
        if self.mode == "step" and self.controller is not None:
            return self.stepping
        if self.mode == "policy" and self.runs.policy is not None:
            return self.runs
        if self.mode == "serve" and self.controller is not None and self.serving.buffer:
            return self.serving
        if self.mode == "health" and self.health.check is not None:
            return self.health
        return None

    @property
    def estopped(self) -> bool:
        sup = self.supervisor
        return sup.state is SafetyState.FAULT and sup.reason is Reason.ESTOP

    # ---------------------------------------------------------------- Controller protocol
    def reset(self) -> None:
        if self.runs.policy is not None:
            self.runs.policy.reset()

    def prepare(self) -> None:
        """The realtime loop calls this shortly before each trigger (`[loop] prepare`): the
        active mode warms what its decide will run (a bundle's inferences; the task referee's
        pose fit for remote step and policy servers), changing nothing decide will return."""
        mode = self._active()
        warm = getattr(mode, "prepare", None)
        if warm is not None and self.supervisor.active:
            warm()

    def background_warmup(self) -> Callable[[], object] | None:
        """What the loop's warm-up helper runs while the loop waits for the devices
        (raas/core/background_warmup.py): the active mode's (a bundle run's inference), if
        any; None (the helper is not woken) in every other mode."""
        if not self.supervisor.active:
            return None
        what: Callable[[], Callable[[], object] | None] | None = getattr(
            self._active(), "background_warmup", None
        )
        return what() if what is not None else None

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        now = time.monotonic_ns()
        self.cycle = obs.cycle
        self.planned = False
        self._service(self.cfg.max_messages_per_cycle)
        self._check_sessions(now)
        self.sockets.serve_stream_auth()  # after the closes: an ended session's key goes now
        obs.episode = self.episode
        if self.health.due:  # a session opened since does not postpone it (docs/safety.md 5)
            self.health.start()
        mode = self._active()
        if mode is self.health:
            return self.health.decide(obs, out)
        if not self.supervisor.active:  # nothing this controller says reaches the hand
            out[:] = self.hold
            if mode is self.stepping or mode is self.serving:
                # the client (or the policy server the robot dialled) sees why it is held
                self.stepping.observation(
                    obs, self.serving.dialled if mode is self.serving else None
                )
            self._pace()
            return True
        if mode is not None:
            return mode.decide(obs, out)
        out[:] = self.hold
        self._pace()
        return True

    # ---------------------------------------------------------------- Publisher protocol
    def publish(self, step: Step) -> None:
        step.lease_holder = None if self.controller is None else self.controller.claims.sub
        self.stepping.published(step)
        if step.fallback is FallbackKind.NONE:
            self.hold[:] = step.applied

    # ---------------------------------------------------------------- message service
    def _pace(self) -> None:
        """Lockstep has no wall clock to wait on: idle cycles wait for a message up to one
        period instead, so an idle lockstep robot does not spin a CPU."""
        if not self.realtime and self.sockets.wait(self.period_ns // _MS):
            self._service(self.cfg.max_messages_per_cycle)

    def _service(self, limit: int) -> None:
        self._service_inbox(limit)
        for _ in range(limit):
            frames = self._deferred.popleft() if self._deferred else self.sockets.recv()
            if frames is None:
                return
            self._dispatch(frames)

    def serve_estops(self) -> None:
        """While no loop runs (the bundle-load pause, raas.transport.serve): the service's items
        (e-stops, revocations) and the e-stops on the control socket are served now, so an
        e-stop reaches the hand within a cycle; every other control message is kept, in order,
        for the next segment's first cycle."""
        self._service_inbox(self.cfg.max_messages_per_cycle)
        while (frames := self.sockets.recv()) is not None:
            if self._is_estop(frames):
                self._dispatch(frames)
            else:
                self._deferred.append(frames)

    @staticmethod
    def _is_estop(frames: list[Any]) -> bool:
        try:
            return len(frames) >= 2 and decode(frames[1:]).type == Msg.ESTOP
        except ProtocolError:
            return False

    def _service_inbox(self, limit: int) -> None:
        if self.inbox is not None:
            for item in self.inbox.drain(limit):
                if isinstance(item, Revoked):
                    self.gate.revoke(item.jti, item.expires)
                elif isinstance(item, Estop):
                    self.estop(item.by, via="rest")
                elif isinstance(item, ClearEstop):
                    self._clear_from_service(item)

    def _dispatch(self, frames: list[Any]) -> None:
        self.counters.messages += 1
        if len(frames) < 2:
            self.counters.malformed += 1
            return
        identity = bytes(frames[0])
        # The step of every remote step, as raas_client writes it, is read without decode()
        # and handled as decode()'s Message of it would be (wire.StepReader).
        step = self._steps.read(frames[1], frames[2]) if len(frames) == 3 else None
        msg = None if step is not None else self._decode(identity, frames)
        if msg is None and step is None:
            return  # malformed: counted and answered by _decode
        req_id = None if msg is None else msg.get("id")
        try:
            if step is not None:
                cycle, arrays = step
                self._step(self._peer(identity), "step", cycle, arrays.get("action"))
            elif msg is not None:
                self._handle(identity, msg.type, msg.header, msg.arrays, req_id, msg.block)
        except RequestRefusedError as exc:
            self.counters.refused += 1
            self.sockets.error(identity, req_id, exc.code, exc.message)
        except Exception as exc:  # a bug meets bad input: refuse it, keep the robot running
            self.counters.malformed += 1
            self.sockets.error(identity, req_id, ErrorCode.BAD_REQUEST, repr(exc))

    def _decode(self, identity: bytes, frames: list[Any]) -> Message | None:
        """decode() of a request; a malformed one is counted and answered here (None)."""
        try:
            return decode(frames[1:], self._limit, self._layouts)
        except ProtocolError as exc:
            self.counters.malformed += 1
            code, version, text = ErrorCode.BAD_REQUEST, PROTOCOL_VERSION, str(exc)
            if exc.version:
                code = ErrorCode.UNSUPPORTED_VERSION
                # An older client reads the refusal in its own version (an error has no
                # arrays, so it is the same message in every version so far).
                v = exc.peer_version
                if isinstance(v, int) and 1 <= v < PROTOCOL_VERSION:
                    version = v
                    text = (
                        f"this robot speaks protocol {PROTOCOL_VERSION}, the request "
                        f"protocol {v}: update raas_client (pip install -U ./clients/python)"
                    )
            elif exc.too_large:  # a message over its limit, or a header over 64 KiB
                code = ErrorCode.TOO_LARGE
            self.sockets.error(identity, exc.request_id, code, text, version)
            return None

    def _handle(
        self,
        ident: bytes,
        kind: str,
        h: dict[str, Any],
        arrays: dict[str, np.ndarray],
        req_id: Any,
        block: str | None = None,
    ) -> None:
        peer = self._peer(ident)
        if kind not in _REQUESTS:  # before the role checks: with or without a session
            raise RequestRefusedError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r}")
        if kind == Msg.STEP:  # hot path first
            self._step(peer, block, h.get("cycle"), arrays.get("action"))
            return
        if block is not None:
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, f"only a step carries a block, not a {kind!r}"[:200]
            )
        if kind == Msg.CHUNK:  # a policy server's chunk (raas/transport/policy_serve.py)
            self._controller_peer(peer)
            self.serving.on_chunk(h, arrays.get("actions"))
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
            self._open(ident, h, req_id, time.monotonic_ns())
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

    def _peer(self, ident: bytes) -> Peer | None:
        """The session of `ident` (None: none), its lease re-checked, as on every command: a
        lease that ended or was revoked closes the session and refuses the command with the
        lease's code. Any message renews the session's liveness, even an unknown one."""
        peer = self.peers.get(ident)
        if peer is not None:
            code = self.gate.still_valid(peer.claims)
            if code is not None:
                self._close(peer, code)
                raise RequestRefusedError(code, "the lease no longer holds; session closed")
            peer.last_seen_ns = time.monotonic_ns()
        return peer

    def _step(self, peer: Peer | None, block: str | None, cycle: object, action: Any) -> None:
        """A `step` request: the controller's, with its action in the `step` block."""
        self._controller_peer(peer)
        if block != "step":
            what = "no block" if block is None else f"the {block!r} block"
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST,
                f"a step carries its action in the 'step' block, not in {what} (protocol 2; "
                "hello's spaces.layouts: 'obs' and 'stream' are the robot's, not action layouts)",
            )
        if type(cycle) is not int:  # msgpack makes integers int, never a subclass (nor bool)
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, f"a step's cycle must be an integer, not {cycle!r}"[:200]
            )
        self.stepping.on_step(cycle, action)

    def _control(
        self, ctl: Peer, kind: str, h: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> dict[str, Any] | None:
        # Nothing a client asks for moves the hand until the check has run (docs/safety.md
        # section 5): what would is refused, the rest (upload, a plain reset, stop and disarm,
        # which have nothing to stop) is served.
        checking = self.mode == "health" or self.health.due
        if checking and (kind in _MOVES or (kind == Msg.RESET and h.get("scene"))):
            what = "is running" if self.mode == "health" else "starts once the hand is still"
            raise RequestRefusedError(
                ErrorCode.BUSY,
                f"the post-session health check {what} (about 20 s; the `health` event says "
                "when it is done); retry then",
            )
        if kind == Msg.SERVE:
            if self.mode == "policy":
                raise RequestRefusedError(ErrorCode.BUSY, "a policy is running; stop it first")
            parsed = self.serving.parse(h)  # a bad serve changes nothing
            if self.mode == "step":
                self.mode = "hold"
            self._arm(Cause.CLIENT, Reason.CLIENT_LATE)
            self._start_recording(ctl, None)
            started = self.serving.start(parsed, ctl.session_id)
            self.mode = "serve"
            self.stepping.arm()
            return {"mode": self.mode, "safety": self.supervisor.state.label, **started}
        if kind == Msg.ARM:
            if self.mode == "policy":
                raise RequestRefusedError(ErrorCode.BUSY, "a policy is running; stop it first")
            self._arm(Cause.CLIENT, Reason.CLIENT_LATE)
            self._start_recording(ctl, None)
            self.serving.end("armed for remote step")
            self.mode = "step"
            self.stepping.arm()
            return {
                "mode": self.mode,
                "action_wait_ms": self.stepping.action_wait_ns / _MS,
                "safety": self.supervisor.state.label,
            }
        if kind == Msg.DISARM:
            if self.mode == "serve":
                self.serving.end("disarmed by client")
            if self.mode in ("step", "serve"):
                self.mode = "hold"
                self.supervisor.disarm(Cause.CLIENT, Reason.CLIENT_DISARM)
            return {"mode": self._mode()}
        if kind == Msg.RESET:
            scene = self._reset_scene(ctl, h) if h.get("scene") else None
            self.episode += 1
            self.stepping.reset()
            return {"episode": self.episode} | ({"scene": scene} if scene else {})
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
            return self.runs.begin_upload(h)
        if kind == Msg.UPLOAD_CHUNK:
            return self.runs.chunk(h, arrays.get("data"))
        if kind == Msg.UPLOAD_END:
            return self.runs.end_upload()
        if kind == Msg.RUN:
            return self.runs.request(h)
        if kind == Msg.STOP:
            summary = self.runs.finish("stopped by client") if self.mode == "policy" else None
            if self.mode == "serve":
                self.serving.end("stopped by client")
                summary = self.serving.last_summary
            if self.mode in ("step", "serve"):
                self.mode = "hold"
            if self.mode != "health":  # the check is nobody's to stop but an e-stop's
                self.supervisor.disarm(Cause.CLIENT, Reason.CLIENT_DISARM)
            return {"mode": self._mode(), "summary": summary}
        raise RequestRefusedError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r}")

    def _reset_scene(self, ctl: Peer, h: dict[str, Any]) -> dict[str, Any]:
        """`reset` with `scene: true`: the cell back to an episode's start (the block in the
        palm, the hand at its start pose), between episodes, while the hand holds."""
        seed = h.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "seed must be an integer >= 0")
        if self.reset_scene is None:
            raise RequestRefusedError(
                ErrorCode.UNAVAILABLE,
                "this cell cannot reset its scene itself (only the simulated rig can): a "
                "person or the cell's reset hook puts the block back",
            )
        if self.mode != "hold" or self.pending_run is not None:
            raise RequestRefusedError(
                ErrorCode.BUSY, f"the hand is in {self._mode()} mode: stop or disarm first"
            )
        if self.supervisor.state is SafetyState.FAULT:
            code = ErrorCode.ESTOPPED if self.estopped else ErrorCode.FAULT
            raise RequestRefusedError(code, f"a {self.supervisor.reason.value} fault is latched")
        t0 = time.monotonic_ns()
        self.reset_scene(seed)
        self.hold[:] = self.packer.idle  # the hand holds its start pose from now on
        took_ms = (time.monotonic_ns() - t0) / _MS
        data = {"seed": seed, "by": ctl.claims.sub, "took_ms": round(took_ms, 3)}
        self._event("scene_reset", data)
        return data

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
            if self.mode != "health":  # a check in progress goes on (docs/safety.md 5)
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
            if self.mode == "health":
                # a session opened during the check never drove the hand: its end neither
                # stops the check (a hold or ramp-down would abandon it) nor asks for another
                # (the one running is the check after the session before it)
                pass
            else:
                self.runs.end(reason)
                self.mode = "hold"
                self._stop_for_close(reason)
                self.health.session_ended(reason)
            self.stepping.end(reason)
            self.serving.end(reason)
            self._stop_recording()
            self.runs.abort_upload()
            self.runs.pending = None
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
        if self.mode == "step":
            self.stepping.stopped(t)
        if self.mode == "serve":
            self.serving.stopped(t)
        mode = self._active()
        if mode is not None:
            mode.stopped(t)

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
            self.runs.finish("e-stop")
        if self.mode == "health":  # the check ends, reported failed (`completed`: e-stop)
            self.health.end(f"e-stop by {who} via {via}")
        self.serving.end("e-stop")
        self.mode = "hold"
        self.supervisor.fault(Cause.OPERATOR, Reason.ESTOP, f"{who} via {via}")
        self._event("estop", {"by": who, "via": via})
        if self.controller is not None:
            self.sockets.send_to(
                self.controller.identity, Msg.EVENT, {"kind": "estop", "by": who, "via": via}
            )

    # ---------------------------------------------------------------- policy runs
    def start_policy(
        self,
        controller: Controller,
        done: Callable[[], bool],
        summary: Callable[[], Mapping[str, Any]],
    ) -> None:
        """Called between loop segments once the bundle is loaded (raas/transport/bundle_run.py)."""
        self.runs.start(controller, done, summary)

    def run_event(self, kind: str, data: Mapping[str, Any]) -> None:
        """Progress of a policy run (episode ends, successes), to the controller and stream."""
        data = plain(data)
        self._event(kind, data)
        if self.controller is not None:
            self.sockets.send_to(self.controller.identity, Msg.EVENT, {"kind": kind, **data})

    def fail_run(self, message: str) -> None:
        self.runs.fail(message)

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
            "capabilities": ["step", "policy", "serve", "upload", "fetch", "estop"],
            "stream_endpoint": self.sockets.stream_endpoint,
            "action_wait_ms": self.stepping.action_wait_ns / _MS,
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
            "serve": self.serving.summary() if self.serving.buffer else self.serving.last_summary,
        }

    def _event(self, kind: str, data: Mapping[str, Any]) -> None:
        self.sockets.publish(Topic.EVENT, encode(Msg.EVENT, {"kind": kind, **data}))
        for sink in self.sinks:
            sink.event(kind, data)

    def close_all(self, reason: str) -> None:
        for peer in list(self.peers.values()):
            self._close(peer, reason)
        self.serving.end(reason)  # a dialled policy server's socket too (before ctx.term)


def plain(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with only msgpack-able values (numpy scalars and arrays become Python ones)."""

    def default(o: object) -> object:
        if isinstance(o, np.generic | np.ndarray):
            return o.tolist()
        return str(o)

    out: dict[str, Any] = json.loads(json.dumps(dict(data), default=default))
    return out
