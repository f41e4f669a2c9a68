"""The host side of a serial link to one board, on pyserial.

    link = SerialLink("/dev/ttyACM0", name="hand")        # or a pty path, or "loop://"
    ack = link.connect(BoardKind.HAND)                    # open, HELLO, RESET
    link.send(StateRequest(cycle=k)); ...; for msg in link.receive(): ...
    link.stats.as_dict()

What it does:
- Opens any pyserial URL with `serial.serial_for_url` (real ports, ptys, `loop://`); the port is
  non-blocking. `fileno()` is the port's fd for poll/epoll (a `loop://` port has none).
- `receive()` never blocks: it reads what is waiting, feeds `FrameDecoder` one delimiter at a
  time (so "bad frames in a row" is exact) and decodes the good frames. Garbage costs the
  frames it touched and nothing else: the decoder resynchronises on the next 0x00.
- Sequence numbers: every frame sent gets the next u16 `seq`.
- Round trips: `track(key)` when a request goes out, `answered(key)` when its answer comes in;
  a request not answered within `request_timeout_s` counts as a timeout and a drop.
- States (LinkState): OPEN, FAULTED, DEAD, CLOSED. Only OPEN carries traffic.
    FAULTED  the port vanished (a read saw a hang-up, a write failed), the board reported a FAULT,
             refused a command because a fault is latched, or reported a fault in its State.
    DEAD     `max_bad_frames` (M) bad frames in a row: the line cannot be trusted.
  Both are sticky: the link never resumes by itself, even when the port comes back. Only an
  explicit `reset()` (close, reopen, HELLO, RESET) leaves them. The board's e-stop latch that
  the host asked for (`estop()`, released by `clear_estop()`) is not a fault of the link.
  The drivers turn a link that is not OPEN into DeviceLostError, which makes the control loop
  send the hold target (where the hand was measured) and stop.
"""

from __future__ import annotations

import contextlib
import enum
import os
import select
import time
from collections.abc import Hashable
from typing import Any, TypeVar

import serial

from raas_firmware_bridge.errors import (
    HandshakeError,
    LinkDeadError,
    LinkFaultedError,
    LinkTimeoutError,
    MessageError,
    PortUnavailableError,
    PortVanishedError,
)
from raas_firmware_bridge.framing import DELIMITER, FrameDecoder
from raas_firmware_bridge.messages import (
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    Error,
    ErrorCode,
    Estop,
    EstopReason,
    Fault,
    FaultCode,
    FaultFlag,
    Hello,
    HelloAck,
    Message,
    Reset,
    ResetAck,
    State,
    decode_message,
    encode_message,
)
from raas_firmware_bridge.stats import LinkStats

DEFAULT_BAUD = 1_000_000
DEFAULT_MAX_BAD_FRAMES = 8
DEFAULT_REQUEST_TIMEOUT_S = 1.0
WRITE_TIMEOUT_S = 0.2  # a board that does not take 64 KiB in 200 ms is not reading
READ_CHUNK = 65536
HANDSHAKE_ATTEMPTS = 4  # each gets a quarter of the request timeout

M = TypeVar("M", bound=Message)


class LinkState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    FAULTED = "faulted"
    DEAD = "dead"


def _fault_name(code: int) -> str:
    try:
        return FaultCode(code).name
    except ValueError:
        return str(code)


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


