"""raas_client.zmq_send.send (pyzmq's compiled send, without Socket.send's Python wrapper)
sends what Socket.send sends and fails the way it fails, on real sockets."""

from __future__ import annotations

import numpy as np
import pytest
import zmq
from raas_client.zmq_send import send


def _pair(name: str) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    a.linger = b.linger = 0
    a.bind(f"inproc://zmq-send-{name}")
    b.connect(f"inproc://zmq-send-{name}")
    return a, b


def test_the_frames_arrive_as_sent_by_socket_send() -> None:
    a, b = _pair("same")
    block = np.arange(20.0)
    send(a, b"header", zmq.SNDMORE)
    send(a, block, 0)  # a numpy array: copied through the buffer protocol
    a.send(b"header", zmq.SNDMORE)
    a.send(block)
    first, second = b.recv_multipart(), b.recv_multipart()
    assert first == second == [b"header", block.tobytes()]
    block[:] = 0  # copied at the send: what arrived does not change
    assert first[1] == np.arange(20.0).tobytes()
    a.close()
    b.close()


def test_it_fails_as_socket_send_fails() -> None:
    a, b = _pair("fail")
    with pytest.raises(TypeError):
        send(a, "text", 0)  # a str, as Socket.send refuses it
    b.close()
    a.sndhwm = 1
    lone = zmq.Context.instance().socket(zmq.DEALER)
    lone.linger = 0
    lone.sndhwm = 1
    lone.bind("inproc://zmq-send-nobody")  # nobody connected: a NOBLOCK send cannot queue
    with pytest.raises(zmq.Again):
        send(lone, b"x", zmq.NOBLOCK)
    lone.close()
    a.close()
    with pytest.raises(zmq.ZMQError):
        send(a, b"x", 0)  # a closed socket
