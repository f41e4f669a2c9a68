"""Remote access beside bare pyzmq, in one run.

round trip   remote step on loopback tcp: the robot side (SessionController.decide, the real
             code: packs observation k, sends it on the ROUTER, waits for the action) and a
             client process using RemoteRobot (observation -> act). Measured on the robot's
             side from observation sent to action received. Peer: bare pyzmq REQ/REP, the same
             bytes (the encoded observation one way, the encoded action back), no protocol.
             Both plain tcp (CurveZMQ is shown as a third row).
stream       observations encoded and published per second by the loop's StreamPublisher,
             one subscriber process draining.
subscribers  `raasd robot --sim --clock realtime --rate 1000` for --duration seconds with 0,
             then 8 subscriber processes: the loop's lateness p99.9 from its own statistics.

  python -m bench remote -- [--duration S] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import zmq
from raas_client.wire import Msg, encode
from raas_drivers.hand.config import (
    ACTUATOR_JOINT_INDEX,
    ACTUATOR_LIMITS,
    ACTUATOR_NAMES,
    EFFORT_LIMITS,
    JOINT_NAMES,
    default_idle_action,
)

from bench.common import dist_us, fmt_dist, python, ratio, write_report
from raas.core.observation import Observation, Step
from raas.leases import LeaseClaims, generate_private_key, sign_lease
from raas.safety import SafetyConfig, Supervisor
from raas.transport.config import TransportConfig
from raas.transport.leases import LeaseGate
from raas.transport.session import SessionController
from raas.transport.sockets import RobotSockets
from raas.transport.spaces import ObservationPacker
from raas.transport.stream import StreamPublisher

ROOT = Path(__file__).resolve().parents[1]
MARKERS = tuple(f"m{i}" for i in range(13))

CLIENT = r"""
import sys, numpy as np
from raas_client.session import RemoteRobot
r = RemoteRobot(sys.argv[1], server_key=sys.argv[2], lease=sys.argv[3], timeout_s=30)
r.open("control"); r.arm()
a = np.zeros(20)
while True:
    obs = r.observation(timeout_s=30)
    r.act(obs.cycle, a)
"""

PEER = r"""
import sys, zmq
ctx = zmq.Context(); s = ctx.socket(zmq.REP); s.connect(sys.argv[1])
reply = bytes.fromhex(sys.argv[2])
while True:
    s.recv_multipart(copy=False)
    s.send(reply)
"""

SUB = r"""
import sys, zmq
ctx = zmq.Context(); s = ctx.socket(zmq.SUB); s.connect(sys.argv[1]); s.subscribe(b"")
s.rcvhwm = 100000
while True:
    s.recv_multipart(copy=False)
"""


def _hand() -> Any:
    return SimpleNamespace(
        joint_names=JOINT_NAMES,
        actuator_names=ACTUATOR_NAMES,
        model="shadow_dexee",
        limits=ACTUATOR_LIMITS,
        idle_action=default_idle_action(),
    )


def _lease(tmp: Path) -> tuple[LeaseGate, str]:
    key = generate_private_key()
    now = int(time.time())
    claims = LeaseClaims(
        iss="bench", sub="bench", robot="bench", rid=0, scope="control",
        nbf=now - 5, exp=now + 3600, jti="bench",
    )  # fmt: skip
    return LeaseGate("bench", key.public_key()), sign_lease(key, claims)


def _supervisor(rate_hz: float) -> Supervisor:
    """The safety supervisor the loop gives every controller (defaults): a step reaches the hand
    only while it is armed, so the remote client's arm goes through it as on the robot."""
    return Supervisor(
        ACTUATOR_LIMITS,
        EFFORT_LIMITS,
        default_idle_action(),
        ACTUATOR_JOINT_INDEX,
        SafetyConfig(),
        1.0 / rate_hz,
    )


