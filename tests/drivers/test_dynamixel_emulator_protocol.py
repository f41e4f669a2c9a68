"""The servo-chain emulator speaks Protocol 2.0 as dynamixel-sdk expects: driven by the SDK."""

from __future__ import annotations

import os
import random
import select
import struct
import time
from collections.abc import Iterator

import dynamixel_sdk.port_handler
import pytest
from dynamixel_sdk import (
    COMM_RX_CORRUPT,
    COMM_SUCCESS,
    GroupBulkRead,
    GroupBulkWrite,
    GroupSyncRead,
    GroupSyncWrite,
    PacketHandler,
    PortHandler,
)
from dynamixel_sdk.protocol2_packet_handler import Protocol2PacketHandler
from raas_drivers.dynamixel import control_table as ct
from raas_drivers.dynamixel.bus import open_port
from raas_drivers.dynamixel.emulator import (
    INST_READ,
    DynamixelEmulator,
    ServoChain,
    crc,
    instruction_packet,
    status_packet,
    stuff,
    unstuff,
)

from tests.drivers.dxl_support import emu

__all__ = ["emu"]

LED = 65
PROFILE_ACCELERATION = 108
PROFILE_VELOCITY = 112


@pytest.fixture
def sdk(
    emu: DynamixelEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[PortHandler, PacketHandler]]:
    """The SDK on the driver's port (the SDK's PortHandler, sleeping instead of spinning while
    it waits: the emulator thread shares this process's GIL). The SDK's timeouts assume its
    16 ms USB latency constant (34 ms a packet); on a loaded shared 2-core machine the emulator
    thread is sometimes not scheduled that soon, so the constant is raised here: these tests
    are about what is answered, not how fast. The CLI test uses the SDK's own port unchanged."""
    monkeypatch.setattr(dynamixel_sdk.port_handler, "LATENCY_TIMER", 250)
    port, ph = open_port(emu.port, 1_000_000)
    yield port, ph
    port.closePort()


def test_ping_answers_model_and_firmware(sdk: tuple[PortHandler, PacketHandler]) -> None:
    port, ph = sdk
    model, result, error = ph.ping(port, 7)
    assert (model, result, error) == (1240, COMM_SUCCESS, 0)
    _, result, _ = ph.ping(port, 40)  # nobody has id 40
    assert result != COMM_SUCCESS
    found, result = ph.broadcastPing(port)
    assert result == COMM_SUCCESS
    assert sorted(found) == list(range(16))
    assert found[3] == [1240, 52]


