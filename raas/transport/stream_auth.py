"""Who may receive the observation stream: a ZAP handler for the PUB socket, served by the loop.

A subscriber's CurveZMQ public key is authorised by an `open` session (`stream_key`,
docs/protocol.md "Who receives the stream"). ZeroMQ asks this handler about every Curve handshake
on the stream socket over its `inproc://zeromq.zap.01` REP socket; the loop answers what is
waiting, without blocking, once per cycle (no Python thread: docs/architecture.md). A key that no
open session holds is answered `300` (temporary failure): the connection waits in its handshake
until the socket's handshake timeout drops it and the SUB reconnects and asks again, so a client
may subscribe before its `open`. ZeroMQ cannot drop one established PUB peer, so when a session
whose key was admitted ends, the owner unbinds and rebinds the stream endpoint: every connection
drops, and the subscribers still authorised reconnect and pass again."""

from __future__ import annotations

from typing import Any, cast

import zmq
import zmq.utils.z85

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
DOMAIN = b"raas.stream"
#: A denied handshake waits this long before the daemon drops it and the SUB reconnects.
HANDSHAKE_MS = 1000
_OK, _DENIED = b"200", b"300"
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)


def parse_stream_key(value: object) -> bytes | None:
    """The 32-byte Curve key of `open`'s `stream_key` (40 Z85 characters), None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 40:
        raise ValueError("stream_key must be a Curve public key: 40 Z85 characters")
    try:
        return zmq.utils.z85.decode(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError, KeyError) as exc:
        raise ValueError("stream_key is not Z85") from exc


class StreamGate:
    """The set of authorised subscriber keys (by session) and the ZAP replies built from it."""

    def __init__(self, ctx: zmq.Context[Any]) -> None:
        self.zap: zmq.Socket[bytes] = ctx.socket(zmq.REP)
        self.zap.linger = 0
        self.zap.bind(ZAP_ENDPOINT)  # before the stream socket binds: no handshake goes unasked
        self.sessions: dict[str, bytes] = {}  # session id -> the key it authorised
        self.admitted: set[bytes] = set()  # keys let in since the stream was last rebound
        self._forgotten = False  # a session ended since the last must_rebind()
        self.allowed_total = 0
        self.denied_total = 0

    def allow(self, session: str, key: bytes) -> None:
        self.sessions[session] = key

    def forget(self, session: str) -> None:
        if self.sessions.pop(session, None) is not None:
            self._forgotten = True

    def must_rebind(self) -> bool:
        """A key let in earlier is no longer held by any session: its connection must go."""
        if not self._forgotten:
            return False
        self._forgotten = False
        return not self.admitted <= set(self.sessions.values())

    def rebound(self) -> None:
        self.admitted.clear()

    def serve(self, limit: int) -> None:
        """Answer up to `limit` waiting ZAP requests; never blocks."""
        # the usual cycle: nothing (plain ints: pyzmq's enums cost more than the question)
        if not cast(int, self.zap.get(_EVENTS)) & _POLLIN:
            return
        held = set(self.sessions.values())
        for _ in range(limit):
            try:
                req = self.zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            # version, request id, domain, address, routing id, mechanism, credentials...
            ok = len(req) >= 7 and req[2] == DOMAIN and req[5] == b"CURVE" and req[6] in held
            if ok:
                self.admitted.add(req[6])
                self.allowed_total += 1
            else:
                self.denied_total += 1
            rid = req[1] if len(req) > 1 else b""
            status, text = (_OK, b"OK") if ok else (_DENIED, b"no open session for this key")
            self.zap.send_multipart([b"1.0", rid, status, text, b"", b""])

    def close(self) -> None:
        self.zap.close(0)
