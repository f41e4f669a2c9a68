"""The hand behind its microcontroller: the HandDriver contract over the serial firmware link.

    hand = SerialHandDriver("hand", "/dev/serial/by-id/...")   # or the simulated rig's pty
    hand.configure(); hand.activate()
    hand.request_state(k); ...; hand.poll(k); hand.apply(targets, k)

- request_state(k) sends STATE_REQUEST(k); poll(k) drains the port and returns the State of k
  once it came (a newer one arriving in the same drain does not hide it).
- apply(targets, k) clamps to the actuator limits, quantises to the wire's 1e-4 rad and sends
  SET_TARGETS(target_seq=k); it returns exactly what the firmware will apply. Nothing is sent
  for a wrong shape or a non-finite value (TargetShapeError).
- A bad frame arriving while the state of the current cycle is awaited makes poll() ask again
  (one retry per bad frame; a line that keeps corrupting dies after M bad frames): a corrupted
  answer is dropped, never used, and not waited for.
- Any link fault raises DeviceLostError("hand", ...) and keeps raising until reset().
"""

from __future__ import annotations

import numpy as np
from raas_firmware_bridge.errors import LinkError, MessageFieldError
from raas_firmware_bridge.link import DEFAULT_BAUD, DEFAULT_MAX_BAD_FRAMES
from raas_firmware_bridge.messages import (
    NO_SEQ,
    BoardKind,
    SetTargets,
    State,
    StateRequest,
    quantise_targets,
)

from raas_drivers.errors import DeviceLostError, TargetShapeError
from raas_drivers.hand.config import ACTUATOR_LIMITS, ACTUATOR_NAMES, default_idle_action
from raas_drivers.hand.driver import HandDriver, HandState
from raas_drivers.serial_device import DEFAULT_REQUEST_TIMEOUT_S, SerialDevice

_NA = len(ACTUATOR_NAMES)


class SerialHandDriver(SerialDevice, HandDriver):
    board_kind = int(BoardKind.HAND)

    def __init__(
        self,
        name: str,
        url: str,
        *,
        baudrate: int = DEFAULT_BAUD,
        max_bad_frames: int = DEFAULT_MAX_BAD_FRAMES,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        super().__init__(name)
        self._init_link(
            url,
            baudrate=baudrate,
            max_bad_frames=max_bad_frames,
            request_timeout_s=request_timeout_s,
        )
        self._lo = np.ascontiguousarray(ACTUATOR_LIMITS[:, 0])
        self._hi = np.ascontiguousarray(ACTUATOR_LIMITS[:, 1])
        self._idle = quantise_targets(np.clip(default_idle_action(), self._lo, self._hi))
        self._clip = np.zeros(_NA)
        self._latest: State | None = None
        self._asked = -1  # the cycle whose state we wait for
        self._retries = 0

    @property
    def idle_action(self) -> np.ndarray:
        idle: np.ndarray = self._idle.copy()
        return idle

    def request_state(self, cycle: int) -> None:
        self.require_active("request_state")
        self._asked, self._retries = cycle, 0
        self._send(StateRequest(cycle))
        self.link.track(("state", cycle))

    def poll(self, cycle: int) -> HandState | None:
        link = self.link
        match: State | None = None
        bad_before = link.stats.bad_frames
        for msg in link.receive():
            if isinstance(msg, State):
                link.answered(("state", msg.cycle))
                if self._latest is None or msg.cycle >= self._latest.cycle:
                    self._latest = msg  # the newest, for a later poll of its cycle
                if msg.cycle == cycle:
                    match = msg
        self._check()
        if match is None and self._latest is not None and self._latest.cycle == cycle:
            match = self._latest
        if match is None:
            if (
                link.stats.bad_frames > bad_before
                and cycle == self._asked
                and self._retries < link.max_bad_frames
            ):
                self._retries += 1
                link.stats.retries += 1
                self._send(StateRequest(cycle))
            return None
        return HandState(
            cycle=match.cycle,
            capture_ns=match.fw_time_us * 1000,
            positions=np.array(match.positions),
            velocities=np.array(match.velocities),
            efforts=np.array(match.efforts),
            temperatures=np.array(match.temperatures),
            applied_seq=match.applied_seq,
        )

    def apply(self, targets: np.ndarray, cycle: int) -> np.ndarray:
        """Targets (20,) rad; applied_seq in later states is the `cycle` given here. On a link
        that is not open the targets are still written if the port takes them (the hold
        target on the way out is worth a try), then DeviceLostError is raised."""
        self.require_active("apply")
        arr = np.asarray(targets, dtype=np.float64)
        if arr.shape != (_NA,):
            raise TargetShapeError(self.name, f"targets must have shape ({_NA},), got {arr.shape}")
        if not np.isfinite(arr).all():
            bad = [ACTUATOR_NAMES[i] for i in np.flatnonzero(~np.isfinite(arr))]
            raise TargetShapeError(self.name, f"non-finite targets for {', '.join(bad)}")
        np.clip(arr, self._lo, self._hi, out=self._clip)
        try:
            applied = quantise_targets(self._clip)
            msg = SetTargets(cycle if cycle >= 0 else NO_SEQ, self._clip)
        except MessageFieldError as exc:  # cannot happen inside the limits; said clearly if so
            raise TargetShapeError(self.name, str(exc)) from exc
        if not self.link.send_best_effort(msg) or self.link.state.value != "open":
            self._check()
        return applied

    def _send(self, msg: StateRequest) -> None:
        try:
            self.link.send(msg)
        except LinkError as exc:
            raise DeviceLostError(self.name, str(exc)) from exc
