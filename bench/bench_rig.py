"""The simulated rig's IPC and costs, beside a bare peer, in one run.

round trip   realtime rig, cameras off: fire(k) + request_state(k), then poll until the trigger
             ack, the hand state and the mocap frame of cycle k are all in (what a 1 kHz loop
             waits for), paced at --rate. Peer: a bare Python server process on the same kinds
             of sockets (SEQPACKET for ack and state, UDP for mocap) answering with fixed bytes,
             no physics, no msgpack, no mocap model: the IPC floor on this machine.
lockstep     cycles per second at 12.5 Hz, cameras off (physics: 40 x 2 ms steps per cycle).
render       ms per camera frame at 200x200 (the default) and 640x480 (the Basler's), one
             llvmpipe thread, from `python -m raas_drivers.sim.render --bench`.

  python -m bench rig -- [--cycles N] [--rate HZ]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from raas_drivers.sim import RigConfig, SimRig

from bench.common import dist_us, fmt_dist, python, ratio, write_report

PEER = r"""
import os, select, socket, struct, sys
path = sys.argv[1]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); srv.bind(path); srv.listen(4)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
os.write(int(sys.argv[2]), b"ready\n")
conns = []
ep = select.epoll(); ep.register(srv.fileno(), select.EPOLLIN)
by_fd = {}
state = bytes(88 * 8 + 32)
frame = bytes(13 * 25 + 22)
port = None
while True:
    for fd, _ in ep.poll():
        if fd == srv.fileno():
            c, _ = srv.accept(); by_fd[c.fileno()] = c; ep.register(c.fileno(), select.EPOLLIN)
            continue
        c = by_fd[fd]
        m = c.recv(256)
        if not m:
            ep.unregister(fd); c.close(); continue
        kind = m[:1]
        if kind == b"P":
            port = int(m[1:])
        elif kind == b"T":
            if port: udp.sendto(frame, ("127.0.0.1", port))
            c.send(b"A" + m[1:])
        elif kind == b"R":
            c.send(b"S" + state)
