"""The servo bus on dynamixel-sdk, with a sync read that never blocks the caller.

dynamixel-sdk's calls block: GroupSyncRead.txRxPacket() spins on the port until every status
packet came or its timeout (34 ms past the bus time with the SDK's 16 ms latency constant)
passed. The control loop must not wait like that, so the read is split where the SDK splits it:

- `SyncRead.start()` sends the instruction with the SDK's own GroupSyncRead.txPacket() (a write
  of ~30 bytes, which returns at once);
- `SyncRead.pump()` moves what arrived from the port's file descriptor into `BufferedPort.rx`
  without blocking, and hands each *complete* status packet to the SDK's
  Protocol2PacketHandler.rxPacket(), which checks the CRC, removes stuffing and returns it.
  Only the header and the length field are looked at here, to know that a packet is complete.
- `SyncRead.finish()` waits (select, bounded by the read timeout) until every servo answered or
  the timeout passed. The driver calls it before the bus is used again: the bus is half duplex,
  so a write while servos still answer would collide.

Everything else (ping, single reads and writes at configure, GroupSyncWrite) is the SDK's own
blocking call: those are short, and happen outside the cycle or as a write that does not wait.
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynamixel_sdk import (
    COMM_SUCCESS,
    GroupSyncRead,
    GroupSyncWrite,
    PacketHandler,
    PortHandler,
)

_MAX_PACKET = 1024  # dynamixel-sdk's RXPACKET_MAX_LEN


class BufferedPort(PortHandler):  # type: ignore[misc]
    """dynamixel-sdk's PortHandler with a receive buffer filled without blocking.

    readPort() serves the buffer, topped up from the port; clearPort() empties both. Where the
    SDK's own port returns nothing at once and the SDK spins on it until its packet timeout
    (pyserial with timeout=0), this one sleeps on the descriptor until a byte comes or the
    timeout ends: a SCHED_FIFO daemon spinning on a CPU starves whoever should answer (the USB
    stack's threads, an emulator). With the packet timeout at 0 (the driver's non-blocking
    pump) it never sleeps."""

    def __init__(self, port_name: str) -> None:
        super().__init__(port_name)
        self.rx = bytearray()

    def clearPort(self) -> None:  # noqa: N802 (the SDK's name)
        self.rx.clear()
        super().clearPort()

    def getBytesAvailable(self) -> int:  # noqa: N802
        return len(self.rx) + int(super().getBytesAvailable())

    def readPort(self, length: int) -> bytes:  # noqa: N802
        rx = self.rx
        if len(rx) < length:
            try:
                if self.drain() == 0:
                    left_ms = self.packet_timeout - self.getTimeSinceStart()
                    if left_ms > 0:
                        select.select([self.fileno()], [], [], min(left_ms, 50.0) / 1e3)
                        self.drain()
            except OSError:
                pass  # the SDK sees no bytes and times out; the driver names the lost port
        n = min(length, len(rx))
        out = bytes(rx[:n])
        del rx[:n]
        return out

    def fileno(self) -> int:
        return int(self.ser.fileno())

    def drain(self) -> int:
        """Move every byte the OS holds into `rx`; returns how many. Never blocks (pyserial
        opens the port O_NONBLOCK). Raises OSError when the port is gone."""
        fd = self.fileno()
        got = 0
        while True:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                return got
            if not chunk:
                if got == 0 and not self._still_there():
                    raise OSError(f"{self.port_name}: the port closed")
                return got
            self.rx += chunk
            got += len(chunk)
            if len(chunk) < 4096:
                return got

    def _still_there(self) -> bool:
        return Path(self.port_name).exists()


def complete_packet(rx: bytearray) -> bool:
    """Drop leading bytes that cannot start a packet; True if a whole packet is at the front.

    The same header rule as the SDK's rxPacket: FF FF FD followed by anything but FD (FF FF FD FD
    is stuffing inside a packet)."""
    while True:
        i = rx.find(b"\xff\xff\xfd")
        if i < 0:
            del rx[: max(0, len(rx) - 2)]
            return False
        if i > 0:
            del rx[:i]
        if len(rx) < 7:
            return False
        length = rx[5] | (rx[6] << 8)
        if rx[3] != 0x00 or length > _MAX_PACKET or length < 4:
            del rx[:1]
            continue
        return len(rx) >= 7 + length


@dataclass(slots=True)
class ReadResult:
    """What one sync read brought: per servo id its status error byte and its data."""

    data: dict[int, bytes] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)
    corrupt: int = 0  # status packets dropped for a bad CRC or a bad length
    start_ns: int = 0
    first_ns: int = 0  # when the first status packet was complete
    end_ns: int = 0
    timed_out: bool = False


class SyncRead:
    """One GroupSyncRead (start address, length, ids) run without blocking the caller."""

    def __init__(
        self,
        port: BufferedPort,
        ph: Any,
        ids: tuple[int, ...],
        address: int,
        length: int,
        timeout_ns: int,
    ) -> None:
        self.port = port
        self.ph = ph
        self.ids = ids
        self.length = length
        self.timeout_ns = timeout_ns
        self.group = GroupSyncRead(port, ph, address, length)
        for i in ids:
            self.group.addParam(i)
        self.pending = False
        self.result = ReadResult()
        self._expected = frozenset(ids)

    def start(self) -> int:
        """Send the sync read; returns the SDK's result (COMM_SUCCESS when sent)."""
        res = ReadResult(start_ns=time.monotonic_ns())
        self.result = res
        result = int(self.group.txPacket())
        self.pending = result == COMM_SUCCESS
        if not self.pending:
            self.port.is_using = False
        return result

    def pump(self) -> bool:
        """Take what arrived; True once the read is over (every servo answered, or timed out)."""
        if not self.pending:
            return True
        port, res = self.port, self.result
        port.drain()
        rx = port.rx
        while complete_packet(rx):
            # The whole packet is buffered: a zero packet timeout keeps the SDK from spinning.
            port.setPacketTimeoutMillis(0)
            pkt, result = self.ph.rxPacket(port, False)
            if result != COMM_SUCCESS:
                res.corrupt += 1
                continue
            sid = pkt[4]
            data = bytes(pkt[9 : 9 + self.length])
            if sid not in self._expected or len(data) != self.length:
                res.corrupt += 1
                continue
            if not res.data:
                res.first_ns = time.monotonic_ns()
            res.data[sid] = data
            res.errors[sid] = pkt[8]
        now = time.monotonic_ns()
        if len(res.data) == len(self._expected):
            return self._end(now, timed_out=False)
        if now - res.start_ns >= self.timeout_ns:
            return self._end(now, timed_out=True)
        return False

    def finish(self) -> ReadResult:
        """Wait (bounded by the timeout) until the read is over; returns its result."""
        fd = self.port.fileno()
        while not self.pump():
            left = self.result.start_ns + self.timeout_ns - time.monotonic_ns()
            if left > 0:
                select.select([fd], [], [], left / 1e9)
        return self.result

    def missing(self) -> tuple[int, ...]:
        return tuple(i for i in self.ids if i not in self.result.data)

    def _end(self, now: int, *, timed_out: bool) -> bool:
        self.pending = False
        self.port.is_using = False
        self.result.end_ns = now
        self.result.timed_out = timed_out
        if timed_out:
            self.port.rx.clear()  # a late packet's bytes must not start the next read
        return True


