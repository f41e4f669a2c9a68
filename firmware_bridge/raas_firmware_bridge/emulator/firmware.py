"""What the boards' firmware does with the messages, in Python, for the emulator.

    Firmware        both boards: HELLO (version negotiation), RESET, HEARTBEAT, ESTOP, the
                    BOOTED latch, reboot (fault injection), the event record
    HandFirmware    + SET_TARGETS, STATE_REQUEST, the 1 kHz servo tick and the watchdog
    TriggerFirmware + TRIGGER -> pulse the sync lines -> TRIGGER_ACK with the pulse's time

The firmware has no clock and no loop of its own: whoever runs it (the simulated rig, a test)
passes `now_us`, the board's microsecond clock, to every call, and calls `tick()` at 1 kHz. The
plant (the thing the motors move) and the sync lines are hooks a subclass fills in: the
simulated rig plugs in its MuJoCo hand, its motion capture and its cameras
(raas_drivers/sim/boards.py).

Rules the firmware keeps (docs/protocol-serial.md, "Link behaviour"):
- Only good frames are acted on: the decoder drops anything whose CRC or framing is wrong.
- A board starts with BOOTED latched; it answers HELLO, and every other command gets
  ERROR(NOT_READY) until HELLO, then ERROR(FAULTED) until RESET clears the latch.
- Hand watchdog: armed by the first SET_TARGETS after a RESET; when no valid SET_TARGETS or
  HEARTBEAT came for W ms the motors hold their current position, WATCHDOG is latched and
  FAULT(WATCHDOG) is sent.
  Targets are refused (ERROR(FAULTED)) until RESET; states are still answered, with the flag.
"""

from __future__ import annotations

import numpy as np
from raas_firmware_bridge.emulator.board_port import BoardPort
from raas_firmware_bridge.emulator.record import EventRecord
from raas_firmware_bridge.errors import MessageError
from raas_firmware_bridge.framing import Frame
from raas_firmware_bridge.messages import (
    MIN_PROTOCOL_VERSION,
    NO_SEQ,
    PROTOCOL_VERSION,
    BoardKind,
    Error,
    ErrorCode,
    Estop,
    Fault,
    FaultCode,
    FaultFlag,
    Heartbeat,
    Hello,
    HelloAck,
    Message,
    Reset,
    ResetAck,
    SetTargets,
    State,
    StateRequest,
    Trigger,
    TriggerAck,
    decode_message,
    encode_message,
    negotiate_version,
)

SERVO_HZ = 1000
FW_VERSION = (1, 0, 0)
LATCHING = FaultFlag.WATCHDOG | FaultFlag.ESTOP | FaultFlag.BOOTED | FaultFlag.LINK