def test_read_write_and_access_rules(sdk: tuple[PortHandler, PacketHandler]) -> None:
    port, ph = sdk
    assert ph.read2ByteTxRx(port, 2, ct.MODEL_NUMBER) == (1240, COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(port, 2, ct.ID) == (2, COMM_SUCCESS, 0)
    # EEPROM is writable with torque off, locked with torque on (access error 7)
    assert ph.write1ByteTxRx(port, 2, ct.RETURN_DELAY_TIME, 0) == (COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(port, 2, ct.RETURN_DELAY_TIME)[0] == 0
    assert ph.write1ByteTxRx(port, 2, ct.TORQUE_ENABLE, 1) == (COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 2, ct.RETURN_DELAY_TIME, 10) == (COMM_SUCCESS, 7)
    assert ph.read1ByteTxRx(port, 2, ct.RETURN_DELAY_TIME)[0] == 0
    # read-only items refuse writes; a goal outside the position limits is a data limit error
    assert ph.write2ByteTxRx(port, 2, ct.MODEL_NUMBER, 5) == (COMM_SUCCESS, 7)
    assert ph.write4ByteTxRx(port, 2, ct.GOAL_POSITION, 5000) == (COMM_SUCCESS, 6)


def test_goal_is_tracked_with_a_velocity_limit(sdk: tuple[PortHandler, PacketHandler]) -> None:
    port, ph = sdk
    assert ph.write1ByteTxRx(port, 1, ct.TORQUE_ENABLE, 1) == (COMM_SUCCESS, 0)
    assert ph.write4ByteTxRx(port, 1, ct.GOAL_POSITION, 3048) == (COMM_SUCCESS, 0)
    t0 = time.monotonic()
    pos = 2048
    while time.monotonic() - t0 < 10 and abs(pos - 3048) > 2:
        value, result, _ = ph.read4ByteTxRx(port, 1, ct.PRESENT_POSITION)
        if result == COMM_SUCCESS:
            pos = value
    assert abs(pos - 3048) <= 2
    # servo 2 has torque off: it does not move
    assert ph.read4ByteTxRx(port, 2, ct.PRESENT_POSITION)[0] == 2048


def test_velocity_limit_caps_one_step() -> None:
    chain = ServoChain([1], now_ns=0)
    s = chain.servos[1]
    s.table[ct.TORQUE_ENABLE] = 1
    struct.pack_into("<i", s.table, ct.GOAL_POSITION, 4000)
    s.update(10_000_000)  # 10 ms
    vmax_units_s = 445 * 0.229 / 60 * 4096
    assert 2048 < s.pos <= 2048 + vmax_units_s * 0.010 + 1e-6


def test_realtime_tick_counts_ms_and_wraps() -> None:
    chain = ServoChain([1], now_ns=0)
    s = chain.servos[1]
    start = s.start_ns
    s.update(start + 32_767 * 1_000_000)
    assert struct.unpack_from("<H", s.table, ct.REALTIME_TICK)[0] == 32_767
    s.update(start + 32_769 * 1_000_000)
    assert struct.unpack_from("<H", s.table, ct.REALTIME_TICK)[0] == 1


def test_sync_read_and_sync_write(sdk: tuple[PortHandler, PacketHandler]) -> None:
    port, ph = sdk
    w = GroupSyncWrite(port, ph, PROFILE_VELOCITY, 4)
    for i in range(16):
        assert w.addParam(i, list(struct.pack("<I", 100 + i)))
    assert w.txPacket() == COMM_SUCCESS
    r = GroupSyncRead(port, ph, PROFILE_VELOCITY, 4)
    for i in range(16):
        r.addParam(i)
    assert r.txRxPacket() == COMM_SUCCESS
    assert [r.getData(i, PROFILE_VELOCITY, 4) for i in range(16)] == [100 + i for i in range(16)]
    block = GroupSyncRead(port, ph, ct.STATE_BLOCK_START, ct.STATE_BLOCK_LEN)
    for i in range(16):
        block.addParam(i)
    assert block.txRxPacket() == COMM_SUCCESS
    assert block.getData(9, ct.PRESENT_POSITION, 4) == 2048


def test_bulk_read_and_bulk_write(sdk: tuple[PortHandler, PacketHandler]) -> None:
    port, ph = sdk
    bw = GroupBulkWrite(port, ph)
    assert bw.addParam(3, LED, 1, [1])
    assert bw.addParam(4, 112, 4, list(struct.pack("<I", 77)))
    assert bw.txPacket() == COMM_SUCCESS
    br = GroupBulkRead(port, ph)
    assert br.addParam(3, LED, 1)
    assert br.addParam(4, 112, 4)
    assert br.txRxPacket() == COMM_SUCCESS
    assert br.getData(3, LED, 1) == 1
    assert br.getData(4, 112, 4) == 77


def test_crc_is_the_sdk_crc() -> None:
    ph = Protocol2PacketHandler()
    rng = random.Random(3)
    for n in (1, 7, 30, 200):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert crc(data) == ph.updateCRC(0, list(data), n)


def test_bad_crc_instruction_gets_a_crc_error_status(emu: DynamixelEmulator) -> None:
    fd = os.open(emu.port, os.O_RDWR | os.O_NOCTTY)
    try:
        pkt = bytearray(instruction_packet(5, INST_READ, struct.pack("<HH", 132, 4)))
        pkt[-1] ^= 0xFF
        os.write(fd, bytes(pkt))
        assert select.select([fd], [], [], 5)[0]
        time.sleep(0.05)
        reply = os.read(fd, 100)
        assert reply == status_packet(5, 3)  # error 3: CRC error, no data
    finally:
        os.close(fd)
    assert emu.chain.crc_errors == 1


def test_corrupt_status_packets_are_rejected_by_the_sdk(
    emu: DynamixelEmulator, sdk: tuple[PortHandler, PacketHandler]
) -> None:
    port, ph = sdk
    assert emu.command("corrupt 1") == "ok"
    _, result, _ = ph.read4ByteTxRx(port, 5, ct.PRESENT_POSITION)
    assert result == COMM_RX_CORRUPT
    assert ph.read4ByteTxRx(port, 5, ct.PRESENT_POSITION) == (2048, COMM_SUCCESS, 0)


def test_byte_stuffing_both_ways(sdk: tuple[PortHandler, PacketHandler]) -> None:
    """0x00FDFFFF is FF FF FD 00 on the wire: the SDK stuffs it, the emulator unstuffs, stores,
    stuffs its answer, the SDK unstuffs."""
    port, ph = sdk
    value = 0x00FDFFFF
    assert ph.write4ByteTxRx(port, 6, PROFILE_ACCELERATION, value) == (COMM_SUCCESS, 0)
    assert ph.read4ByteTxRx(port, 6, PROFILE_ACCELERATION) == (value, COMM_SUCCESS, 0)
    raw = status_packet(6, 0, struct.pack("<I", value))
    assert b"\xff\xff\xfd\xfd" in raw[7:]
    assert unstuff(raw)[2:6] == struct.pack("<I", value)


def test_stuffing_matches_the_sdk() -> None:
    ph = Protocol2PacketHandler()
    payload = b"\x03\x6c\x00\xff\xff\xfd\x00"  # WRITE at 108: FF FF FD 00
    body = b"\xff\xff\xfd\x00\x01" + struct.pack("<H", len(payload) + 2) + payload
    ours = stuff(body)
    theirs = ph.addStuffing([*body, 0, 0])  # the SDK stuffs a packet with its CRC slots
    assert len(ours) == len(body) + 1  # one FD added
    assert list(ours) == theirs[:-2]


def test_silent_servo_stops_answering_then_resumes(
    emu: DynamixelEmulator, sdk: tuple[PortHandler, PacketHandler]
) -> None:
    port, ph = sdk
    assert emu.command("silent 4") == "ok"
    assert ph.ping(port, 4)[1] != COMM_SUCCESS
    assert ph.ping(port, 5)[1] == COMM_SUCCESS
    assert emu.command("answer 4") == "ok"
    assert ph.ping(port, 4)[1] == COMM_SUCCESS
    assert emu.command("fly 4").startswith("unknown command")


def test_hardware_error_sets_the_alert_bit_and_drops_torque(
    emu: DynamixelEmulator, sdk: tuple[PortHandler, PacketHandler]
) -> None:
    port, ph = sdk
    assert ph.write1ByteTxRx(port, 8, ct.TORQUE_ENABLE, 1) == (COMM_SUCCESS, 0)
    assert emu.command("hwerror 8 4") == "ok"  # bit 2: overheating
    value, result, error = ph.read1ByteTxRx(port, 8, ct.HARDWARE_ERROR_STATUS)
    assert (value, result) == (4, COMM_SUCCESS)
    assert error & 0x80
    assert ph.read1ByteTxRx(port, 8, ct.TORQUE_ENABLE)[0] == 0
    assert ph.write1ByteTxRx(port, 8, ct.TORQUE_ENABLE, 1) == (COMM_SUCCESS, 0x80 | 7)
    assert ph.reboot(port, 8)[0] == COMM_SUCCESS
    assert ph.read1ByteTxRx(port, 8, ct.HARDWARE_ERROR_STATUS) == (0, COMM_SUCCESS, 0)


def test_cli_prints_the_pty_path_and_takes_fault_commands() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "raas_drivers.dynamixel.emulator",
            "--servos",
            "3",
            "--first-id",
            "1",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        port = PortHandler(path)
        assert port.openPort()
        ph = PacketHandler(2.0)
        # the SDK's own port and 34 ms timeout: a loaded machine may need a second try
        assert any(ph.ping(port, 3)[1] == COMM_SUCCESS for _ in range(3))
        proc.stdin.write("silent 3\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ok"
        assert ph.ping(port, 3)[1] != COMM_SUCCESS
        port.closePort()
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
