"""Remote step (mode `step`): observation k goes to the controlling client inside decide of
cycle k, and its action for cycle k is awaited until the action deadline (`action_wait_ms`
after the observation was sent). An action *read* before the deadline is applied; one read
after it, one for another cycle, or none, is not: decide returns False and the loop's fallback
is applied and counted. The step report of cycle k (observation sent, action read, applied,
fallback) travels to the client with observation k+1. docs/protocol.md, Remote step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq
from raas_client.wire import PROTOCOL_VERSION, ErrorCode, Msg

from raas.core.fallback import FallbackKind
from raas.core.observation import Observation, Step
from raas.safety import Transition
from raas.task.stepping import SteppingTask
from raas.transport.errors import RequestRefusedError

if TYPE_CHECKING:
    from raas.transport.session import SessionController

_MS = 1_000_000


@dataclass(slots=True)
class StepTiming:
    cycle: int = -1
    obs_sent_ns: int = 0
    deadline_ns: int = 0  # an action read after this is late (obs_sent_ns + action wait)
    action_ns: int = -1  # -1: no action in time
    late: bool = False


class RemoteStep:
    """The `step` mode of a SessionController (raas.transport.modes.ControlMode)."""

    name = "step"

    def __init__(self, host: SessionController, action_wait_ns: int) -> None:
        self.host = host
        self.action_wait_ns = action_wait_ns
        self.timing = StepTiming()
        self.report: dict[str, Any] | None = None
        packer = host.packer
        #: The action read for this cycle (a copy out of the received block).
        self.action = np.zeros(len(packer.actuators))
        self.have_action = False
        self.reset_now = False
        #: Observations go out in the packer's preallocated `obs` block (protocol 2).
        self._obs_layout = packer.layouts["obs"]
        self._obs_block = packer.obs_block
        #: The cell's task for a remote stepper (raas.task.stepping); built here, at start-up,
        #: so that no import happens inside a cycle when a client arms.
        self.task = SteppingTask.for_cell(packer.markers, 1.0 / host.rate_hz, host.cfg.task)
        self._last_obs: Observation | None = None  # what prepare() warms the referee on
        #: The task's judgement of the last observation sent (None: not judged).
        self.judged: dict[str, Any] | None = None

    # ---------------------------------------------------------------- ControlMode
    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        host = self.host
        ctl = host.controller
        assert ctl is not None
        k = obs.cycle
        t = self.timing
        t.cycle, t.action_ns, t.late = k, -1, False
        self.have_action = False
        self.reset_now = False
        t.obs_sent_ns = self.observation(obs)
        host.counters.steps += 1
        deadline = t.deadline_ns = t.obs_sent_ns + self.action_wait_ns
        while not self.have_action and not self.reset_now and host.mode == "step":
            now = time.monotonic_ns()
            remaining = deadline - now
            if remaining <= 0:
                break
            if now - ctl.last_seen_ns > host.liveness_ns:  # a lost client is not waited for
                host._close(ctl, "liveness")
                break
            # Whole milliseconds block in a recv; the last sub-millisecond is looked at. Once
            # the action is read, messages queued behind it wait for the next cycle's decide
            # (before its apply): looking for them would cost a syscall per step.
            frames = host.sockets.recv_wait(remaining // _MS if remaining >= _MS else 0)
            if frames is not None:
                host._dispatch(frames)
                host._service_inbox(host.cfg.max_messages_per_cycle)
        if self.have_action:
            out[:] = self.action
            return True
        if self.reset_now or host.mode != "step" or host.controller is None:
            out[:] = host.hold
            return True
        return False  # the loop's fallback, counted and reported

    def stopped(self, t: Transition) -> None:
        """A stop while stepping leaves step mode (the client re-arms)."""
        self.host.mode = "hold"

    def end(self, reason: str) -> None:
        self.timing.cycle = -1

    # ---------------------------------------------------------------- the mode's rules
    def arm(self) -> None:
        """A new episode of the cell's task starts with the next observation."""
        self.new_episode()

    def new_episode(self) -> None:
        """The task starts an episode (goals from (0, episode)) on the next observation."""
        if self.task is not None:
            self.task.new_episode(self.host.episode)

    def reset(self) -> None:
        """`reset`: hold this cycle (the wait ends), the next observation starts an episode
        and carries no report (docs/protocol.md): not even of the cycle the reset cut short
        (a reset read during the action wait used to leave that cycle's report behind)."""
        self.reset_now = True
        self.report = None
        self.timing.cycle = -1
        self.new_episode()

    def prepare(self) -> None:
        """Before the trigger: the task referee's pose fit on the last observation, so that
        judging this cycle's (before the observation goes out) runs warm."""
        if self.task is not None and self._last_obs is not None:
            self.task.warm(self._last_obs)

    def observation(self, obs: Observation, dialled: zmq.Socket[bytes] | None = None) -> int:
        """Send observation k to the controlling client (also while held: it sees why), or on
        `dialled`, the socket to a policy server the robot dialled (policy_serve.py)."""
        host = self.host
        ctl = host.controller
        if ctl is None:
            return 0
        self._last_obs = obs
        judged = self.task.judge(obs) if self.task is not None else None  # writes obs.goal
        self.judged = judged
        host.packer.fill(obs)  # in place: the arrays are views on the packer's block
        sup = host.supervisor
        # The whole header, in the order wire.encode writes it (v, t, the fields, b).
        header: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "t": Msg.OBS,
            "cycle": obs.cycle,
            "episode": host.episode,
            "stale": [name for name, r in obs.sources.items() if r.stale],
            "safety": sup.state.label,
            "safety_reason": sup.reason.value,
        }
        if judged is not None:
            header["task"] = judged
        if self.report is not None:
            header["report"] = self.report
            self.report = None
        header["b"] = self._obs_layout.name
        sent = time.monotonic_ns()  # then: the header packed and the frames sent
        if dialled is not None:
            host.sockets.send_block_on(dialled, header, self._obs_block)
            return sent
        host.sockets.send_block_to(ctl.identity, header, self._obs_block)
        return sent

    def on_step(self, msg_cycle: object, action: np.ndarray | None) -> None:
        """A `step` request (its action block already decoded)."""
        host = self.host
        if host.mode == "step" and not host.supervisor.active:
            host.counters.actions_late += 1  # held: counted, never applied (the client was told)
            return
        if host.mode != "step":
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "not armed for remote step")
        if action is None or action.shape != self.action.shape:
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, f"action must have shape {self.action.shape}"
            )
        t = self.timing
        now = time.monotonic_ns()  # judged on when it is read, however long that took
        if msg_cycle == t.cycle and t.cycle >= 0 and not self.have_action and now <= t.deadline_ns:
            self.action[:] = action
            self.have_action = True
            t.action_ns = now
            host.counters.actions_on_time += 1
        else:  # past the deadline, a cycle already decided, or not a cycle: not applied
            host.counters.actions_late += 1
            if msg_cycle == t.cycle and t.cycle >= 0:
                t.late = True

    def published(self, step: Step) -> None:
        """After apply: the report of the cycle just stepped (sent with the next observation)."""
        t = self.timing
        if t.cycle != step.obs.cycle or t.cycle < 0:
            return
        host = self.host
        self.report = {
            "cycle": t.cycle,
            "fallback": int(step.fallback),
            "obs_sent_ns": t.obs_sent_ns,
            "action_ns": t.action_ns,
            "applied_ns": step.apply_ns if host.realtime else time.monotonic_ns(),
            "decide_ns": step.decide_ns,
            "late_total": host.counters.actions_late,
        }
        if step.fallback is not FallbackKind.NONE and t.action_ns < 0 and not t.late:
            host.counters.actions_missing += 1
        t.cycle = -1