class Firmware:
    """The part both boards share. Subclasses add their messages in `on_message`."""

    kind: BoardKind = BoardKind.HAND
    watchdog_ms = 0

    def __init__(self, name: str, port: BoardPort, record: EventRecord, serial_number: int) -> None:
        self.name = name
        self.port = port
        self.record = record
        self.serial_number = serial_number
        self.flags = int(FaultFlag.BOOTED)
        self.ready = False  # HELLO seen since boot
        self.boot_count = 0
        self.bad_messages = 0
        self.now_ns = 0  # the clock of the current call, for the port's pacing and the record

    # ------------------------------------------------------------------ io
    def send(self, msg: Message) -> None:
        self.port.send_frame(encode_message(msg, self.port.next_seq()), self.now_ns)

    def receive(self, now_us: int) -> list[Message]:
        """Decode what arrived; bad frames never get here, bad payloads are counted."""
        out: list[Message] = []
        for frame in self.port.receive():
            msg = self._decode(frame)
            if msg is not None:
                out.append(msg)
        return out

    def _decode(self, frame: Frame) -> Message | None:
        try:
            return decode_message(frame)
        except MessageError as exc:
            self.bad_messages += 1
            code = ErrorCode.BAD_LENGTH
            if "unknown message type" in str(exc):
                code = ErrorCode.UNKNOWN_TYPE
            elif "protocol version" in str(exc):
                code = ErrorCode.VERSION_UNSUPPORTED
            self.send(Error(code, frame.msg_type, frame.seq))
            return None

    # ------------------------------------------------------------------ messages
    def handle(self, msg: Message, seq: int, now_us: int) -> None:
        """Act on one good message."""
        self.now_ns = now_us * 1000
        if isinstance(msg, (SetTargets, Heartbeat)):  # what feeds the watchdog (protocol 5.)
            self.on_valid_command(now_us)
        if isinstance(msg, Hello):
            self._hello(msg)
        elif not self.ready:
            self.send(Error(ErrorCode.NOT_READY, msg.MSG_TYPE, seq))
        elif isinstance(msg, Reset):
            self.flags &= ~int(LATCHING)
            self.on_reset(now_us)
            self.record.write(self.name, "reset", self.now_ns, token=msg.token)
            self.send(ResetAck(msg.token, self.flags))
        elif isinstance(msg, Heartbeat):
            self.send(Heartbeat(self.wire_time_us(now_us), msg.time_us))
        elif isinstance(msg, Estop):
            self.flags |= int(FaultFlag.ESTOP)
            self.on_hold(now_us)
            self.record.write(self.name, "estop", self.now_ns, reason=int(msg.reason))
            self.send(Fault(FaultCode.ESTOP, self.flags, int(msg.reason)))
        else:
            self.on_message(msg, seq, now_us)

    def _hello(self, msg: Hello) -> None:
        version = negotiate_version(
            msg.min_version, msg.max_version, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
        )
        self.ready = version is not None
        self.record.write(self.name, "hello", self.now_ns, version=version or 0)
        self.send(
            HelloAck(
                version=version or 0,
                board_kind=self.kind,
                min_version=MIN_PROTOCOL_VERSION,
                max_version=PROTOCOL_VERSION,
                fw_major=FW_VERSION[0],
                fw_minor=FW_VERSION[1],
                fw_patch=FW_VERSION[2],
                watchdog_ms=self.watchdog_ms,
                servo_hz=SERVO_HZ,
                actuator_count=20 if self.kind == BoardKind.HAND else 0,
                joint_count=24 if self.kind == BoardKind.HAND else 0,
                serial_number=self.serial_number,
            )
        )

    def reboot(self, now_us: int) -> None:
        """Power cycle (fault injection): all state lost, BOOTED latched, FAULT(BOOTED) sent."""
        self.now_ns = now_us * 1000
        self.boot_count += 1
        self.flags = int(FaultFlag.BOOTED)
        self.ready = False
        self.on_boot(now_us)
        self.port.decoder.reset()
        self.record.write(self.name, "reboot", self.now_ns, boot_count=self.boot_count)
        self.send(Fault(FaultCode.BOOTED, self.flags, self.boot_count))

    @property
    def faulted(self) -> bool:
        return bool(self.flags & int(LATCHING))

    # ------------------------------------------------------------------ hooks
    def wire_time_us(self, now_us: int) -> int:
        """The board's clock as it goes on the wire, at `now_us` of the clock the caller runs the
        board on (which also paces its port). Default: the same clock; the simulated rig gives
        each board a clock of its own (offset, drift)."""
        return now_us

    def on_valid_command(self, now_us: int) -> None:
        return None

    def on_reset(self, now_us: int) -> None:
        return None

    def on_hold(self, now_us: int) -> None:
        return None

    def on_boot(self, now_us: int) -> None:
        return None

    def on_message(self, msg: Message, seq: int, now_us: int) -> None:
        self.send(Error(ErrorCode.WRONG_BOARD, msg.MSG_TYPE, seq))


