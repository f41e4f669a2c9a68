"""A Dynamixel Protocol 2.0 servo chain on a pty: what the real dynamixel-sdk talks to in tests.

    python -m raas_drivers.dynamixel.emulator --servos 16 [--first-id 0] [--baud 1000000] [--pace]

prints the pty path on its first line, then serves until stdin closes or SIGTERM. Lines on stdin
inject faults (the same commands as `DynamixelEmulator.command`):

    silent ID | answer ID        the servo stops / resumes answering
    hwerror ID BITS              set Hardware Error Status (e.g. 4 = overheating); torque goes off
    temp ID DEGC                 set Present Temperature
    corrupt N                    the next N status packets carry a wrong CRC
    clear                        undo every fault

What it models, per servo: an X-series control table (model number, firmware version, id, EEPROM
writable only with torque off, read-only fields refused with an access error), PING (unicast and
broadcast), READ, WRITE, SYNC READ, SYNC WRITE, BULK READ, BULK WRITE, REBOOT; CRC-16 (poly
0x8005, checked with fastcrc's CRC-16/UMTS), byte stuffing both ways, status packets with the
error byte and its alert bit, Realtime Tick in ms with its 32768 wrap (each servo its own start),
first-order tracking of Goal Position with a velocity limit while torque is on, a current that
follows the tracking error (capped by Goal Current), temperature. With `pace`, status packets
leave at the time the real half-duplex bus would finish them (10 bits a byte at the baud rate,
plus each servo's Return Delay Time).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import struct
import sys
import threading
import time
import tty
from dataclasses import dataclass, field

from fastcrc import crc16

from raas_drivers.dynamixel import control_table as ct

INST_PING = 0x01
INST_READ = 0x02
INST_WRITE = 0x03
INST_REBOOT = 0x08
INST_STATUS = 0x55
INST_SYNC_READ = 0x82
INST_SYNC_WRITE = 0x83
INST_BULK_READ = 0x92
INST_BULK_WRITE = 0x93
BROADCAST = 0xFE

ERR_INSTRUCTION = 2
ERR_CRC = 3
ERR_DATA_LIMIT = 6
ERR_ACCESS = 7

_HEADER = b"\xff\xff\xfd\x00"
#: Read-only addresses of the X-series table (model, model info, firmware, hardware error, the
#: registered-instruction flag and every present/measured value).
_READ_ONLY = {*range(0, 7), 69, 70, *range(120, 148)}


def crc(data: bytes | bytearray) -> int:
    """CRC-16 of Protocol 2.0: polynomial 0x8005, init 0, not reflected (CRC-16/UMTS)."""
    return crc16.umts(bytes(data))


def stuff(body: bytes) -> bytes:
    """Byte stuffing from the instruction byte on: FF FF FD gets an extra FD. `body` is the
    packet from the header up to (not including) the CRC; returns it stuffed, length fixed."""
    out = bytearray(body[:7])
    for i in range(7, len(body)):
        b = body[i]
        out.append(b)
        if b == 0xFD and body[i - 1] == 0xFF and body[i - 2] == 0xFF:
            out.append(0xFD)
    length = len(out) - 7 + 2
    out[5:7] = struct.pack("<H", length)
    return bytes(out)


def unstuff(raw: bytes) -> bytes:
    """The instruction and parameters of a received packet (header .. CRC), stuffing removed:
    FF FF FD FD becomes FF FF FD (the look-back reads the stuffed stream, header included)."""
    out = bytearray()
    j, end = 7, len(raw) - 2
    while j < end:
        b = raw[j]
        out.append(b)
        if b == 0xFD and j + 1 < end and raw[j + 1] == 0xFD and raw[j - 1] == raw[j - 2] == 0xFF:
            j += 1
        j += 1
    return bytes(out)


def status_packet(servo_id: int, error: int, params: bytes = b"") -> bytes:
    """A complete status packet (stuffed, with CRC)."""
    body = _HEADER + bytes([servo_id]) + struct.pack("<H", len(params) + 4)
    body += bytes([INST_STATUS, error]) + params
    body = stuff(body)
    return body + struct.pack("<H", crc(body))


def instruction_packet(servo_id: int, instruction: int, params: bytes = b"") -> bytes:
    """A complete instruction packet (stuffed, with CRC); for tests that write raw bytes."""
    body = _HEADER + bytes([servo_id]) + struct.pack("<H", len(params) + 3)
    body += bytes([instruction]) + params
    body = stuff(body)
    return body + struct.pack("<H", crc(body))


@dataclass
class Servo:
    """One X-series servo: its control table and a first-order plant."""

    servo_id: int
    model_number: int = 1240  # XC330-M288 (the LEAP hand's servo)
    firmware: int = 52
    start_ns: int = 0
    position_tau_s: float = 0.03
    silent: bool = False
    table: bytearray = field(default_factory=lambda: bytearray(ct.TABLE_SIZE))
    pos: float = 2048.0  # position units, float for the plant
    last_ns: int = 0

    def __post_init__(self) -> None:
        t = self.table
        struct.pack_into("<H", t, ct.MODEL_NUMBER, self.model_number)
        t[ct.FIRMWARE_VERSION] = self.firmware
        t[ct.ID] = self.servo_id
        t[ct.BAUD_RATE] = 3
        t[ct.RETURN_DELAY_TIME] = 250
        t[ct.OPERATING_MODE] = 3
        t[ct.TEMPERATURE_LIMIT] = 70
        struct.pack_into("<H", t, ct.CURRENT_LIMIT, 1750)
        struct.pack_into("<I", t, ct.VELOCITY_LIMIT, 445)
        struct.pack_into("<I", t, ct.MAX_POSITION_LIMIT, 4095)
        struct.pack_into("<I", t, ct.MIN_POSITION_LIMIT, 0)
        t[ct.SHUTDOWN] = 0b110100  # overheating, electrical shock, overload switch torque off
        t[68] = 2  # status return level: answer everything
        struct.pack_into("<H", t, ct.POSITION_P_GAIN, 400)
        struct.pack_into("<H", t, ct.GOAL_CURRENT, 1750)
        struct.pack_into("<i", t, ct.GOAL_POSITION, round(self.pos))
        t[ct.PRESENT_TEMPERATURE] = 30
        struct.pack_into("<H", t, 144, 50)  # 5.0 V input
        self.last_ns = self.start_ns
        self._publish(0.0, 0.0)

    # -- the plant --------------------------------------------------------------------------
    def update(self, now_ns: int) -> None:
        """Advance the plant to `now_ns`: first-order toward the goal, velocity-limited."""
        dt = (now_ns - self.last_ns) / 1e9
        self.last_ns = now_ns
        t = self.table
        struct.pack_into("<H", t, ct.REALTIME_TICK, ((now_ns - self.start_ns) // 1_000_000) % 32768)
        if dt <= 0:
            return
        goal = struct.unpack_from("<i", t, ct.GOAL_POSITION)[0]
        vel_units = 0.0
        err = goal - self.pos
        if t[ct.TORQUE_ENABLE]:
            vmax = struct.unpack_from("<I", t, ct.VELOCITY_LIMIT)[0] * 0.229 / 60 * 4096  # u/s
            step = err * min(1.0, dt / self.position_tau_s)
            step = max(-vmax * dt, min(vmax * dt, step))
            self.pos += step
            vel_units = step / dt / (0.229 / 60 * 4096)
            cap = struct.unpack_from("<H", t, ct.GOAL_CURRENT)[0]
            current = max(-cap, min(cap, 2.0 * (goal - self.pos)))
        else:
            current = 0.0
        self._publish(vel_units, current)

    def _publish(self, vel_units: float, current: float) -> None:
        t = self.table
        struct.pack_into("<h", t, ct.PRESENT_CURRENT, round(current))
        struct.pack_into("<i", t, ct.PRESENT_VELOCITY, round(vel_units))
        struct.pack_into("<i", t, ct.PRESENT_POSITION, round(self.pos))
        moving = 1 if abs(vel_units) > 0.5 else 0
        t[122] = moving

    # -- faults -----------------------------------------------------------------------------
    def set_hardware_error(self, bits: int) -> None:
        t = self.table
        t[ct.HARDWARE_ERROR_STATUS] = bits & 0xFF
        if bits & t[ct.SHUTDOWN]:
            t[ct.TORQUE_ENABLE] = 0

    @property
    def error_byte(self) -> int:
        return ct.ERRBIT_ALERT if self.table[ct.HARDWARE_ERROR_STATUS] else 0

    # -- the table --------------------------------------------------------------------------
    def read(self, address: int, length: int) -> tuple[int, bytes]:
        if address < 0 or length < 0 or address + length > ct.TABLE_SIZE:
            return ERR_ACCESS, b""
        return 0, bytes(self.table[address : address + length])

    def write(self, address: int, data: bytes) -> int:
        """Write `data` at `address`; returns the status error number (0: written)."""
        end = address + len(data)
        t = self.table
        if address < 0 or end > ct.TABLE_SIZE or any(a in _READ_ONLY for a in range(address, end)):
            return ERR_ACCESS
        if address < ct.EEPROM_END and t[ct.TORQUE_ENABLE]:
            return ERR_ACCESS  # EEPROM is locked while torque is on
        if address <= ct.GOAL_POSITION < end and len(data) >= ct.GOAL_POSITION - address + 4:
            goal = struct.unpack_from("<i", data, ct.GOAL_POSITION - address)[0]
            lo = struct.unpack_from("<I", t, ct.MIN_POSITION_LIMIT)[0]
            hi = struct.unpack_from("<I", t, ct.MAX_POSITION_LIMIT)[0]
            if not lo <= goal <= hi:
                return ERR_DATA_LIMIT
        torque_on = address <= ct.TORQUE_ENABLE < end and data[ct.TORQUE_ENABLE - address]
        if torque_on and t[ct.HARDWARE_ERROR_STATUS]:
            return ERR_ACCESS  # a servo in hardware error refuses torque until rebooted
        t[address:end] = data
        return 0

    def reboot(self) -> None:
        t = self.table
        t[ct.HARDWARE_ERROR_STATUS] = 0
        t[ct.TORQUE_ENABLE] = 0


class ServoChain:
    """Servos on one bus and the protocol: bytes in, status packets out (with bus timing)."""

    def __init__(
        self,
        ids: list[int],
        *,
        model_number: int = 1240,
        baudrate: int = 1_000_000,
        now_ns: int | None = None,
    ) -> None:
        t0 = time.monotonic_ns() if now_ns is None else now_ns
        # Each servo's Realtime Tick starts at its own instant (it counts from its power-up).
        self.servos: dict[int, Servo] = {
            i: Servo(i, model_number=model_number, start_ns=t0 - (7919 * (n + 1) % 30_000) * 10**6)
            for n, i in enumerate(ids)
        }
        for s in self.servos.values():
            s.last_ns = t0
        self.baudrate = baudrate
        self.corrupt_next = 0
        self.crc_errors = 0
        self.packets = 0
        self._rx = bytearray()

    @property
    def byte_ns(self) -> float:
        return 10e9 / self.baudrate

    def command(self, line: str) -> str:
        """A fault-injection command (see the module doc); returns "ok" or what is wrong."""
        parts = line.split()
        if not parts:
            return "ok"
        try:
            op, args = parts[0], [int(p) for p in parts[1:]]
            if op == "silent":
                self.servos[args[0]].silent = True
            elif op == "answer":
                self.servos[args[0]].silent = False
            elif op == "hwerror":
                self.servos[args[0]].set_hardware_error(args[1])
            elif op == "temp":
                self.servos[args[0]].table[ct.PRESENT_TEMPERATURE] = args[1]
            elif op == "corrupt":
                self.corrupt_next = args[0]
            elif op == "clear":
                self.corrupt_next = 0
                for s in self.servos.values():
                    s.silent = False
                    s.table[ct.HARDWARE_ERROR_STATUS] = 0
            else:
                return f"unknown command {op!r}"
        except (IndexError, ValueError, KeyError) as exc:
            return f"bad command {line.strip()!r}: {exc}"
        return "ok"

    def feed(self, data: bytes, now_ns: int) -> list[tuple[int, bytes]]:
        """Take received bytes; return the status packets to send as (due_ns, packet).

        `due_ns` is when the packet would have left the real bus: the instruction's own bus time,
        then for each answering servo its Return Delay Time and its packet's bytes."""
        self._rx += data
        out: list[tuple[int, bytes]] = []
        while True:
            pkt = self._next_packet()
            if pkt is None:
                break
            servo_id, instruction, params, ok = pkt
            self.packets += 1
            t = now_ns  # the instruction packet is on the wire already when we see it
            for sid, status in self._handle(servo_id, instruction, params, ok, now_ns):
                servo = self.servos[sid]
                t += int(servo.table[ct.RETURN_DELAY_TIME] * 2000 + len(status) * self.byte_ns)
                wire = status
                if self.corrupt_next > 0:
                    self.corrupt_next -= 1
                    wire = status[:-1] + bytes([status[-1] ^ 0x5A])
                out.append((t, wire))
        return out

    def _next_packet(self) -> tuple[int, int, bytes, bool] | None:
        rx = self._rx
        while True:
            i = rx.find(b"\xff\xff\xfd")
            if i < 0:
                del rx[: max(0, len(rx) - 2)]
                return None
            if i > 0:
                del rx[:i]
            if len(rx) < 7:
                return None
            if rx[3] != 0x00:  # FF FF FD FD is stuffing, not a header; skip a byte
                del rx[:1]
                continue
            length = rx[5] | (rx[6] << 8)
            if length < 3 or length > 1024:
                del rx[:1]
                continue
            total = 7 + length
            if len(rx) < total:
                return None
            raw = bytes(rx[:total])
            del rx[:total]
            ok = crc(raw[:-2]) == (raw[-2] | (raw[-1] << 8))
            if not ok:
                self.crc_errors += 1
            payload = unstuff(raw)
            return raw[4], payload[0], payload[1:], ok

    def _handle(
        self, servo_id: int, inst: int, params: bytes, crc_ok: bool, now_ns: int
    ) -> list[tuple[int, bytes]]:
        servos = self.servos
        for s in servos.values():
            s.update(now_ns)
        if not crc_ok:
            bad = servos.get(servo_id)
            if bad is None or bad.silent:
                return []
            return [(servo_id, status_packet(servo_id, ERR_CRC | bad.error_byte))]
        if inst == INST_PING:
            targets = list(servos) if servo_id == BROADCAST else [servo_id]
            out = []
            for sid in targets:
                one = servos.get(sid)
                if one is None or one.silent:
                    continue
                info = one.table[ct.MODEL_NUMBER : ct.MODEL_NUMBER + 2] + bytes([one.firmware])
                out.append((sid, status_packet(sid, one.error_byte, bytes(info))))
            return out
        if inst == INST_SYNC_READ and servo_id == BROADCAST and len(params) >= 4:
            addr, length = struct.unpack_from("<HH", params)
            return self._reads([(sid, addr, length) for sid in params[4:]])
        if inst == INST_BULK_READ and servo_id == BROADCAST:
            items = [
                (params[i], *struct.unpack_from("<HH", params, i + 1))
                for i in range(0, len(params) - 4, 5)
            ]
            return self._reads(items)
        if inst == INST_SYNC_WRITE and servo_id == BROADCAST and len(params) >= 4:
            addr, length = struct.unpack_from("<HH", params)
            body = params[4:]
            for i in range(0, len(body) - length, length + 1):
                dst = servos.get(body[i])
                if dst is not None and not dst.silent:
                    dst.write(addr, body[i + 1 : i + 1 + length])
            return []
        if inst == INST_BULK_WRITE and servo_id == BROADCAST:
            i = 0
            while i + 5 <= len(params):
                sid = params[i]
                addr, length = struct.unpack_from("<HH", params, i + 1)
                dst = servos.get(sid)
                if dst is not None and not dst.silent:
                    dst.write(addr, params[i + 5 : i + 5 + length])
                i += 5 + length
            return []
        found = servos.get(servo_id)
        if found is None or found.silent:
            return []
        s = found
        if inst == INST_READ and len(params) == 4:
            addr, length = struct.unpack_from("<HH", params)
            err, data = s.read(addr, length)
            return [(servo_id, status_packet(servo_id, err | s.error_byte, data))]
        if inst == INST_WRITE and len(params) >= 2:
            addr = struct.unpack_from("<H", params)[0]
            err = s.write(addr, params[2:])
            return [(servo_id, status_packet(servo_id, err | s.error_byte))]
        if inst == INST_REBOOT:
            s.reboot()
            return [(servo_id, status_packet(servo_id, 0))]
        return [(servo_id, status_packet(servo_id, ERR_INSTRUCTION | s.error_byte))]

    def _reads(self, items: list[tuple[int, int, int]]) -> list[tuple[int, bytes]]:
        out = []
        for sid, addr, length in items:
            s = self.servos.get(sid)
            if s is None or s.silent:
                continue
            err, data = s.read(addr, length)
            out.append((sid, status_packet(sid, err | s.error_byte, data)))
        return out


