"""Dynamixel sync read + sync write round trip on the emulated bus, our driver beside bare
dynamixel-sdk calls with the same packets.

    python -m bench dynamixel [-- --servos 16 --baud 1000000 --rate 100 --duration 10 --no-pace]

bus   the servo-chain emulator (raas_drivers.dynamixel.emulator) in its own process on a pty,
      16 servos by default, Return Delay Time 0; with pacing (default) every status packet
      leaves when the real half-duplex bus would have finished it (10 bits a byte at the baud).
peer  bare dynamixel-sdk: GroupSyncRead(120, 16 bytes).txRxPacket(), getData() of current,
      velocity and position per servo, then GroupSyncWrite(116, 4 bytes) of 16 goals .txPacket().
ours  DynamixelHandDriver: request_state(k), poll(k) until the state (select on its fd between
      polls), apply(targets, k): the same SYNC READ and SYNC WRITE packets, plus the calibration
      mapping to rad, the clock fit and the bookkeeping. (Temperature cycles are switched off so
      the packets are the same, and the read timeout is the SDK's own for this read.)
Measured: from before the sync read leaves to after the sync write is written; one side after
the other, each paced at `--rate` for `--duration` s. The bus time floor is computed from the
baud rate: (instruction + status + sync write bytes) * 10 / baud.
"""

from __future__ import annotations

import argparse
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from dynamixel_sdk import COMM_SUCCESS, GroupSyncRead, GroupSyncWrite, PacketHandler, PortHandler
from raas_drivers.dynamixel import control_table as ct
from raas_drivers.dynamixel.bus import bus_time_ns, sync_read_bytes, sync_write_bytes
from raas_drivers.dynamixel.calibration import load_calibration
from raas_drivers.dynamixel.config import DynamixelHandSettings
from raas_drivers.dynamixel.driver import DynamixelHandDriver

from bench.common import dist_us, fmt_dist, ratio, write_report


def _pace(start_ns: int, k: int, period_ns: int) -> None:
    due = start_ns + k * period_ns
    while True:
        left = due - time.monotonic_ns()
        if left <= 0:
            return
        time.sleep(left / 1e9 if left > 200_000 else 0)


def _calibration(n: int, folder: Path) -> Path:
    body = 'model = "bench-hand"\n[defaults]\ncurrent_limit_ma = 500\n'
    for i in range(n):
        body += f'\n[[servo]]\nid = {i}\njoint = "j{i}"\nmin_rad = -1.0\nmax_rad = 1.0\n'
    path = folder / "bench_hand.toml"
    path.write_text(body)
    return path