class HandFirmware(Firmware):
    """The hand board. Subclasses provide the plant: `plant_targets(targets)` (what the servo
    tick drives), `plant_positions()` (actuator positions, for holding) and `sample(cycle,
    now_us)` (the State for a STATE_REQUEST, or None to answer later with `answer_state`)."""

    kind = BoardKind.HAND

    def __init__(
        self,
        name: str,
        port: BoardPort,
        record: EventRecord,
        *,
        ctrlrange: np.ndarray,
        watchdog_ms: float,
        serial_number: int = 1,
    ) -> None:
        super().__init__(name, port, record, serial_number)
        self.ctrlrange = np.asarray(ctrlrange, dtype=np.float64)
        self.watchdog_us = round(watchdog_ms * 1000)
        self.watchdog_ms = round(watchdog_ms)
        self.targets = self.ctrlrange.mean(axis=1)
        self.applied_seq = NO_SEQ
        self._dirty = True
        self.armed = False
        self.last_command_us = 0
        self.watchdog_trips = 0

    # ------------------------------------------------------------------ servo
    def tick(self, now_us: int) -> None:
        """One servo tick: watchdog, then the latched targets go to the motors."""
        self.now_ns = now_us * 1000
        if self.armed and now_us - self.last_command_us > self.watchdog_us:
            self._trip_watchdog(now_us)
        if self._dirty:
            self.plant_targets(self.targets)
            self._dirty = False

    def _trip_watchdog(self, now_us: int) -> None:
        self.armed = False
        self.watchdog_trips += 1
        self.flags |= int(FaultFlag.WATCHDOG)
        self.on_hold(now_us)
        silent_ms = (now_us - self.last_command_us) // 1000
        self.record.write(
            self.name,
            "watchdog",
            self.now_ns,
            last_command_ns=self.last_command_us * 1000,
            silent_ms=silent_ms,
            held=self.targets.tolist(),
        )
        self.send(Fault(FaultCode.WATCHDOG, self.flags, silent_ms))

    def on_hold(self, now_us: int) -> None:
        """Motors hold where they are now (not where they were told to go)."""
        np.clip(
            self.plant_positions(), self.ctrlrange[:, 0], self.ctrlrange[:, 1], out=self.targets
        )
        self._dirty = True
        self.plant_targets(self.targets)  # at once: a hold does not wait for the next tick
        self._dirty = False

    def on_valid_command(self, now_us: int) -> None:
        self.last_command_us = now_us

    def on_reset(self, now_us: int) -> None:
        self.armed = False
        self.applied_seq = NO_SEQ

    def on_boot(self, now_us: int) -> None:
        self.armed = False
        self.applied_seq = NO_SEQ
        self.on_hold(now_us)

    def on_message(self, msg: Message, seq: int, now_us: int) -> None:
        if isinstance(msg, SetTargets):
            if self.faulted:
                self.send(Error(ErrorCode.FAULTED, msg.MSG_TYPE, seq, self.flags))
                return
            if not np.isfinite(msg.targets).all():
                self.send(Error(ErrorCode.BAD_VALUE, msg.MSG_TYPE, seq))
                return
            np.clip(msg.targets, self.ctrlrange[:, 0], self.ctrlrange[:, 1], out=self.targets)
            self._dirty = True
            self.applied_seq = msg.target_seq
            self.armed = True
            if self.record.enabled:
                self.record.write(
                    self.name,
                    "applied",
                    self.now_ns,
                    seq=msg.target_seq,
                    targets=self.targets.tolist(),
                )
        elif isinstance(msg, StateRequest):
            state = self.sample(msg.cycle, now_us)
            if state is not None:
                self.send(state)
        else:
            super().on_message(msg, seq, now_us)

    def make_state(
        self,
        cycle: int,
        fw_time_us: int,
        applied_seq: int,
        values: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ) -> State:
        pos, vel, eff, temp = values
        return State(cycle, fw_time_us, applied_seq, self.flags, pos, vel, eff, temp)

    # ------------------------------------------------------------------ plant hooks
    def plant_targets(self, targets: np.ndarray) -> None:
        raise NotImplementedError

    def plant_positions(self) -> np.ndarray:
        raise NotImplementedError

    def sample(self, cycle: int, now_us: int) -> State | None:
        raise NotImplementedError


class TriggerFirmware(Firmware):
    """The trigger board. Subclasses provide `pulse(cycle, now_us) -> hw_time_us | None` (None:
    answer later with `acknowledge`). A TRIGGER for a cycle already pulsed is answered again
    with that pulse's time and pulses nothing (the host retries after a bad frame)."""

    kind = BoardKind.TRIGGER

    def __init__(
        self, name: str, port: BoardPort, record: EventRecord, *, serial_number: int = 2
    ) -> None:
        super().__init__(name, port, record, serial_number)
        self.last_cycle = -1
        self.last_time_us = 0

    def on_message(self, msg: Message, seq: int, now_us: int) -> None:
        if isinstance(msg, Trigger):
            if msg.cycle == self.last_cycle:
                self.send(TriggerAck(msg.cycle, self.last_time_us))
                return
            hw_us = self.pulse(msg.cycle, now_us)
            if hw_us is not None:
                self.acknowledge(msg.cycle, hw_us)
        else:
            super().on_message(msg, seq, now_us)

    def acknowledge(self, cycle: int, hw_time_us: int) -> None:
        self.last_cycle, self.last_time_us = cycle, hw_time_us
        self.send(TriggerAck(cycle, hw_time_us))

    def on_boot(self, now_us: int) -> None:
        self.last_cycle = -1

    def pulse(self, cycle: int, now_us: int) -> int | None:
        raise NotImplementedError
