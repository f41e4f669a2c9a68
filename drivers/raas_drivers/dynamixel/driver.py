"""A Dynamixel Protocol 2.0 hand (e.g. the LEAP hand) behind the HandDriver contract.

    hand = DynamixelHandDriver("hand", settings, load_calibration(path))
    hand.configure(); hand.activate()
    hand.request_state(k); ...; hand.poll(k); hand.apply(targets, k)

One cycle on the bus (the bus is half duplex: one packet at a time):

- request_state(k) sends one SYNC READ of Realtime Tick .. Present Position (16 bytes a servo;
  every `temperature_every` cycles up to Present Temperature, 27 bytes) and returns at once.
- poll(k) takes the status packets that arrived without blocking (dynamixel-sdk parses each);
  the state of k is there once every servo answered. A read not complete after `read_timeout`
  failed: the servos that did not answer are counted, and after `max_consecutive_failures`
  failed reads in a row poll raises ServoSilentError (a DeviceLostError) naming them.
- apply(targets, k) clamps to the calibration's limits, converts to raw counts and sends one
  SYNC WRITE of Goal Position (no answer to wait for). If the state read of this cycle is still
  on the bus (the loop stopped waiting at the hand's deadline), apply first lets it end, at most
  until its read timeout: writing into the servos' answers would corrupt both.
- A status packet with the alert bit set means a servo has a hardware error: the driver reads
  Hardware Error Status of that servo and raises ServoHardwareError (a DeviceLostError) naming it
  and the cause (overheating, overload, electrical shock, ...).

Safety (see README.md): activate() first sets every Goal Position to the measured position, then
switches torque on, so nothing moves on activation. deactivate() holds the measured position
with torque on. shutdown() keeps holding unless `torque_off_on_shutdown` is set: a hand that
drops its torque drops what it holds.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import serial
from dynamixel_sdk import COMM_SUCCESS

from raas_drivers.clock_sync import ClockMapper, TickUnwrapper
from raas_drivers.dynamixel import control_table as ct
from raas_drivers.dynamixel.bus import (
    BufferedPort,
    GoalWriter,
    ReadResult,
    SyncRead,
    bus_time_ns,
    close_port,
    open_port,
    port_problem,
    sync_read_bytes,
    sync_write_bytes,
)
from raas_drivers.dynamixel.calibration import Calibration
from raas_drivers.dynamixel.config import DynamixelHandSettings
from raas_drivers.dynamixel.errors import ServoHardwareError, ServoSilentError
from raas_drivers.errors import DeviceLostError, DeviceNotReadyError, TargetShapeError
from raas_drivers.hand.driver import HandDriver, HandState

_BLOCK = struct.Struct("<HBBhhii")  # tick, moving, moving status, PWM, current, velocity, position
_TEMP_OFFSET = ct.PRESENT_TEMPERATURE - ct.STATE_BLOCK_START


def latency_timer_ms(port: str) -> int | None:
    """The FTDI latency timer of a /dev/ttyUSB* port (sysfs), None when not an FTDI port."""
    try:
        tty_name = Path(os.path.realpath(port)).name
        return int(Path(f"/sys/bus/usb-serial/devices/{tty_name}/latency_timer").read_text())
    except (OSError, ValueError):
        return None


def default_read_timeout_ns(n_servos: int, length: int, baudrate: int, delay_us: int) -> int:
    """Twice the bus time of the read (servo return delays included) plus 4 ms of USB latency."""
    tx, rx = sync_read_bytes(n_servos, length)
    bus = bus_time_ns(tx + rx, baudrate) + n_servos * delay_us * 1000
    return 2 * bus + 4_000_000


class DynamixelHandDriver(HandDriver):
    def __init__(
        self, name: str, settings: DynamixelHandSettings, calibration: Calibration
    ) -> None:
        super().__init__(name)
        self.settings = settings
        self.calibration = calibration
        cal = calibration
        n = len(cal.servos)
        # The hand's shape, from the calibration (HandDriver's per-instance attributes).
        self.model = cal.model
        self.actuator_names = cal.joints
        self.joint_names = cal.joints
        self.limits = cal.limits
        self.effort_limits = cal.current_limits_ma * 1e-3  # A
        self.actuator_joint_index = tuple(range(n))
        self._ids = cal.ids
        self._n = n
        self._lo = np.ascontiguousarray(self.limits[:, 0])
        self._hi = np.ascontiguousarray(self.limits[:, 1])
        self._zero = cal.zero
        self._dir = cal.direction
        self._idle = self._quantise(np.clip(cal.idle, self._lo, self._hi))
        self._clip = np.zeros(n)
        self._raw = np.zeros(n)
        self._current_unit_a = np.full(n, 1e-3)
        delay = settings.return_delay_us
        baud = settings.baudrate
        if settings.read_timeout_ms is not None:
            self._timeout_ns = round(settings.read_timeout_ms * 1e6)
            self._timeout_temp_ns = self._timeout_ns
        else:
            self._timeout_ns = default_read_timeout_ns(n, ct.STATE_BLOCK_LEN, baud, delay)
            self._timeout_temp_ns = default_read_timeout_ns(n, ct.STATE_TEMP_BLOCK_LEN, baud, delay)
        tx, _ = sync_read_bytes(n, ct.STATE_BLOCK_LEN)
        self._instr_ns = bus_time_ns(tx, baud)
        self._port: BufferedPort | None = None
        self._ph: Any = None
        self._read: SyncRead | None = None
        self._read_temp: SyncRead | None = None
        self._writer: GoalWriter | None = None
        self._active_read: SyncRead | None = None
        self._read_cycle = -1
        self._applied_seq = -1
        self._read_seq = -1
        #: The bus's clock: the first servo's Realtime Tick (ms, wraps at 32768), unwrapped, and
        #: its fit to the host's CLOCK_MONOTONIC (each sync read is one request/response pair).
        self.clock = ClockMapper(name)
        self._unwrap = TickUnwrapper(ct.TICK_WRAP, 1_000_000)
        #: device stamp (unwrapped tick, ns) and host-mapped stamp of the last state
        self.device_ns = -1
        self.device_host_ns = -1
        self._state: HandState | None = None
        self._temps = np.zeros(n)
        self._fails = 0
        self._missing: dict[int, int] = {}
        self._stats: dict[str, float] = {
            "reads": 0,
            "read_failures": 0,
            "consecutive_failures": 0,
            "timeouts": 0,
            "crc_errors": 0,
            "writes": 0,
            "apply_waited": 0,
            "read_last_us": 0.0,
            "read_max_us": 0.0,
            "max_temperature_c": 0.0,
        }
        self._lost: DeviceLostError | None = None
        self.latency_timer_ms: int | None = None

    # -- the budget --------------------------------------------------------------------------
    def bus_floor_ns(self, *, with_temperature: bool = False) -> int:
        """Bus time of one cycle's sync read + sync write at this baud rate (the floor)."""
        length = ct.STATE_TEMP_BLOCK_LEN if with_temperature else ct.STATE_BLOCK_LEN
        tx, rx = sync_read_bytes(self._n, length)
        w = sync_write_bytes(self._n, 4)
        delays = self._n * self.settings.return_delay_us * 1000
        return bus_time_ns(tx + rx + w, self.settings.baudrate) + delays

    @property
    def read_timeout_ns(self) -> int:
        return self._timeout_temp_ns

    # -- lifecycle ---------------------------------------------------------------------------
    def _on_configure(self) -> None:
        s = self.settings
        try:
            port, ph = open_port(s.port, s.baudrate)
        except (OSError, serial.SerialException) as exc:
            raise DeviceNotReadyError(self.name, port_problem(s.port, exc)) from exc
        self._port, self._ph = port, ph
        try:
            self._check_servos()
            self._write_settings()
        except BaseException:
            close_port(port)
            self._port = None
            raise
        self.latency_timer_ms = latency_timer_ms(s.port)
        self._read = SyncRead(
            port, ph, self._ids, ct.STATE_BLOCK_START, ct.STATE_BLOCK_LEN, self._timeout_ns
        )
        self._read_temp = SyncRead(
            port, ph, self._ids, ct.STATE_BLOCK_START, ct.STATE_TEMP_BLOCK_LEN,
            self._timeout_temp_ns,
        )  # fmt: skip
        self._writer = GoalWriter(port, ph, self._ids, ct.GOAL_POSITION)

    def _check_servos(self) -> None:
        cal, ph, port = self.calibration, self._ph, self._port
        assert ph is not None and port is not None
        silent, unknown, faulted = [], [], []
        for i, sid in enumerate(self._ids):
            model, result, _ = self._retry(ph.ping, port, sid)
            if result != COMM_SUCCESS:
                silent.append(cal.name(sid))
                continue
            known = ct.MODELS.get(model)
            if known is None:
                unknown.append(f"{cal.name(sid)}: model number {model}")
                continue
            self._current_unit_a[i] = known.current_unit_ma * 1e-3
            bits, result, _ = self._retry(ph.read1ByteTxRx, port, sid, ct.HARDWARE_ERROR_STATUS)
            if result == COMM_SUCCESS and bits:
                faulted.append(f"{cal.name(sid)}: {ct.describe_hardware_error(bits)}")
        if silent:
            raise DeviceNotReadyError(
                self.name,
                f"no answer on {self.settings.port} at {self.settings.baudrate} baud from "
                f"{', '.join(silent)} (power, wiring, id or baud rate)",
            )
        if unknown:
            known_models = ", ".join(m.name for m in ct.MODELS.values())
            raise DeviceNotReadyError(
                self.name, f"unsupported servo {'; '.join(unknown)} (known: {known_models})"
            )
        if faulted:
            raise DeviceNotReadyError(
                self.name,
                f"hardware error on {'; '.join(faulted)}: fix the cause, then power-cycle or "
                "reboot the servo",
            )

    @staticmethod
    def _retry(fn: Any, *args: Any) -> Any:
        """A blocking SDK call outside the cycle, tried up to 3 times while no status comes
        (a packet lost on a noisy bus, or a late answer, is not yet a silent servo)."""
        out = fn(*args)
        for _ in range(2):
            result = out[0] if len(out) == 2 else out[1]
            if result == COMM_SUCCESS:
                break
            out = fn(*args)
        return out

    def _write(self, sid: int, address: int, size: int, value: int) -> None:
        ph, port = self._ph, self._port
        assert ph is not None and port is not None
        fn = {1: ph.write1ByteTxRx, 2: ph.write2ByteTxRx, 4: ph.write4ByteTxRx}[size]
        result, error = self._retry(fn, port, sid, address, value)
        if result != COMM_SUCCESS or error & 0x7F:
            what = ph.getTxRxResult(result) if result != COMM_SUCCESS else ""
            raise DeviceNotReadyError(
                self.name,
                f"{self.calibration.name(sid)}: writing {value} at address {address} failed: "
                f"{what or ct.describe_status_error(error)}",
            )

    def _read_value(self, sid: int, address: int, size: int) -> int:
        ph, port = self._ph, self._port
        assert ph is not None and port is not None
        fn = {1: ph.read1ByteTxRx, 2: ph.read2ByteTxRx, 4: ph.read4ByteTxRx}[size]
        value, result, _ = self._retry(fn, port, sid, address)
        if result != COMM_SUCCESS:
            raise DeviceNotReadyError(
                self.name,
                f"{self.calibration.name(sid)}: reading address {address} failed: "
                f"{ph.getTxRxResult(result)}",
            )
        return int(value)

    def _write_settings(self) -> None:
        """EEPROM items (only where they differ: they need torque off), then RAM items."""
        s = self.settings
        mode = ct.OPERATING_MODES[s.operating_mode]
        raw_limits = self.calibration.raw_limits()
        for i, (sid, servo) in enumerate(zip(self._ids, self.calibration.servos, strict=True)):
            unit_ma = self._current_unit_a[i] * 1e3
            current = max(1, math.floor(servo.current_limit_ma / unit_ma))
            eeprom = [
                (ct.RETURN_DELAY_TIME, 1, s.return_delay_us // 2),
                (ct.OPERATING_MODE, 1, mode),
                (ct.MAX_POSITION_LIMIT, 4, int(raw_limits[i, 1])),
                (ct.MIN_POSITION_LIMIT, 4, int(raw_limits[i, 0])),
                (ct.CURRENT_LIMIT, 2, current),
            ]
            changes = [e for e in eeprom if self._read_value(sid, e[0], e[1]) != e[2]]
            if changes and self._read_value(sid, ct.TORQUE_ENABLE, 1):
                self._write(sid, ct.TORQUE_ENABLE, 1, 0)  # EEPROM is locked while torque is on
            for address, size, value in changes:
                self._write(sid, address, size, value)
            self._write(sid, ct.GOAL_CURRENT, 2, current)
            for address, gain in (
                (ct.POSITION_P_GAIN, servo.position_p_gain),
                (ct.POSITION_I_GAIN, servo.position_i_gain),
                (ct.POSITION_D_GAIN, servo.position_d_gain),
            ):
                if gain is not None:
                    self._write(sid, address, 2, gain)

    def _on_activate(self) -> None:
        self._lost = None
        self._fails = 0
        self._missing.clear()
        self.clock.reset()
        self._unwrap = TickUnwrapper(ct.TICK_WRAP, 1_000_000)
        self._read_cycle = -1
        self._state = None
        raw = self._measure_raw("activate")
        lim = self.calibration.raw_limits()
        self._send_goal(np.clip(raw, lim[:, 0], lim[:, 1]))  # hold where it is ...
        for sid in self._ids:  # ... then take the torque
            self._write(sid, ct.TORQUE_ENABLE, 1, 1)

    def _on_deactivate(self) -> None:
        """Hold where the hand is, torque on (a loop that stops must not drop the object)."""
        if self._lost is not None or self._port is None:
            return
        with contextlib.suppress(DeviceNotReadyError, DeviceLostError, OSError):
            raw = self._measure_raw("deactivate")
            lim = self.calibration.raw_limits()
            self._send_goal(np.clip(raw, lim[:, 0], lim[:, 1]))

    def _on_shutdown(self) -> None:
        port = self._port
        if port is None:
            return
        if self.settings.torque_off_on_shutdown and self._lost is None:
            with contextlib.suppress(Exception):
                self.torque_off()
        close_port(port)
        self._port = None

    def torque_off(self) -> None:
        """Switch every servo's torque off (the hand goes limp). Only when asked."""
        self._finish_read()
        for sid in self._ids:
            self._write(sid, ct.TORQUE_ENABLE, 1, 0)

    def _measure_raw(self, what: str) -> np.ndarray:
        """A blocking sync read of Present Position (outside the cycle), tried up to 3 times
        while a servo's status is missing (a late answer is not yet a silent servo), like the
        other blocking calls of configure and activate."""
        self._finish_read()
        assert self._read is not None
        for _ in range(3):
            self._read.start()
            res = self._read.finish()
            missing = self._read.missing()
            if not missing:
                break
        if missing:
            names = ", ".join(self.calibration.name(i) for i in missing)
            raise DeviceNotReadyError(self.name, f"{what}: no position from {names}")
        return np.array(
            [_BLOCK.unpack_from(res.data[sid])[6] for sid in self._ids], dtype=np.float64
        )

    # -- the cycle ---------------------------------------------------------------------------
    @property
    def idle_action(self) -> np.ndarray:
        idle: np.ndarray = self._idle.copy()
        return idle

    def fileno(self) -> int:
        if self._port is None:
            raise DeviceLostError(self.name, "the port is not open")
        return self._port.fileno()

    def request_state(self, cycle: int) -> None:
        self.require_active("request_state")
        self._raise_if_lost()
        self._finish_read()  # the previous read is long over; this only books its outcome
        temp = cycle % self.settings.temperature_every == 0
        read = self._read_temp if temp else self._read
        assert read is not None
        try:
            result = read.start()
        except (OSError, serial.SerialException) as exc:
            self._lose(DeviceLostError(self.name, f"writing the sync read failed: {exc}"))
        if result != COMM_SUCCESS:
            self._lose(DeviceLostError(self.name, f"sync read not sent (SDK result {result})"))
        self._active_read = read
        self._read_cycle = cycle
        self._read_seq = self._applied_seq

    def settle(self) -> None:
        """The clock fit while the servos answer (after every device was asked), so that
        poll only maps."""
        self.clock.refit()

    def poll(self, cycle: int) -> HandState | None:
        self._raise_if_lost()
        state = self._state
        if state is not None and state.cycle == cycle:
            return state
        read = self._active_read
        if read is None or self._read_cycle != cycle:
            return None
        try:
            over = read.pump()
        except OSError as exc:
            self._lose(DeviceLostError(self.name, f"reading the bus failed: {exc}"))
        if not over:
            return None
        self._active_read = None
        return self._book(read, cycle)

    def apply(self, targets: np.ndarray, cycle: int) -> np.ndarray:
        """Targets (n,) rad in calibration order; returns the targets as the servos take them
        (clamped to the limits, on the 4096-count grid). DeviceLostError when the bus is gone."""
        self.require_active("apply")
        arr = np.asarray(targets, dtype=np.float64)
        if arr.shape != (self._n,):
            raise TargetShapeError(
                self.name, f"targets must have shape ({self._n},), got {arr.shape}"
            )
        if not np.isfinite(arr).all():
            bad = [self.actuator_names[i] for i in np.flatnonzero(~np.isfinite(arr))]
            raise TargetShapeError(self.name, f"non-finite targets for {', '.join(bad)}")
        np.clip(arr, self._lo, self._hi, out=self._clip)
        raw = self.calibration.to_raw(self._clip)
        applied = self.calibration.to_rad(raw)
        if self._active_read is not None:
            self._stats["apply_waited"] += 1
        with contextlib.suppress(DeviceLostError):
            self._finish_read()  # the bus must be quiet before we talk; errors raise below
        self._send_goal(raw)
        if cycle >= 0:
            self._applied_seq = cycle
        self._raise_if_lost()
        return applied

    # -- inside ------------------------------------------------------------------------------
    def _send_goal(self, raw: np.ndarray) -> None:
        writer = self._writer
        if writer is None:
            raise DeviceLostError(self.name, "the port is not open")
        try:
            result = writer.write([int(v) for v in raw])
        except (OSError, serial.SerialException) as exc:
            self._lose(DeviceLostError(self.name, f"writing goal positions failed: {exc}"))
        if result != COMM_SUCCESS:
            self._lose(DeviceLostError(self.name, f"goal positions not sent (SDK result {result})"))
        self._stats["writes"] += 1

    def _finish_read(self) -> None:
        read = self._active_read
        if read is None:
            return
        self._active_read = None
        try:
            read.finish()
        except OSError as exc:
            self._lose(DeviceLostError(self.name, f"reading the bus failed: {exc}"))
        self._book(read, self._read_cycle)

    def _book(self, read: SyncRead, cycle: int) -> HandState | None:
        """Count the read's outcome; the state when complete, else None (or the lost error)."""
        res: ReadResult = read.result
        st = self._stats
        st["reads"] += 1
        st["crc_errors"] += res.corrupt
        took_us = (res.end_ns - res.start_ns) / 1e3
        st["read_last_us"] = took_us
        st["read_max_us"] = max(st["read_max_us"], took_us)
        alerts = [sid for sid, err in res.errors.items() if err & ct.ERRBIT_ALERT]
        if alerts:
            self._hardware_error(alerts[0])
        missing = read.missing()
        if missing:
            st["read_failures"] += 1
            st["timeouts"] += int(res.timed_out)
            self._fails += 1
            st["consecutive_failures"] = self._fails
            for sid in missing:
                self._missing[sid] = self._missing.get(sid, 0) + 1
            if self._fails >= self.settings.max_consecutive_failures:
                names = ", ".join(self.calibration.name(i) for i in missing)
                self._lose(
                    ServoSilentError(
                        self.name,
                        f"{names} did not answer {self._fails} sync reads in a row"
                        + (f" ({res.corrupt} corrupt status packets)" if res.corrupt else ""),
                        missing,
                    )
                )
            return None
        self._fails = 0
        st["consecutive_failures"] = 0
        self._state = self._decode(res, read.length, cycle)
        return self._state

    def _decode(self, res: ReadResult, length: int, cycle: int) -> HandState:
        n = self._n
        raw_pos = np.empty(n)
        raw_vel = np.empty(n)
        raw_cur = np.empty(n)
        tick = 0
        for i, sid in enumerate(self._ids):
            data = res.data[sid]
            t, _, _, _, cur, vel, pos = _BLOCK.unpack_from(data)
            if i == 0:
                tick = t
            raw_pos[i], raw_vel[i], raw_cur[i] = pos, vel, cur
            if length > _TEMP_OFFSET:
                self._temps[i] = data[_TEMP_OFFSET]
        if length > _TEMP_OFFSET:
            self._stats["max_temperature_c"] = float(self._temps.max())
        d = self._dir
        positions = d * (raw_pos - self._zero) * ct.RAD_PER_POSITION_UNIT
        # The servos latch their present values once the instruction is in: that instant on the
        # host is first estimated from the send time, then taken from the fitted bus clock (the
        # tick counts whole ms: +0.5 ms is the middle of the ms it names).
        after = res.first_ns or res.end_ns
        dev = self._unwrap.unwrap(tick, after) + 500_000
        capture = res.start_ns + self._instr_ns
        if self.clock.ready:
            capture = self.clock.to_host(dev)  # the fit made in request_state: no fit here
        self.clock.add(dev, res.start_ns, after)
        self.device_ns = dev
        self.device_host_ns = capture
        return HandState(
            cycle=cycle,
            capture_ns=capture,
            device_ns=dev,
            positions=positions,
            velocities=d * raw_vel * ct.RAD_S_PER_VELOCITY_UNIT,
            efforts=d * raw_cur * self._current_unit_a,
            temperatures=self._temps.copy(),
            applied_seq=self._read_seq,
        )

    def _hardware_error(self, sid: int) -> None:
        bits = -1
        with contextlib.suppress(Exception):
            ph, port = self._ph, self._port
            assert ph is not None and port is not None
            value, result, _ = ph.read1ByteTxRx(port, sid, ct.HARDWARE_ERROR_STATUS)
            if result == COMM_SUCCESS:
                bits = int(value)
        cause = ct.describe_hardware_error(bits) if bits >= 0 else "Hardware Error Status unread"
        self._lose(
            ServoHardwareError(
                self.name,
                f"{self.calibration.name(sid)} reports a hardware error: {cause}; its torque is "
                "off until it is rebooted or power-cycled",
                sid,
                bits,
            )
        )

    def _quantise(self, rad: np.ndarray) -> np.ndarray:
        return self.calibration.to_rad(self.calibration.to_raw(rad))

    def _lose(self, exc: DeviceLostError) -> NoReturn:
        if self._lost is None:
            self._lost = exc
        raise self._lost

    def _raise_if_lost(self) -> None:
        if self._lost is not None:
            raise self._lost

    def stats(self) -> dict[str, float]:
        out = dict(self._stats)
        for sid, count in self._missing.items():
            out[f"missing_id{sid}"] = count
        for key, value in self.clock.stats().items():
            out[f"clock_{key}"] = value
        return out

    @property
    def silent_counts(self) -> dict[int, int]:
        """Per servo id: sync reads it did not answer since activate."""
        return dict(self._missing)