class GoalWriter:
    """Goal Position (or any 4-byte item) for every servo in one GroupSyncWrite."""

    def __init__(self, port: BufferedPort, ph: Any, ids: tuple[int, ...], address: int) -> None:
        self.group = GroupSyncWrite(port, ph, address, 4)
        self.ids = ids
        for i in ids:
            self.group.addParam(i, [0, 0, 0, 0])

    def write(self, values: list[int]) -> int:
        group = self.group
        for sid, v in zip(self.ids, values, strict=True):
            group.changeParam(sid, list(struct.pack("<i", v)))
        return int(group.txPacket())


def open_port(path: str, baudrate: int) -> tuple[BufferedPort, Any]:
    """Open the port with the SDK (raises OSError/serial errors as pyserial does)."""
    port = BufferedPort(path)
    port.baudrate = baudrate
    if not port.openPort():
        raise OSError(f"{path}: dynamixel-sdk could not open the port at {baudrate} baud")
    return port, PacketHandler(2.0)


def port_problem(path: str, exc: BaseException) -> str:
    """Why the port did not open, in words a lab can act on (configure and probe say the same)."""
    text = str(exc)
    if "ermission" in text:
        return (
            f"cannot open {path}: permission denied (add the user to the dialout group, then "
            "log in again; or the udev rule of docs/hardware.md)"
        )
    if "://" not in path and not Path(path).exists():
        return f"cannot open {path}: no such port (is the U2D2 plugged in? ls /dev/serial/by-id/)"
    return f"cannot open {path}: {text}"


def close_port(port: BufferedPort) -> None:
    with contextlib.suppress(Exception):
        port.closePort()


def bus_time_ns(n_bytes: int, baudrate: int) -> int:
    """Time `n_bytes` take on the wire: 10 bits a byte (start, 8 data, stop)."""
    return n_bytes * 10 * 1_000_000_000 // baudrate


def sync_read_bytes(n_servos: int, length: int) -> tuple[int, int]:
    """(instruction bytes, status bytes) of a sync read of `length` bytes from `n_servos`."""
    return 14 + n_servos, n_servos * (11 + length)


def sync_write_bytes(n_servos: int, length: int) -> int:
    return 14 + n_servos * (1 + length)