def bench_ours(steps: int, curve: bool) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    cfg = TransportConfig(
        robot="bench",
        control_endpoint="tcp://127.0.0.1:*",
        stream_endpoint="tcp://127.0.0.1:*",
        plain=not curve,
        key_dir=tmp,
        liveness_timeout_s=30,
        action_wait_ms=1000,
    )
    gate, token = _lease(tmp)
    socks = RobotSockets(cfg, zmq.Context())
    packer = ObservationPacker(_hand(), MARKERS)
    ctl = SessionController(
        socks,
        gate,
        cfg,
        packer,
        rate_hz=1000,
        decide_budget_ns=2_000_000_000,
        realtime=True,
        supervisor=_supervisor(1000),
    )
    client = subprocess.Popen(
        [python(), "-c", CLIENT, socks.control_endpoint, socks.public_key or "plain", token],
        cwd=ROOT,
    )
    obs = Observation()
    out = np.zeros(20)
    step = Step(obs=obs, desired=out, applied=out.copy())
    rtt: list[int] = []
    try:
        while ctl.mode != "step":  # the client opens and arms
            ctl.decide(obs, out)
            time.sleep(0.001)
        for k in range(steps + steps // 10):
            obs.cycle = k
            ok = ctl.decide(obs, out)
            if ok and k >= steps // 10:
                rtt.append(ctl.timing.action_ns - ctl.timing.obs_sent_ns)
            ctl.publish(step)
    finally:
        client.kill()
        client.wait()
        socks.close()
    return dist_us(rtt)


def bench_peer(steps: int) -> dict[str, float]:
    packer = ObservationPacker(_hand(), MARKERS)
    frames = encode(Msg.OBS, {"cycle": 1, "episode": 0, "stale": []}, packer.arrays)
    reply = b"".join(bytes(f) for f in encode(Msg.STEP, {"cycle": 1}, {"action": np.zeros(20)}))
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.bind("tcp://127.0.0.1:*")
    endpoint = req.getsockopt_string(zmq.LAST_ENDPOINT)
    peer = subprocess.Popen([python(), "-c", PEER, endpoint, reply.hex()])
    rtt: list[int] = []
    try:
        for k in range(steps + steps // 10):
            t0 = time.monotonic_ns()
            req.send_multipart(frames)
            req.recv()
            if k >= steps // 10:
                rtt.append(time.monotonic_ns() - t0)
    finally:
        peer.kill()
        peer.wait()
        req.close(0)
        ctx.term()
    return dist_us(rtt)


def bench_stream(seconds: float) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    cfg = TransportConfig(
        control_endpoint=f"ipc://{tmp}/c", stream_endpoint="tcp://127.0.0.1:*", plain=True
    )
    socks = RobotSockets(cfg, zmq.Context())
    sub = subprocess.Popen([python(), "-c", SUB, socks.stream_endpoint])
    pub = StreamPublisher(socks, ObservationPacker(_hand(), MARKERS), image_every=0)
    obs = Observation()
    step = Step(obs=obs, desired=np.zeros(20), applied=np.zeros(20))
    time.sleep(0.5)
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    try:
        while time.perf_counter() < end:
            for _ in range(1000):
                obs.cycle = n
                pub.publish(step)
                n += 1
        wall = time.perf_counter() - t0
    finally:
        sub.kill()
        sub.wait()
        socks.close()
    return {"published": n, "per_s": round(n / wall), "dropped": socks.dropped}


def bench_subscribers(n_subs: int, seconds: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-subs-"))
    stats = tmp / "stats.json"
    cmd = [
        *(python(), "-m", "raas.cli", "robot", "--sim", "--clock", "realtime"),
        *("--rate", "1000", "--cameras", "0", "--duration", str(seconds), "--quiet"),
        *("--control", f"ipc://{tmp}/c", "--stream", f"ipc://{tmp}/s", "--state-dir", str(tmp)),
        *("--stats-json", str(stats)),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    subs: list[subprocess.Popen[bytes]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "stream" in line and "control" in line:
                break
        subs = [subprocess.Popen([python(), "-c", SUB, f"ipc://{tmp}/s"]) for _ in range(n_subs)]
        proc.wait(timeout=seconds + 120)
    finally:
        for s in subs:
            s.kill()
            s.wait()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    data = json.loads(stats.read_text())
    return {"lateness_us": data["lateness_us"], "missed": data.get("missed"), "subs": n_subs}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench remote")
    p.add_argument("--steps", type=int, default=5000, help="remote steps per round-trip run")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per stream/1 kHz run")
    args = p.parse_args(argv)
    os.environ.setdefault("PYTHONPATH", str(ROOT))

    print(f"== remote step round trip, loopback tcp ({args.steps} steps)")
    peer = bench_peer(args.steps)
    print(fmt_dist("peer (bare pyzmq REQ/REP)", peer), flush=True)
    ours = bench_ours(args.steps, curve=False)
    print(fmt_dist("ours (remote step, plain)", ours), flush=True)
    curve = bench_ours(args.steps, curve=True)
    print(fmt_dist("ours (remote step, Curve)", curve), flush=True)
    r = ratio(ours["p50"], peer["p50"])
    print(f"ratio p50 ours/peer: {r} (target <= 1.3)")
    print(f"== observations encoded and published ({args.duration:g} s)")
    stream = bench_stream(args.duration)
    print(f"{stream['per_s']:,} observations/s (target >= 100,000)", flush=True)
    print(f"== 1 kHz loop lateness with 0 and 8 subscribers ({args.duration:g} s each)")
    zero = bench_subscribers(0, args.duration)
    print(fmt_dist("0 subscribers lateness", zero["lateness_us"]), flush=True)
    eight = bench_subscribers(8, args.duration)
    print(fmt_dist("8 subscribers lateness", eight["lateness_us"]), flush=True)
    lr = ratio(eight["lateness_us"]["p999"], zero["lateness_us"]["p999"])
    print(f"ratio p99.9 8 subs/0 subs: {lr} (target <= 1.1)")
    write_report(
        "remote",
        {
            "round_trip_us": {"ours": ours, "ours_curve": curve, "peer": peer},
            "ratio_p50": r,
            "stream": stream,
            "subscribers": {"zero": zero, "eight": eight, "ratio_p999": lr},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