def _targets(n: int, k: int) -> np.ndarray:
    return np.full(n, 0.3 if (k // 10) % 2 else -0.3)


def bench_peer(
    port_path: str, n: int, baud: int, cycles: int, rate: float
) -> tuple[dict[str, float], int]:
    port = PortHandler(port_path)
    if not port.openPort() or not port.setBaudRate(baud):
        raise RuntimeError(f"cannot open {port_path}")
    ph = PacketHandler(2.0)
    try:
        for i in range(n):  # the settings the driver writes: no return delay, torque on
            ph.write1ByteTxRx(port, i, ct.TORQUE_ENABLE, 0)
            ph.write1ByteTxRx(port, i, ct.RETURN_DELAY_TIME, 0)
            ph.write1ByteTxRx(port, i, ct.TORQUE_ENABLE, 1)
        reader = GroupSyncRead(port, ph, ct.STATE_BLOCK_START, ct.STATE_BLOCK_LEN)
        writer = GroupSyncWrite(port, ph, ct.GOAL_POSITION, 4)
        for i in range(n):
            reader.addParam(i)
            writer.addParam(i, [0, 8, 0, 0])
        period = round(1e9 / rate)
        out = np.zeros(cycles, dtype=np.int64)
        failures = 0
        state = np.zeros((3, n))
        start = time.monotonic_ns()
        for k in range(cycles):
            _pace(start, k, period)
            goal = [2048 + round(t / ct.RAD_PER_POSITION_UNIT) for t in _targets(n, k)]
            t = time.monotonic_ns()
            if reader.txRxPacket() != COMM_SUCCESS:
                failures += 1
            for i in range(n):
                state[0, i] = reader.getData(i, ct.PRESENT_CURRENT, 2)
                state[1, i] = reader.getData(i, ct.PRESENT_VELOCITY, 4)
                state[2, i] = reader.getData(i, ct.PRESENT_POSITION, 4)
            for i in range(n):
                v = goal[i]
                writer.changeParam(i, [v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24])
            writer.txPacket()
            out[k] = time.monotonic_ns() - t
        return dist_us(out), failures
    finally:
        port.closePort()


def bench_ours(
    port_path: str, n: int, baud: int, cycles: int, rate: float
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        cal = load_calibration(_calibration(n, Path(tmp)))
    # The same read timeout as the SDK's own for this sync read (bus time + 2 x its 16 ms
    # latency constant + 2 ms), so a slow answer costs both sides alike.
    sdk_timeout_ms = (11 + ct.STATE_BLOCK_LEN) * n * 10_000 / baud + 34.0
    settings = DynamixelHandSettings(
        port=port_path,
        calibration="bench_hand.toml",
        baudrate=baud,
        temperature_every=10**9,
        read_timeout_ms=sdk_timeout_ms,
    )
    hand = DynamixelHandDriver("hand", settings, cal)
    hand.configure()
    hand.activate()
    try:
        fd = hand.fileno()
        period = round(1e9 / rate)
        out = np.zeros(cycles, dtype=np.int64)
        reads = np.zeros(cycles, dtype=np.int64)
        start = time.monotonic_ns()
        for j in range(cycles):
            k = j + 1  # cycle 0 would read the temperatures too
            _pace(start, j, period)
            targets = _targets(n, k)
            t = time.monotonic_ns()
            hand.request_state(k)
            hand.settle()  # the clock fit while the servos answer, as the loop does
            while hand.poll(k) is None:
                if hand._active_read is None:  # failed read: counted in stats
                    break
                select.select([fd], [], [], 0.05)
            reads[j] = time.monotonic_ns() - t
            hand.apply(targets, k)
            out[j] = time.monotonic_ns() - t
        return dist_us(out), dist_us(reads), hand.stats()
    finally:
        hand.shutdown()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench dynamixel")
    p.add_argument("--servos", type=int, default=16)
    p.add_argument("--baud", type=int, default=1_000_000)
    p.add_argument("--rate", type=float, default=100.0, help="cycles per second")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per side")
    p.add_argument("--no-pace", action="store_true", help="emulator answers at once")
    args = p.parse_args(argv)
    n, baud = args.servos, args.baud
    cycles = max(10, round(args.duration * args.rate))
    tx, rx = sync_read_bytes(n, ct.STATE_BLOCK_LEN)
    w = sync_write_bytes(n, 4)
    floor_us = bus_time_ns(tx + rx + w, baud) / 1e3
    pace = not args.no_pace
    print(
        f"== sync read ({tx} + {rx} bytes) + sync write ({w} bytes), {n} servos at {baud} baud, "
        f"{args.rate:g} Hz, {cycles} cycles a side, bus {'paced' if pace else 'unpaced'}"
    )
    print(f"bus time floor: {floor_us:.1f} us  ((instruction + status + write bytes) * 10 / baud)")
    print(f"sync read alone: {bus_time_ns(tx + rx, baud) / 1e3:.1f} us")
    cmd = [sys.executable, "-m", "raas_drivers.dynamixel.emulator", "--servos", str(n)]
    cmd += ["--baud", str(baud)] + (["--pace"] if pace else [])
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        peer, peer_failures = bench_peer(path, n, baud, cycles, args.rate)
        print(fmt_dist("peer (bare dynamixel-sdk)", peer), flush=True)
        ours, reads, stats = bench_ours(path, n, baud, cycles, args.rate)
        print(fmt_dist("ours (DynamixelHandDriver)", ours), flush=True)
        print(fmt_dist("ours: request_state -> state", reads), flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    r50, r99 = ratio(ours["p50"], peer["p50"]), ratio(ours["p99"], peer["p99"])
    print(f"ratio ours/peer: p50 {r50} (target <= 1.2), p99 {r99}")
    print(
        f"ours: p50 {ours['p50'] / floor_us:.2f}x the bus floor; reads {stats['reads']:.0f}, "
        f"failed {stats['read_failures']:.0f}, crc errors {stats['crc_errors']:.0f}; "
        f"peer: failed {peer_failures}"
    )
    write_report(
        "dynamixel",
        {
            "servos": n,
            "baudrate": baud,
            "paced_bus": pace,
            "rate_hz": args.rate,
            "cycles": cycles,
            "bytes": {"sync_read_instruction": tx, "sync_read_status": rx, "sync_write": w},
            "bus_floor_us": round(floor_us, 1),
            "round_trip_us": {"ours": ours, "peer": peer},
            "ours_read_us": reads,
            "sync_read_floor_us": round(bus_time_ns(tx + rx, baud) / 1e3, 1),
            "ratio_p50": r50,
            "ratio_p99": r99,
            "target_ratio_p50": 1.2,
            "driver_stats": stats,
            "peer_failed_reads": peer_failures,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