class DynamixelEmulator:
    """A ServoChain served on a pty from a thread (tests) or the main thread (the CLI).

    with DynamixelEmulator(range(16)) as emu:
        port = emu.port            # the pty's slave path, for dynamixel-sdk's PortHandler
        emu.command("silent 5")
    """

    def __init__(
        self,
        ids: range | list[int],
        *,
        model_number: int = 1240,
        baudrate: int = 1_000_000,
        pace: bool = False,
    ) -> None:
        self.chain = ServoChain(list(ids), model_number=model_number, baudrate=baudrate)
        self.pace = pace
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop_r, self._stop_w = os.pipe()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def servos(self) -> dict[int, Servo]:
        return self.chain.servos

    def command(self, line: str) -> str:
        with self._lock:
            return self.chain.command(line)

    def start(self) -> DynamixelEmulator:
        self._thread = threading.Thread(target=self.serve, name="dxl-emulator", daemon=True)
        self._thread.start()
        return self

    def serve(self, extra_fd: int | None = None) -> None:
        """Serve until stop() (or `extra_fd`, e.g. stdin, reaches its end)."""
        fds = [self._master, self._stop_r] + ([extra_fd] if extra_fd is not None else [])
        pending = b""
        while True:
            ready, _, _ = select.select(fds, [], [])
            if self._stop_r in ready:
                return
            if extra_fd is not None and extra_fd in ready:
                pending += os.read(extra_fd, 4096) or b"\x04"
                if pending.endswith(b"\x04"):
                    return
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    sys.stdout.write(self.command(line.decode(errors="replace")) + "\n")
                    sys.stdout.flush()
            if self._master in ready:
                try:
                    data = os.read(self._master, 4096)
                except OSError:  # the slave side closed for good
                    return
                now = time.monotonic_ns()
                with self._lock:
                    replies = self.chain.feed(data, now)
                self._send(replies)

    def _send(self, replies: list[tuple[int, bytes]]) -> None:
        if not self.pace:
            if replies:
                os.write(self._master, b"".join(p for _, p in replies))
            return
        for due, packet in replies:
            while True:
                left = due - time.monotonic_ns()
                if left <= 0:
                    break
                if left > 300_000:
                    time.sleep((left - 200_000) / 1e9)
            os.write(self._master, packet)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._master, self._slave, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> DynamixelEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m raas_drivers.dynamixel.emulator",
        description="A Dynamixel Protocol 2.0 servo chain on a pty (prints the pty path).",
    )
    p.add_argument("--servos", type=int, default=16, help="number of servos")
    p.add_argument("--first-id", type=int, default=0, help="id of the first servo (LEAP: 0)")
    p.add_argument("--model", type=int, default=1240, help="model number (1240: XC330-M288)")
    p.add_argument("--baud", type=int, default=1_000_000, help="baud rate the bus timing uses")
    p.add_argument("--pace", action="store_true", help="send status packets at bus speed")
    args = p.parse_args(argv)
    ids = list(range(args.first_id, args.first_id + args.servos))
    if not ids or ids[-1] > 252 or args.first_id < 0:
        p.error("servo ids must lie in 0..252")
    emu = DynamixelEmulator(ids, model_number=args.model, baudrate=args.baud, pace=args.pace)
    signal.signal(signal.SIGTERM, lambda *_: emu.stop())
    sys.stdout.write(emu.port + "\n")
    sys.stdout.flush()
    try:
        emu.serve(extra_fd=sys.stdin.fileno())
    except (KeyboardInterrupt, OSError, ValueError):
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