class SerialLink:
    """One board's serial link, host side. Single-threaded: call it from the loop's thread."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "board",
        baudrate: int = DEFAULT_BAUD,
        max_bad_frames: int = DEFAULT_MAX_BAD_FRAMES,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.name = name
        self.baudrate = baudrate
        self.max_bad_frames = max_bad_frames
        self.request_timeout_s = request_timeout_s
        self.state = LinkState.CLOSED
        self.reason = "not opened"
        self.stats = LinkStats()
        self.hello: HelloAck | None = None
        self._port: Any = None
        self._fd = -1
        self._decoder = FrameDecoder()
        self._seq = 0
        self._pending: dict[Hashable, int] = {}  # request key -> send time (ns)
        self._reset_token = 0
        #: our ESTOP went out: the answers that follow from the board's latch are expected
        self.estop_latched = False
        self._clear_token: int | None = None  # the RESET that clears the e-stop latch

    # ------------------------------------------------------------------ open / close
    def open(self) -> None:
        """Open the port (no handshake). PortUnavailableError when it cannot be opened."""
        self.close()
        try:
            # raw 8N1 (pyserial's termios: no echo, no canonical mode, no output processing,
            # VMIN=VTIME=0 with timeout=0), no flow control (XON/XOFF bytes would be eaten as
            # data), and an exclusive lock: a second host on the same board is refused here
            # rather than interleaving frames with ours
            port = serial.serial_for_url(
                self.url,
                baudrate=self.baudrate,
                timeout=0,
                write_timeout=WRITE_TIMEOUT_S,
                xonxoff=False,
                rtscts=False,
                dsrdtr=False,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortUnavailableError(f"{self.name}: cannot open {self.url}: {exc}") from exc
        self._port = port
        try:
            self._fd = int(port.fileno())
        except (AttributeError, OSError, ValueError, NotImplementedError):
            self._fd = -1  # loop:// and friends: no fd, read through pyserial
        self._decoder.reset()
        self._pending.clear()
        self.stats.consecutive_bad = 0
        self.state = LinkState.OPEN
        self.reason = ""

    def connect(self, board_kind: int | None = None) -> HelloAck:
        """Open, say HELLO (version negotiation), then RESET (clears the BOOTED latch and any
        old fault). Returns the board's HELLO_ACK. Raises PortUnavailableError, HandshakeError."""
        self.open()
        try:
            ack = self._request_retrying(Hello(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION), HelloAck)
            if ack.version == 0:
                raise HandshakeError(
                    f"{self.name}: no common protocol version (board speaks "
                    f"{ack.min_version}..{ack.max_version}, host "
                    f"{MIN_PROTOCOL_VERSION}..{PROTOCOL_VERSION})"
                )
            if board_kind is not None and int(ack.board_kind) != int(board_kind):
                raise HandshakeError(
                    f"{self.name}: {self.url} is board kind {ack.board_kind}, expected {board_kind}"
                )
            self._reset_token = (self._reset_token + 1) & 0xFFFF_FFFF
            reset = self._request_retrying(Reset(self._reset_token), ResetAck)
            if reset.token != self._reset_token:
                raise HandshakeError(f"{self.name}: RESET_ACK for token {reset.token}")
        except (LinkTimeoutError, LinkFaultedError) as exc:
            self.close()
            raise HandshakeError(f"{self.name}: handshake on {self.url} failed: {exc}") from exc
        except HandshakeError:
            self.close()
            raise
        self.hello = ack
        self.state = LinkState.OPEN
        self.reason = ""
        return ack

    def _request_retrying(self, msg: Message, answer: type[M]) -> M:
        """A handshake request, sent up to HANDSHAKE_ATTEMPTS times (a noisy line may eat one)."""
        for attempt in range(HANDSHAKE_ATTEMPTS):
            try:
                return self.request(msg, answer, self.request_timeout_s / HANDSHAKE_ATTEMPTS)
            except LinkTimeoutError:
                if attempt == HANDSHAKE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def reset(self, board_kind: int | None = None) -> HelloAck:
        """The explicit way out of FAULTED or DEAD: close, reopen, HELLO, RESET."""
        return self.connect(board_kind)

    def close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            self._port = None
        self._fd = -1
        self.state = LinkState.CLOSED
        self.reason = "closed"

    def fileno(self) -> int:
        if self._fd < 0:
            raise LinkFaultedError(f"{self.name}: the link has no file descriptor ({self.url})")
        return self._fd

    # ------------------------------------------------------------------ state
    def check(self) -> None:
        """Raise the error of a link that is not OPEN (LinkDeadError, PortVanishedError, ...)."""
        if self.state is LinkState.OPEN:
            return
        if self.state is LinkState.DEAD:
            raise LinkDeadError(f"{self.name}: link dead: {self.reason}")
        if self.state is LinkState.FAULTED and self.reason.startswith("port vanished"):
            raise PortVanishedError(f"{self.name}: {self.reason} (needs an explicit reset)")
        raise LinkFaultedError(f"{self.name}: {self.reason} (needs an explicit reset)")

    def _fault(self, reason: str, *, dead: bool = False) -> None:
        if self.state is LinkState.OPEN:  # the first cause is the one reported
            self.state = LinkState.DEAD if dead else LinkState.FAULTED
            self.reason = reason

    # ------------------------------------------------------------------ e-stop
    def estop(self, reason: int = EstopReason.HOST) -> bool:
        """Send the board's own ESTOP (best effort: never blocks, never raises): its motors hold
        where they are, latched until RESET. From then on what follows from that latch -
        FAULT(ESTOP), ERROR(FAULTED) refusing targets, a STATE flagging only ESTOP - is expected
        and leaves the link OPEN; any other fault still faults it. True when the bytes went out."""
        self.estop_latched = True
        self._clear_token = None
        return self.send_best_effort(Estop(reason))

    def clear_estop(self) -> bool:
        """Send RESET to release the board's e-stop latch (never blocks). The e-stop's answers
        stay expected until that RESET's RESET_ACK arrives. True when the bytes went out."""
        if not self.estop_latched:
            return True
        self._reset_token = (self._reset_token + 1) & 0xFFFF_FFFF
        self._clear_token = self._reset_token
        return self.send_best_effort(Reset(self._reset_token))

    def _estop_answer(self, msg: Message) -> bool:
        """Is `msg` what the board's e-stop latch (which we asked for) makes it say?"""
        only = int(FaultFlag.ESTOP)
        if isinstance(msg, ResetAck):
            if msg.token == self._clear_token:
                self.estop_latched = False
                self._clear_token = None
            return False
        if isinstance(msg, Fault):
            if msg.code == FaultCode.ESTOP:
                self.stats.faults += 1
                return True
            return False
        if isinstance(msg, Error):
            return msg.code == ErrorCode.FAULTED and msg.detail == only
        if isinstance(msg, State):
            return msg.fault_flags == only
        return False

    # ------------------------------------------------------------------ send
    def send(self, msg: Message) -> int:
        """Encode and write one message; returns its seq. Raises the link's error when it is not
        OPEN (nothing is sent) or when the write fails (the port vanished)."""
        self.check()
        return self._write(msg)

    def send_best_effort(self, msg: Message) -> bool:
        """Write even when the link is faulted or dead (e.g. the hold target on the way out).
        True when the bytes went out. Never raises for the link's state."""
        if self._port is None:
            return False
        try:
            self._write(msg)
        except LinkFaultedError:
            return False
        return True

    def _write(self, msg: Message) -> int:
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        frame = encode_message(msg, seq)
        try:
            sent = 0
            if self._fd >= 0:  # the fast path: one non-blocking write(2), no select
                try:
                    sent = os.write(self._fd, frame)
                except BlockingIOError:
                    sent = 0
            if sent < len(frame):  # a full buffer (or no fd): pyserial waits, with its timeout
                self._port.write(frame[sent:])
        except serial.SerialTimeoutException:
            self._fault(f"write timed out after {WRITE_TIMEOUT_S} s: the board is not reading")
            self.check()
        except (serial.SerialException, OSError) as exc:
            self._fault(f"port vanished ({exc})")
            self.check()
        self.stats.frames_sent += 1
        self.stats.bytes_sent += len(frame)
        return seq

    # ------------------------------------------------------------------ receive
    def _read(self) -> bytes:
        port = self._port
        if port is None:
            return b""
        if self._fd >= 0:
            try:
                data = os.read(self._fd, READ_CHUNK)
            except BlockingIOError:
                return b""
            except OSError as exc:
                self._fault(f"port vanished (read: {exc})")
                return b""
            if not data and self._hung_up():
                self._fault("port vanished (hang-up)")
            return data
        try:
            waiting = port.in_waiting
            return bytes(port.read(waiting)) if waiting else b""
        except (serial.SerialException, OSError) as exc:
            self._fault(f"port vanished (read: {exc})")
            return b""

    def _hung_up(self) -> bool:
        """An empty read means nothing waiting (pyserial sets VMIN=0) or a hang-up: ask poll."""
        p = select.poll()
        p.register(self._fd, select.POLLIN)
        return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in p.poll(0))

    def receive(self) -> list[Message]:
        """Every good message that arrived since the last call (never blocks).

        Updates the state: a FAULT message, an ERROR saying a fault is latched or the board is
        not ready, a State with fault flags, a hang-up, or M bad frames in a row leave OPEN.
        The messages are returned all the same (the caller decides what a late answer is worth);
        call check() to act on the state."""
        if self.state is not LinkState.OPEN and self.state is not LinkState.FAULTED:
            return []
        data = self._read()
        if not data:
            return []
        stats = self.stats
        stats.bytes_received += len(data)
        out: list[Message] = []
        dec = self._decoder
        start, n = 0, len(data)
        while start < n:
            end = data.find(DELIMITER, start)
            stop = n if end < 0 else end + 1
            bad_before = dec.resyncs
            crc_before = dec.crc_errors
            frames = dec.feed(data[start:stop])
            start = stop
            bad = dec.resyncs - bad_before
            if bad:
                stats.bad_frames += bad
                stats.resyncs += bad
                stats.crc_errors += dec.crc_errors - crc_before
                self._bad(bad)
            for frame in frames:
                try:
                    msg = decode_message(frame)
                except MessageError:
                    stats.bad_frames += 1
                    self._bad(1)
                    continue
                stats.frames_received += 1
                stats.consecutive_bad = 0
                self._observe(msg)
                out.append(msg)
        return out

    def _bad(self, n: int) -> None:
        self.stats.consecutive_bad += n
        if self.stats.consecutive_bad >= self.max_bad_frames:
            self._fault(
                f"{self.stats.consecutive_bad} bad frames in a row (limit {self.max_bad_frames})",
                dead=True,
            )

    def _observe(self, msg: Message) -> None:
        if self.estop_latched and self._estop_answer(msg):
            return
        if isinstance(msg, Fault):
            self.stats.faults += 1
            self._fault(f"board fault {_fault_name(msg.code)} (flags 0x{msg.flags:x})")
        elif isinstance(msg, Error) and msg.code in (ErrorCode.FAULTED, ErrorCode.NOT_READY):
            self._fault(f"board refused a command: {_error_name(msg.code)}")
        elif isinstance(msg, State) and msg.fault_flags:
            self._fault(f"board reports faults (flags 0x{msg.fault_flags:x})")

    # ------------------------------------------------------------------ requests
    def track(self, key: Hashable) -> None:
        """A request identified by `key` went out now (for round trips and timeouts)."""
        if len(self._pending) >= 4:
            self._expire()
        self._pending[key] = time.monotonic_ns()

    def answered(self, key: Hashable) -> int | None:
        """The answer to `key` arrived: its round trip in ns (None if it was not pending)."""
        sent = self._pending.pop(key, None)
        if sent is None:
            return None
        rtt = time.monotonic_ns() - sent
        self.stats.add_rtt(rtt)
        return rtt

    def _expire(self) -> None:
        if not self._pending:
            return
        limit = time.monotonic_ns() - round(self.request_timeout_s * 1e9)
        old = [k for k, t in self._pending.items() if t < limit]
        for k in old:
            del self._pending[k]
        self.stats.timeouts += len(old)
        self.stats.drops += len(old)

    def request(self, msg: Message, answer: type[M], timeout_s: float) -> M:
        """Blocking: send `msg` and wait for the first message of type `answer` (handshakes and
        tools; the control loop never calls this). Other messages are dropped meanwhile, except
        that a fault still changes the state (the handshake's RESET clears it on the board)."""
        self._write(msg)
        key = ("request", msg.MSG_TYPE)
        self.track(key)
        deadline = time.monotonic() + timeout_s
        while True:
            for got in self._receive_any():
                if isinstance(got, answer):
                    self.answered(key)
                    return got
                if isinstance(got, Error) and got.ref_type == msg.MSG_TYPE:
                    raise HandshakeError(
                        f"{self.name}: {type(msg).__name__} refused: {_error_name(got.code)}"
                    )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._pending.pop(key, None)
                self.stats.timeouts += 1
                raise LinkTimeoutError(
                    f"{self.name}: no {answer.__name__} within {timeout_s:.2f} s on {self.url}"
                )
            self._wait(remaining)

    def _receive_any(self) -> list[Message]:
        """receive() that ignores the state changes of a handshake in progress."""
        state, reason = self.state, self.reason
        msgs = self.receive()
        if self.state is LinkState.FAULTED and self.reason.startswith("port vanished"):
            raise PortVanishedError(f"{self.name}: {self.reason}")
        if self.state is LinkState.DEAD:
            raise LinkDeadError(f"{self.name}: {self.reason}")
        self.state, self.reason = state, reason
        return msgs

    def _wait(self, timeout_s: float) -> None:
        if self._fd >= 0:
            select.select([self._fd], [], [], min(timeout_s, 0.05))
        else:
            time.sleep(min(timeout_s, 0.001))
