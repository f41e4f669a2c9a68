"""pyzmq's send without the Python wrapper around it, for the sends of every remote step.

`zmq.Socket.send` is a Python method of pyzmq's "sugar" layer (it handles `routing_id` and
`group`, for draft SERVER and RADIO sockets only) that calls the compiled `send` of
`zmq.backend.Socket` with keyword arguments. A remote step makes five sends of a few hundred
bytes (the daemon's identity, header and block; the client's header and block), and that
wrapper cost more than the copy it wraps (docs/performance.md, remote step, third pass).

`send(sock, data, flags)` is the compiled method itself, called on the same socket: it copies
`data` into a zmq message and raises the same errors (`zmq.Again`, `zmq.ZMQError`, `TypeError`
for a str), for the same socket types raas uses (ROUTER, DEALER, PUB)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zmq.backend

#: `send(sock, data, flags)`: copy `data` (bytes or any buffer) into one frame and send it.
send: Callable[[Any, Any, int], Any] = zmq.backend.Socket.send
