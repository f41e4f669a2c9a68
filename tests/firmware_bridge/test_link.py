"""The host link on pyserial: loop://, a real pty pair, resynchronisation after garbage, M bad
frames in a row make it dead, and a dead link stays dead."""

from __future__ import annotations

import os
import select
import termios

import numpy as np
import pytest
from raas_firmware_bridge.errors import LinkDeadError, PortUnavailableError, PortVanishedError
from raas_firmware_bridge.link import LinkState, SerialLink
from raas_firmware_bridge.messages import (
    Heartbeat,
    Hello,
    SetTargets,
    StateRequest,
    TriggerAck,
    encode_message,
)

from tests.firmware_bridge.conftest import PtyPair

pytestmark = [pytest.mark.system]


def test_loop_url_round_trips_messages() -> None:
    link = SerialLink("loop://", name="loop")
    link.open()
    targets = np.linspace(-1, 1, 20)
    link.send(Hello())
    link.send(SetTargets(7, targets))
    got = link.receive()
    assert got[0] == Hello()
    assert isinstance(got[1], SetTargets) and got[1].target_seq == 7
    assert np.abs(got[1].targets - targets).max() <= 0.5e-4
    assert link.stats.frames_sent == 2 and link.stats.frames_received == 2
    with pytest.raises(Exception, match="no file descriptor"):
        link.fileno()  # loop:// has none; receive() reads through pyserial instead
    link.close()


def test_pty_pair_both_ways_and_fileno_wakes_poll(pty_pair: PtyPair) -> None:
    link = SerialLink(pty_pair.path, name="board")
    link.open()
    link.send(StateRequest(3))
    wire = pty_pair.read()
    assert wire.endswith(b"\x00") and wire == encode_message(StateRequest(3), 0)
    os.write(pty_pair.master, encode_message(TriggerAck(3, 1234), 9))
    ready, _, _ = select.select([link.fileno()], [], [], 2.0)
    assert ready
    assert link.receive() == [TriggerAck(3, 1234)]
    assert link.receive() == []  # non-blocking when nothing waits
    assert link.state is LinkState.OPEN
    link.close()


def test_port_is_raw_without_flow_control_and_exclusive(pty_pair: PtyPair) -> None:
    link = SerialLink(pty_pair.path, name="board")
    link.open()
    iflag, oflag, _, lflag, _, _, cc = termios.tcgetattr(link.fileno())
    assert not lflag & (termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
    assert not oflag & termios.OPOST
    assert not iflag & (termios.IXON | termios.IXOFF | termios.ICRNL | termios.INLCR)
    assert cc[termios.VMIN] == 0 and cc[termios.VTIME] == 0
    assert os.get_blocking(link.fileno()) is False
    # XON/XOFF bytes are data: they pass both ways unchanged
    os.write(pty_pair.master, b"\x11\x13")
    select.select([link.fileno()], [], [], 2.0)
    assert os.read(link.fileno(), 16) == b"\x11\x13"
    other = SerialLink(pty_pair.path, name="second host")
    with pytest.raises(PortUnavailableError, match="second host"):
        other.open()  # one host per board: the second is refused, not interleaved
    link.close()
    other.open()  # the port is free again once the first host let go
    other.close()


def test_garbage_costs_only_the_frames_it_touches(pty_pair: PtyPair) -> None:
    link = SerialLink(pty_pair.path, name="board", max_bad_frames=8)
    link.open()
    good = encode_message(Heartbeat(1, 0), 0)
    corrupt = bytearray(encode_message(Heartbeat(2, 0), 1))
    corrupt[3] ^= 0x10
    # garbage ends at a delimiter (bytes without one would merge with the next frame and
    # cost it too: COBS resynchronises on 0x00)
    wire = b"\x17\x99garbage\x00" + good + bytes(corrupt) + b"\x00\x00" + good + good[:5]
    os.write(pty_pair.master, wire)
    got: list[object] = []
    for _ in range(50):
        select.select([link.fileno()], [], [], 0.1)
        got += link.receive()
        if len(got) >= 2:
            break
    assert got == [Heartbeat(1, 0), Heartbeat(1, 0)]
    assert link.stats.resyncs == 2  # the leading garbage and the corrupted frame
    assert link.stats.crc_errors >= 1
    assert link.state is LinkState.OPEN
    os.write(pty_pair.master, good[5:])  # the tail of the split frame completes it
    select.select([link.fileno()], [], [], 1.0)
    assert link.receive() == [Heartbeat(1, 0)]
    assert link.stats.consecutive_bad == 0
    link.close()


def test_m_bad_frames_in_a_row_kill_the_link_for_good(pty_pair: PtyPair) -> None:
    link = SerialLink(pty_pair.path, name="hand", max_bad_frames=5)
    link.open()
    bad = bytearray(encode_message(Heartbeat(1, 0), 0))
    bad[4] ^= 0x01
    os.write(pty_pair.master, bytes(bad) * 4)
    select.select([link.fileno()], [], [], 1.0)
    link.receive()
    assert link.state is LinkState.OPEN and link.stats.consecutive_bad == 4
    os.write(pty_pair.master, bytes(bad) + encode_message(Heartbeat(2, 0), 1))
    select.select([link.fileno()], [], [], 1.0)
    link.receive()
    assert link.state is LinkState.DEAD
    with pytest.raises(LinkDeadError, match="5 bad frames in a row"):
        link.check()
    # good frames afterwards change nothing: only an explicit reset leaves DEAD
    os.write(pty_pair.master, encode_message(Heartbeat(3, 0), 2))
    assert link.receive() == []
    with pytest.raises(LinkDeadError):
        link.send(Heartbeat(4, 0))
    link.close()


def test_closed_pty_is_a_vanished_port(pty_pair: PtyPair) -> None:
    link = SerialLink(pty_pair.path, name="hand")
    link.open()
    os.close(pty_pair.slave)
    os.close(pty_pair.master)
    pty_pair.master = pty_pair.slave = -1
    link.receive()
    with pytest.raises(PortVanishedError):
        link.check()
    assert link.state is LinkState.FAULTED
