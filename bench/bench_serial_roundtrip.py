"""Set-targets -> state round trip over a pty at 1 kHz, beside a raw pty echo peer.

    python -m bench serial_roundtrip [-- --duration 5 --rate 1000]

ours  the simulated rig's hand board (the firmware emulator, MuJoCo plant, 1 kHz servo tick) on
      its pty, driven by SerialHandDriver: each cycle apply(targets, k) (SET_TARGETS) and
      request_state(k) (STATE_REQUEST), then poll until the State of cycle k arrives carrying
      applied_seq k. Measured from before the first write to the decoded state.
peer  a process that echoes every byte it reads on a pty master, nothing else: the host writes
      the same two frames' bytes and waits for as many bytes back. The floor of two pty hops
      and two process wake-ups on this machine.
Both run one after the other (never interleaved), each paced at `--rate` for `--duration` s.
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import time
import tty

import numpy as np
from raas_drivers.sim import RigConfig, SimRig
from raas_firmware_bridge.messages import SetTargets, StateRequest, encode_message

from bench.common import dist_us, fmt_dist, ratio, write_report

ECHO = """
import os, sys, tty, select
master, slave = os.openpty()
tty.setraw(master); tty.setraw(slave)
print(os.ttyname(slave), flush=True)
while True:
    select.select([master], [], [])
    data = os.read(master, 65536)
    while data:
        n = os.write(master, data)
        data = data[n:]
"""


def _pace(start_ns: int, k: int, period_ns: int) -> None:
    due = start_ns + k * period_ns
    while True:
        left = due - time.monotonic_ns()
        if left <= 0:
            return
        time.sleep(left / 1e9 if left > 200_000 else 0)


def bench_peer(cycles: int, rate: float) -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        payload = encode_message(SetTargets(1, np.zeros(20)), 0) + encode_message(
            StateRequest(1), 1
        )
        period = round(1e9 / rate)
        out = np.zeros(cycles, dtype=np.int64)
        start = time.monotonic_ns()
        for k in range(cycles):
            _pace(start, k, period)
            t = time.monotonic_ns()
            os.write(fd, payload)
            got = 0
            while got < len(payload):
                select.select([fd], [], [], 1.0)
                got += len(os.read(fd, 65536))
            out[k] = time.monotonic_ns() - t
        os.close(fd)
        return dist_us(out)
    finally:
        proc.kill()
        proc.wait()


def bench_ours(cycles: int, rate: float) -> tuple[dict[str, float], dict[str, float]]:
    cfg = RigConfig(clock="realtime", rate_hz=rate, cameras=0, seed=0)
    with SimRig(cfg) as rig:
        hand = rig.devices().hand
        hand.configure()
        hand.activate()
        fd = hand.fileno()
        targets = hand.idle_action
        period = round(1e9 / rate)
        out = np.zeros(cycles, dtype=np.int64)
        start = time.monotonic_ns()
        for k in range(cycles):
            _pace(start, k, period)
            t = time.monotonic_ns()
            hand.apply(targets, k)
            hand.request_state(k)
            hand.settle()
            while True:
                state = hand.poll(k)
                if state is not None:
                    break
                select.select([fd], [], [], 1.0)
            out[k] = time.monotonic_ns() - t
            if state.applied_seq != k:
                raise AssertionError(f"cycle {k}: state applied_seq {state.applied_seq}")
        stats = hand.stats()
        hand.shutdown()
        return dist_us(out), stats


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench serial_roundtrip")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per side")
    args = p.parse_args(argv)
    cycles = max(10, round(args.duration * args.rate))
    print(f"== set-targets -> state round trip over a pty, {args.rate:g} Hz, {cycles} cycles")
    peer = bench_peer(cycles, args.rate)
    print(fmt_dist("peer (raw pty echo process)", peer), flush=True)
    ours, stats = bench_ours(cycles, args.rate)
    print(fmt_dist("ours (hand firmware emulator)", ours), flush=True)
    print(f"ratio ours/peer: p50 {ratio(ours['p50'], peer['p50'])}, "
          f"p99 {ratio(ours['p99'], peer['p99'])}")  # fmt: skip
    print(
        f"link: {stats['link_frames_sent']:.0f} frames out, {stats['link_frames_received']:.0f} "
        f"in, {stats['link_bad_frames']:.0f} bad, {stats['link_timeouts']:.0f} timeouts"
    )
    write_report(
        "serial_roundtrip",
        {
            "rate_hz": args.rate,
            "cycles": cycles,
            "round_trip_us": {"ours": ours, "peer": peer},
            "ratio_p50": ratio(ours["p50"], peer["p50"]),
            "ratio_p99": ratio(ours["p99"], peer["p99"]),
            "link_stats": stats,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
