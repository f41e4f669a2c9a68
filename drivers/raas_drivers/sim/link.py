"""The rig's control links: msgpack over AF_UNIX SOCK_SEQPACKET (mocap control, camera process).

The hand and the trigger board no longer use this: they speak the serial firmware protocol on
ptys (raas_firmware_bridge). What is left are the links where the real cell has a network
protocol of its own: the motion-capture server's control connection (sim/drivers.py `_Watch`)
and the rig <-> camera-process link (render.py). SOCK_SEQPACKET keeps message boundaries and
ordering, is reliable, and reports a dead peer at once (EOF on recv, EPIPE on send).

Messages are msgpack arrays, first element the kind (see rig.py and render.py); "error" carries
a text.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from typing import Any

import msgpack

MAX_MESSAGE = 65536

# message kinds (short strings: msgpack keeps them tiny)
ERROR = "error"


class LinkClosedError(ConnectionError):
    """The peer closed the link or died."""


class LinkFullError(ConnectionError):
    """The peer's receive queue is full: it is not reading (stuck or busy)."""


_packer = msgpack.Packer(use_bin_type=True)


def pack(message: list[Any]) -> bytes:
    out: bytes = _packer.pack(message)
    return out


def unpack(data: bytes) -> list[Any]:
    message = msgpack.unpackb(data, raw=False, use_list=True)
    if not isinstance(message, list) or not message:
        raise ValueError(f"malformed link message: {message!r}")
    return message


def _closed_error(exc: OSError) -> bool:
    return exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF)


class LinkConn:
    """One end of a SEQPACKET connection with non-blocking send and receive."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.role = ""

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: list[Any]) -> None:
        self.send_bytes(pack(message))

    def send_bytes(self, data: bytes) -> None:
        try:
            self.sock.send(data)
        except BlockingIOError as exc:
            # the peer is not reading; a device link does not queue without bound
            raise LinkFullError("peer's receive queue is full") from exc
        except OSError as exc:
            if _closed_error(exc):
                raise LinkClosedError(str(exc)) from exc
            raise

    def recv(self) -> list[Any] | None:
        """One message if one is waiting, None if not. Raises LinkClosedError on EOF."""
        try:
            data = self.sock.recv(MAX_MESSAGE)
        except BlockingIOError:
            return None
        except OSError as exc:
            if _closed_error(exc):
                raise LinkClosedError(str(exc)) from exc
            raise
        if not data:
            raise LinkClosedError("peer closed the link")
        return unpack(data)

    def recv_wait(self, timeout_s: float) -> list[Any]:
        """Block (with a deadline) for one message; TimeoutError when none came."""
        deadline = time.monotonic() + timeout_s
        while True:
            message = self.recv()
            if message is not None:
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer on the link")
            _wait_readable(self.sock, remaining)

    def close(self) -> None:
        self.sock.close()


def _wait_readable(sock: socket.socket, timeout_s: float) -> None:
    p = select.poll()
    p.register(sock.fileno(), select.POLLIN)
    p.poll(max(1, int(timeout_s * 1000)))


class LinkServer:
    """The rig's listening socket."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(path)
        self.sock.listen(16)
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> LinkConn | None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return None
        return LinkConn(conn)

    def close(self) -> None:
        self.sock.close()
