"""The robot's two sockets: a ROUTER for control (requests, replies, remote-step observations)
and a PUB for the observation stream. Both are non-blocking from the loop's side: sends that
would block are dropped (a slow client loses messages, never the loop's time)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import msgpack
import numpy as np
import zmq
from raas_client.wire import PROTOCOL_VERSION, Layout, Msg, encode
from raas_client.zmq_send import send as _send_frame

from raas.transport.config import TransportConfig
from raas.transport.curve import CurveKeys, load_or_create, needs_curve
from raas.transport.errors import EndpointError
from raas.transport.stream_auth import DOMAIN, HANDSHAKE_MS, StreamGate

# Plain ints: pyzmq's enum flags cost more in arithmetic and in get(EVENTS) (which then builds
# a PollEvent) than the call they decorate.
_MORE = int(zmq.SNDMORE) | int(zmq.NOBLOCK)
_LAST = int(zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
_EVENTS = int(zmq.EVENTS)
_RCVTIMEO = int(zmq.RCVTIMEO)


class RobotSockets:
    def __init__(self, cfg: TransportConfig, ctx: zmq.Context[Any] | None = None) -> None:
        self.ctx: zmq.Context[Any] = ctx if ctx is not None else zmq.Context.instance()
        self.keys: CurveKeys | None = None
        if needs_curve(cfg.control_endpoint, cfg.plain) or needs_curve(
            cfg.stream_endpoint, cfg.plain
        ):
            self.keys = load_or_create(cfg.key_dir)
        self.control: zmq.Socket[bytes] = self.ctx.socket(zmq.ROUTER)
        #: The stream's subscribers need a session (docs/protocol.md, "Who receives the
        #: stream"): on a Curve stream its own context holds the ZAP handler, so that handler
        #: sees the stream's handshakes only (the control socket's stay unasked).
        self.stream_gate: StreamGate | None = None
        self._stream_ctx: zmq.Context[Any] | None = None
        stream_ctx = self.ctx
        if self.keys is not None and needs_curve(cfg.stream_endpoint, cfg.plain):
            stream_ctx = self._stream_ctx = zmq.Context()
            self.stream_gate = StreamGate(stream_ctx)
        self.stream: zmq.Socket[bytes] = stream_ctx.socket(zmq.PUB)
        if self.stream_gate is not None:
            self.stream.zap_domain = DOMAIN
            self.stream.handshake_ivl = HANDSHAKE_MS
        # A frame over the cap never reaches the loop: ZeroMQ's I/O thread drops that peer's
        # connection as soon as the frame's length is announced (docs/protocol.md, Size
        # limits). Set before bind: a listener keeps the options it was bound with.
        self.control.maxmsgsize = cfg.max_frame_bytes
        for sock, endpoint in (
            (self.control, cfg.control_endpoint),
            (self.stream, cfg.stream_endpoint),
        ):
            sock.linger = 0
            sock.sndhwm = 1000
            sock.rcvhwm = 1000
            if self.keys is not None and needs_curve(endpoint, cfg.plain):
                self.keys.apply_server(sock)
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as exc:
                self.close()
                raise EndpointError(f"cannot bind {endpoint}: {exc}") from exc
        self.control_endpoint = self.control.getsockopt_string(zmq.LAST_ENDPOINT)
        self.stream_endpoint = self.stream.getsockopt_string(zmq.LAST_ENDPOINT)
        if self.stream_endpoint.startswith("ipc://"):
            # ipc is not lease-gated: the socket file's mode is, only the daemon's own user
            Path(self.stream_endpoint[len("ipc://") :]).chmod(0o600)
        self.dropped = 0  # sends dropped because a peer's queue was full
        self.rebinds = 0  # times the stream endpoint was rebound to drop ended subscribers
        self._rebind_due = False
        #: One poller for the control socket's life (Socket.poll builds a new one per call).
        self._poller = zmq.Poller()
        self._poller.register(self.control, zmq.POLLIN)
        #: One msgpack packer for the headers (the sockets are used by the loop's thread only).
        self._pack = msgpack.Packer().pack
        self._rcvtimeo = -1  # the control socket's ZMQ_RCVTIMEO (recv_wait)

    @property
    def public_key(self) -> str | None:
        return None if self.keys is None else self.keys.public.decode("ascii")

    def recv(self) -> list[Any] | None:
        """One control message (identity first), or None when nothing is waiting.

        ZMQ_EVENTS first: asking costs one poll of the socket's mailbox, an empty NOBLOCK recv
        that and a zmq.Again exception on top (most cycles have no message)."""
        if not cast(int, self.control.get(_EVENTS)) & _POLLIN:
            return None
        try:
            return self._recv(_LAST)
        except zmq.Again:
            return None

    def _recv(self, flags: int) -> list[Any]:
        """[identity (bytes), frame, ...]: the identity (at most 255 bytes) copied, which costs
        less than a zmq.Frame; the rest as zmq.Frame, never copied (a frame may be up to
        max_frame_bytes); Frame.more saves asking ZMQ_RCVMORE after each of them. A ROUTER
        puts the sender's identity before every message, so at least one part always follows
        it: ZMQ_RCVMORE is not asked after it either (pyzmq's `get` builds an enum per call,
        ~0.4 us)."""
        sock = self.control
        frames: list[Any] = [sock.recv(flags)]
        while True:
            frame = sock.recv(_LAST, copy=False)  # the parts of a message arrive together
            frames.append(frame)
            if not frame.more:
                return frames

    def recv_wait(self, timeout_ms: int) -> list[Any] | None:
        """One control message, waiting up to timeout_ms for it (0: just look), or None.

        A blocking recv with a receive timeout: one wait inside libzmq, where `wait` + `recv`
        ask ZMQ_EVENTS (a poll of the socket's mailbox, a syscall), poll, and ask again. The
        timeout is set only when it changes (a remote step waits the same whole milliseconds
        cycle after cycle)."""
        if timeout_ms <= 0:
            return self.recv()
        if timeout_ms != self._rcvtimeo:
            self.control.setsockopt(_RCVTIMEO, timeout_ms)
            self._rcvtimeo = timeout_ms
        try:
            return self._recv(0)
        except zmq.Again:
            return None

    def wait(self, timeout_ms: int) -> bool:
        """Block up to timeout_ms for a control message (0: just look)."""
        if cast(int, self.control.get(_EVENTS)) & _POLLIN:
            return True
        return bool(self._poller.poll(timeout_ms))

    def send_to(
        self,
        identity: bytes,
        kind: str,
        fields: Mapping[str, Any] | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
        *,
        layout: Layout | None = None,
        block: Any = None,
        version: int = PROTOCOL_VERSION,
    ) -> None:
        frames = encode(
            kind, fields, arrays, layout=layout, block=block, version=version, pack=self._pack
        )
        self._send(self.control, [identity, *frames])

    def send_block_to(self, identity: bytes, header: Mapping[str, Any], block: Any) -> None:
        """[identity, header, block] on the control socket, `header` complete (`v`, `t`, `b`
        and the fields): what `send_to` sends for a message with a block and no loose arrays
        (remote step's observation, every cycle), without the frame list and the loop."""
        head = self._pack(header)  # packed first: a header that cannot be packed sends nothing
        sock = self.control
        try:
            _send_frame(sock, identity, _MORE)
            _send_frame(sock, head, _MORE)
            _send_frame(sock, block, _LAST)
        except zmq.ZMQError:
            self.dropped += 1

    def send_block_on(self, sock: zmq.Socket[bytes], header: Mapping[str, Any], block: Any) -> None:
        """`send_block_to` on another socket of the loop's thread (a dialled policy server's
        DEALER: raas/transport/policy_serve.py): [header, block], dropped rather than waited for."""
        head = self._pack(header)
        try:
            _send_frame(sock, head, _MORE)
            _send_frame(sock, block, _LAST)
        except zmq.ZMQError:
            self.dropped += 1

    def send_on(
        self,
        sock: zmq.Socket[bytes],
        kind: str,
        fields: Mapping[str, Any] | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
        *,
        layout: Layout | None = None,
        block: Any = None,
    ) -> None:
        """A message on another socket of the loop's thread (a dialled policy server's DEALER:
        raas/transport/policy_serve.py), dropped rather than waited for."""
        frames = encode(kind, fields, arrays, layout=layout, block=block, pack=self._pack)
        self._send(sock, frames)

    def reply(
        self, identity: bytes, req_id: Any, fields: Mapping[str, Any] | None = None, **kw: Any
    ) -> None:
        self.send_to(identity, Msg.OK, {"id": req_id, **(fields or {})}, **kw)

    def error(
        self,
        identity: bytes,
        req_id: Any,
        code: str,
        message: str,
        version: int = PROTOCOL_VERSION,
    ) -> None:
        fields = {"id": req_id, "code": code, "message": message[:500]}
        self.send_to(identity, Msg.ERROR, fields, version=version)

    def publish(self, topic: bytes, frames: list[Any]) -> None:
        self._send(self.stream, [topic, *frames])

    def publish3(self, topic: bytes, header: bytes, body: Any) -> None:
        """publish() of [topic, header, body] (a stream step: every cycle) without the list and
        the loop around the three sends."""
        sock = self.stream
        try:
            _send_frame(sock, topic, _MORE)
            _send_frame(sock, header, _MORE)
            _send_frame(sock, body, _LAST)
        except zmq.ZMQError:
            self.dropped += 1

    def _send(self, sock: zmq.Socket[bytes], frames: list[Any]) -> None:
        # Frame by frame with plain int flags and pyzmq's compiled send (raas_client.zmq_send):
        # send_multipart's per-frame enum arithmetic and Socket.send's Python wrapper cost more
        # than the send. ROUTER (without ROUTER_MANDATORY) and PUB drop rather than refuse a
        # message, so a multipart message is never left half sent.
        last = len(frames) - 1
        try:
            for i, frame in enumerate(frames):
                _send_frame(sock, frame, _LAST if i == last else _MORE)
        except zmq.ZMQError:  # e.g. the peer vanished mid-send: its problem, not the loop's
            self.dropped += 1

    # ------------------------------------------------------------- stream authorisation
    def allow_subscriber(self, session: str, key: bytes | None) -> None:
        """Let the holder of this Curve key receive the stream while `session` is open."""
        if self.stream_gate is not None and key is not None:
            self.stream_gate.allow(session, key)

    def forget_subscriber(self, session: str) -> None:
        if self.stream_gate is not None:
            self.stream_gate.forget(session)

    def serve_stream_auth(self, limit: int = 16) -> None:
        """Once per cycle: answer waiting ZAP requests and, when a session whose key was
        admitted has ended, drop every stream connection (unbind, bind again) so that key's
        is gone; the others reconnect and are admitted again. Never blocks."""
        gate = self.stream_gate
        if gate is None:
            return
        if self._rebind_due or gate.must_rebind():
            if not self._rebind_due:
                self.stream.unbind(self.stream_endpoint)
                gate.rebound()
                self.rebinds += 1
            try:
                self.stream.bind(self.stream_endpoint)
                self._rebind_due = False
            except zmq.ZMQError:  # the old listener is not closed yet: next cycle
                self._rebind_due = True
        gate.serve(limit)

    def close(self) -> None:
        self.control.close(0)
        self.stream.close(0)
        if self.stream_gate is not None:
            self.stream_gate.close()
        if self._stream_ctx is not None:
            self._stream_ctx.term()
