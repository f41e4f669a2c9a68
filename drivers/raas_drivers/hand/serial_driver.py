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
- The board stamps a state in its own clock (STATE fw_time_us); each request/answer pair is an
  observation of that clock (host time the request left, host time the answer was read) for a
  ClockMapper (docs/clocks.md): HandState.device_ns is the board's stamp, capture_ns the stamp
  mapped to host time. stats() carries the mapper's clock_* figures.
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

from raas_drivers.device_clock import DeviceClock
from raas_drivers.errors import DeviceLostError, TargetShapeError
from raas_drivers.hand.config import ACTUATOR_LIMITS, ACTUATOR_NAMES, default_idle_action
from raas_drivers.hand.driver import HandDriver, HandState
from raas_drivers.serial_device import DEFAULT_REQUEST_TIMEOUT_S, SerialDevice

_NA = len(ACTUATOR_NAMES)
#: to_host refits only when the driver has not for this long (it refits after each request)
REFIT_BY_TO_HOST_NS = 2_000_000_000


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
        lockstep_period_ns: int | None = None,
    ) -> None:
        """lockstep_period_ns: the rig runs in lockstep with this period; the host clock the
        board's stamps are mapped to is then sim time (DeviceClock)."""
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
        self._asked_ns = 0  # host time its request left
        self._observed = -1  # the latest cycle whose exchange went to the clock mapper
        self._retries = 0
        # the fit runs after each request went out (settle), while the board answers
        self.clock = DeviceClock(
            name, lockstep_period_ns=lockstep_period_ns, refit_interval_ns=REFIT_BY_TO_HOST_NS
        )

    @property
    def idle_action(self) -> np.ndarray:
        idle: np.ndarray = self._idle.copy()
        return idle

    def request_state(self, cycle: int) -> None:
        self.require_active("request_state")
        self._asked, self._retries = cycle, 0
        self._asked_ns = self.clock.host_ns(cycle)
        self._send(StateRequest(cycle))
        self.link.track(("state", cycle))

    def settle(self) -> None:
        """The clock fit, while the board answers (after every device was asked)."""
        self.clock.mapper.refit()

    def poll(self, cycle: int) -> HandState | None:
        link = self.link
        match: State | None = None
        bad_before = link.stats.bad_frames
        # the answer is in before we read it: its arrival is no later than now (taken before the
        # decoding, which would otherwise count as part of the answer's way back)
        entered = self.clock.host_ns(cycle)
        for msg in link.receive():
            if isinstance(msg, State):
                link.answered(("state", msg.cycle))
                if msg.cycle == self._asked and self._retries == 0 and msg.cycle > self._observed:
                    # the answer to the request that left at _asked_ns: one clock observation
                    self._observed = msg.cycle
                    self.clock.exchange(msg.fw_time_us * 1000, self._asked_ns, entered)
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
        return self._hand_state(match)

    def newest(self) -> HandState | None:
        """The newest state received, of any cycle (a late answer included); None before one."""
        return None if self._latest is None else self._hand_state(self._latest)

    def _hand_state(self, msg: State) -> HandState:
        """A received state, stamped in the board's clock and mapped to the host's."""
        device_ns = msg.fw_time_us * 1000
        mapper = self.clock.mapper
        if mapper.samples == 0:  # no exchange observed yet: its arrival is the bound
            mapper.add(device_ns, self.clock.host_ns(msg.cycle))
        return HandState(
            cycle=msg.cycle,
            capture_ns=self.clock.map(device_ns),
            device_ns=device_ns,
            positions=np.array(msg.positions),
            velocities=np.array(msg.velocities),
            efforts=np.array(msg.efforts),
            temperatures=np.array(msg.temperatures),
            applied_seq=msg.applied_seq,
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

    def stats(self) -> dict[str, float]:
        d = super().stats()
        d.update(self.clock.stats())
        return d

    def emergency_stop(self) -> None:
        """The firmware's own ESTOP frame: its motors hold where they are, latched until
        `clear_emergency_stop` (RESET). Targets sent meanwhile are refused by the board and its
        answers saying so do not fault the link (raas_firmware_bridge.link)."""
        self.link.estop()

    def clear_emergency_stop(self) -> None:
        self.link.clear_estop()

    def _send(self, msg: StateRequest) -> None:
        try:
            self.link.send(msg)
        except LinkError as exc:
            raise DeviceLostError(self.name, str(exc)) from exc
