"""The robot's two sockets: a ROUTER for control (requests, replies, remote-step observations)
and a PUB for the observation stream. Both are non-blocking from the loop's side: sends that
would block are dropped (a slow client loses messages, never the loop's time)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import zmq
from raas_client.wire import Msg, encode

from raas.transport.config import TransportConfig
from raas.transport.curve import CurveKeys, load_or_create, needs_curve
from raas.transport.errors import EndpointError

_MORE = int(zmq.SNDMORE) | int(zmq.NOBLOCK)
_LAST = int(zmq.NOBLOCK)


class RobotSockets:
    def __init__(self, cfg: TransportConfig, ctx: zmq.Context[Any] | None = None) -> None:
        self.ctx: zmq.Context[Any] = ctx if ctx is not None else zmq.Context.instance()
        self.keys: CurveKeys | None = None
        if needs_curve(cfg.control_endpoint, cfg.plain) or needs_curve(
            cfg.stream_endpoint, cfg.plain
        ):
            self.keys = load_or_create(cfg.key_dir)
        self.control: zmq.Socket[bytes] = self.ctx.socket(zmq.ROUTER)
        self.stream: zmq.Socket[bytes] = self.ctx.socket(zmq.PUB)
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
        self.dropped = 0  # sends dropped because a peer's queue was full

    @property
    def public_key(self) -> str | None:
        return None if self.keys is None else self.keys.public.decode("ascii")

    def recv(self) -> list[zmq.Frame] | None:
        """One control message (identity first), or None when nothing is waiting."""
        try:
            return self.control.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None

    def wait(self, timeout_ms: int) -> bool:
        """Block up to timeout_ms for a control message (0: just look)."""
        return bool(self.control.poll(timeout_ms, zmq.POLLIN))

    def send_to(
        self,
        identity: bytes,
        kind: str,
        fields: Mapping[str, Any] | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self._send(self.control, [identity, *encode(kind, fields, arrays)])

    def reply(
        self, identity: bytes, req_id: Any, fields: Mapping[str, Any] | None = None, **kw: Any
    ) -> None:
        self.send_to(identity, Msg.OK, {"id": req_id, **(fields or {})}, **kw)

    def error(self, identity: bytes, req_id: Any, code: str, message: str) -> None:
        self.send_to(identity, Msg.ERROR, {"id": req_id, "code": code, "message": message[:500]})

    def publish(self, topic: bytes, frames: list[Any]) -> None:
        self._send(self.stream, [topic, *frames])

    def _send(self, sock: zmq.Socket[bytes], frames: list[Any]) -> None:
        # Frame by frame with plain int flags: send_multipart's per-frame enum arithmetic costs
        # more than the send. ROUTER (without ROUTER_MANDATORY) and PUB drop rather than refuse
        # a message, so a multipart message is never left half sent.
        last = len(frames) - 1
        try:
            for i, frame in enumerate(frames):
                sock.send(frame, _LAST if i == last else _MORE, copy=True)
        except zmq.ZMQError:  # e.g. the peer vanished mid-send: its problem, not the loop's
            self.dropped += 1

    def close(self) -> None:
        self.control.close(0)
        self.stream.close(0)