"""


def _wait_until(t_ns: int) -> None:
    while True:
        left = t_ns - time.monotonic_ns()
        if left <= 0:
            return
        if left > 300_000:
            time.sleep((left - 200_000) / 1e9)


def bench_ours(cycles: int, rate: float) -> dict[str, Any]:
    cfg = RigConfig(clock="realtime", rate_hz=rate, cameras=0, seed=0)
    with SimRig(cfg) as rig:
        d = rig.devices()
        for dev in (d.hand, d.trigger, d.mocap):
            dev.configure()
            dev.activate()
        sources = [d.hand, d.trigger, d.mocap]
        poller = select.poll()
        for s in sources:
            poller.register(s.fileno(), select.POLLIN)
        period = round(1e9 / rate)
        idle = d.hand.idle_action
        lat = np.zeros(cycles, dtype=np.int64)
        t0 = time.monotonic_ns() + 100_000_000
        for k in range(cycles):
            _wait_until(t0 + k * period)
            sent = d.trigger.fire(k)
            d.hand.request_state(k)
            d.trigger.settle()
            d.hand.settle()
            pending = list(sources)
            while pending:
                pending = [s for s in pending if s.poll(k) is None]
                if pending:
                    poller.poll(50)
            lat[k] = time.monotonic_ns() - sent
            d.hand.apply(idle, k)
    return dist_us(lat[cycles // 10 :])


def bench_peer(cycles: int, rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="raas-bench-") as tmp:
        path = str(Path(tmp) / "peer.sock")
        r, w = os.pipe()
        proc = subprocess.Popen([python(), "-c", PEER, path, str(w)], pass_fds=(w,))
        os.close(w)
        try:
            ready, _, _ = select.select([r], [], [], 20)
            if not ready or not os.read(r, 16):
                raise RuntimeError("peer did not start")
            trig = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            trig.connect(path)
            hand = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            hand.connect(path)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            trig.send(b"P%d" % udp.getsockname()[1])
            for s in (trig, hand, udp):
                s.setblocking(False)
            poller = select.poll()
            for s in (trig, hand, udp):
                poller.register(s.fileno(), select.POLLIN)
            buf = bytearray(4096)
            period = round(1e9 / rate)
            lat = np.zeros(cycles, dtype=np.int64)
            t0 = time.monotonic_ns() + 100_000_000
            for k in range(cycles):
                _wait_until(t0 + k * period)
                sent = time.monotonic_ns()
                trig.send(b"T%d" % k)
                hand.send(b"R%d" % k)
                pending = [trig, hand, udp]
                while pending:
                    still = []
                    for s in pending:
                        try:
                            s.recv_into(buf)
                        except BlockingIOError:
                            still.append(s)
                    pending = still
                    if pending:
                        poller.poll(50)
                lat[k] = time.monotonic_ns() - sent
        finally:
            os.close(r)
            proc.kill()
            proc.wait()
    return dist_us(lat[cycles // 10 :])


def bench_lockstep(cycles: int) -> dict[str, Any]:
    with SimRig(RigConfig(clock="lockstep", cameras=0, seed=0)) as rig:
        d = rig.devices()
        for dev in (d.hand, d.trigger, d.mocap):
            dev.configure()
            dev.activate()
        sources = [d.hand, d.trigger, d.mocap]
        poller = select.poll()
        for s in sources:
            poller.register(s.fileno(), select.POLLIN)
        idle = d.hand.idle_action
        t = time.perf_counter()
        for k in range(cycles):
            d.trigger.fire(k)
            d.hand.request_state(k)
            d.trigger.settle()
            d.hand.settle()
            pending = list(sources)
            while pending:
                pending = [s for s in pending if s.poll(k) is None]
                if pending:
                    poller.poll(50)
            d.hand.apply(idle, k)
        wall = time.perf_counter() - t
    return {"cycles": cycles, "wall_s": round(wall, 3), "cycles_per_s": round(cycles / wall, 1)}


def bench_render(width: int, height: int) -> dict[str, Any]:
    env = dict(os.environ, LP_NUM_THREADS=os.environ.get("LP_NUM_THREADS", "1"))
    env.setdefault("MUJOCO_GL", "egl")
    out = subprocess.run(
        [
            *(python(), "-m", "raas_drivers.sim.render", "--bench"),
            *("--width", str(width), "--height", str(height), "--frames", "10"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )
    if out.returncode != 0:
        return {"error": out.stderr[-500:]}
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench rig")
    p.add_argument("--cycles", type=int, default=3000)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--lockstep-cycles", type=int, default=1000)
    args = p.parse_args(argv)

    print(f"== realtime round trip at {args.rate:g} Hz, cameras off ({args.cycles} cycles)")
    peer = bench_peer(args.cycles, args.rate)
    print(fmt_dist("peer (bare sockets, no physics)", peer), flush=True)
    ours = bench_ours(args.cycles, args.rate)
    print(fmt_dist("ours (sim rig: ack+state+mocap)", ours), flush=True)
    print(f"ratio p50 ours/peer: {ratio(ours['p50'], peer['p50'])}")
    print("== lockstep 12.5 Hz, cameras off")
    lock = bench_lockstep(args.lockstep_cycles)
    print(f"{lock['cycles_per_s']} cycles/s ({lock['cycles_per_s'] / 12.5:.0f}x real time)")
    print("== render, one llvmpipe thread")
    renders = {}
    for w, h in ((200, 200), (640, 480)):
        renders[f"{w}x{h}"] = r = bench_render(w, h)
        print(f"{w}x{h}: {r.get('ms_per_frame_median')} ms/frame ({r.get('backend')})", flush=True)
    write_report(
        "rig",
        {
            "round_trip_us": {"ours": ours, "peer": peer, "rate_hz": args.rate},
            "ratio_p50": ratio(ours["p50"], peer["p50"]),
            "lockstep": lock,
            "render": renders,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
