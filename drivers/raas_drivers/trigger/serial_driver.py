"""The trigger board behind its microcontroller: the TriggerDriver contract over the serial link.

fire(k) sends TRIGGER(k) and returns the host time it went out; the board pulses the camera and
motion-capture sync lines and answers TRIGGER_ACK(k, hw_time_us), which poll(k) returns as a
TriggerAck (capture_ns = hw_time_us * 1000, the board's clock). A bad frame arriving while the
ack of the current cycle is awaited makes poll() send the trigger again (once per bad frame,
until the link dies after M bad frames in a row); the board answers a repeated cycle with the
same pulse's time and pulses nothing. Any link fault raises DeviceLostError("trigger", ...)
until reset().

hw_time_us is the board's own clock: each TRIGGER/TRIGGER_ACK pair is an observation of it for a
ClockMapper (docs/clocks.md); TriggerAck.device_ns is the board's stamp, capture_ns the pulse on
the host's clock. stats() carries the mapper's clock_* figures.
"""

from __future__ import annotations

import time

from raas_firmware_bridge.errors import LinkError
from raas_firmware_bridge.link import DEFAULT_BAUD, DEFAULT_MAX_BAD_FRAMES
from raas_firmware_bridge.messages import BoardKind, Trigger
from raas_firmware_bridge.messages import TriggerAck as WireTriggerAck

from raas_drivers.device_clock import DeviceClock
from raas_drivers.errors import DeviceLostError
from raas_drivers.serial_device import DEFAULT_REQUEST_TIMEOUT_S, SerialDevice
from raas_drivers.trigger.driver import TriggerAck, TriggerDriver


class SerialTriggerDriver(SerialDevice, TriggerDriver):
    board_kind = int(BoardKind.TRIGGER)

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
        self._ack_cycle = -1
        self._ack_ns = 0
        self._fired = -1
        self._fired_ns = 0
        self._observed = -1  # the latest cycle whose exchange went to the clock mapper
        self._retries = 0
        # the fit runs after each trigger went out (settle), while the board answers
        self.clock = DeviceClock(
            name, lockstep_period_ns=lockstep_period_ns, refit_interval_ns=2_000_000_000
        )

    def fire(self, cycle: int) -> int:
        self.require_active("fire")
        sent = time.monotonic_ns()
        self._fired, self._fired_ns, self._retries = cycle, self.clock.host_ns(cycle), 0
        self._send(cycle)
        self.link.track(("trigger", cycle))
        return sent

    def settle(self) -> None:
        """The clock fit, while the board answers (after every device was asked)."""
        self.clock.mapper.refit()

    def poll(self, cycle: int) -> TriggerAck | None:
        link = self.link
        match: int | None = None
        bad_before = link.stats.bad_frames
        entered = self.clock.host_ns(cycle)  # the ack's arrival is no later (before decoding)
        for msg in link.receive():
            if isinstance(msg, WireTriggerAck):
                link.answered(("trigger", msg.cycle))
                if msg.cycle == self._fired and self._retries == 0 and msg.cycle > self._observed:
                    self._observed = msg.cycle
                    self.clock.exchange(msg.hw_time_us * 1000, self._fired_ns, entered)
                if msg.cycle >= self._ack_cycle:
                    self._ack_cycle, self._ack_ns = msg.cycle, msg.hw_time_us * 1000
                if msg.cycle == cycle:
                    match = msg.hw_time_us * 1000
        self._check()
        if match is None and self._ack_cycle == cycle:
            match = self._ack_ns
        if match is None:
            if (
                link.stats.bad_frames > bad_before
                and cycle == self._fired
                and self._retries < link.max_bad_frames
            ):
                self._retries += 1
                link.stats.retries += 1
                self._send(cycle)
            return None
        mapper = self.clock.mapper
        if mapper.samples == 0:  # no exchange observed yet: its arrival is the bound
            mapper.add(match, self.clock.host_ns(cycle))
        return TriggerAck(cycle=cycle, capture_ns=self.clock.map(match), device_ns=match)

    def stats(self) -> dict[str, float]:
        d = super().stats()
        d.update(self.clock.stats())
        return d

    def _send(self, cycle: int) -> None:
        try:
            self.link.send(Trigger(cycle))
        except LinkError as exc:
            raise DeviceLostError(self.name, str(exc)) from exc
