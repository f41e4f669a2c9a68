"""Remote access beside bare pyzmq, in one run.

round trip   remote step on loopback tcp: the robot side (SessionController.decide, the real
             code: packs observation k, sends it on the ROUTER, waits for the action) and a
             client process using RemoteRobot (observation -> act). Measured on the robot's
             side from observation sent to action received. Peer: bare pyzmq REQ/REP, the same
             bytes (the encoded observation one way, the encoded action back), no protocol,
             over the same transport: plain tcp beside plain tcp, CurveZMQ beside CurveZMQ.
             Twice: a hot loop (the next observation as soon as the action is in), and paced
             at 12.5 Hz (80 ms idle between observations, as the robot runs), both sides.
stream       observations encoded and published per second by the loop's StreamPublisher,
             one subscriber process draining; peer: the same frames, pre-encoded, sent by bare
             pyzmq PUB as fast as it goes.
subscribers  `raasd robot --sim --clock realtime --rate 1000` for --duration seconds with 0,
             then 8 subscriber processes: the loop's lateness p99.9 from its own statistics.

phases       with --phases N: each phase of one step timed alone in one process (inproc), the
             robot's and the client's real code (bench/remote_phases.py).

cpus         with --cpus LIST: the benchmark and every process it starts (both sides, ours and
             the peer alike) run on those CPUs only (os.sched_setaffinity, inherited): on one
             CPU a round trip is the CPU work of both sides in sequence, without the cross-CPU
             wake-ups that make the 2-CPU hot figures bimodal (docs/performance.md).

  python -m bench remote -- [--duration S] [--steps N] [--paced-steps N] [--no-subscribers]
                            [--phases N] [--hot-only] [--cpus LIST]
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
from typing import Any

import numpy as np
import zmq
from raas_client.wire import Msg, Topic, encode
from raas_drivers.hand.shape import HandShape

from bench import remote_phases
from bench.common import dist_us, fmt_dist, python, ratio, write_report
from raas.core.observation import Observation, Step
from raas.leases import LeaseClaims, generate_private_key, sign_lease
from raas.safety import SafetyConfig, supervisor_for_hand
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
ctx = zmq.Context(); s = ctx.socket(zmq.REP)
if sys.argv[3] != "plain":
    s.curve_publickey, s.curve_secretkey = zmq.curve_keypair()
    s.curve_serverkey = sys.argv[3].encode()
s.connect(sys.argv[1])
reply = [bytes.fromhex(h) for h in sys.argv[2].split(",")]
while True:
    s.recv_multipart(copy=False)
    s.send_multipart(reply)
"""

PERIOD_S = 0.08  # 12.5 Hz

SUB = r"""
import sys, zmq
ctx = zmq.Context(); s = ctx.socket(zmq.SUB); s.connect(sys.argv[1]); s.subscribe(b"")
s.rcvhwm = 100000
while True:
    s.recv_multipart(copy=False)
"""


def _hand() -> HandShape:
    return HandShape.shadow()


def _pace(next_t: float, period_s: float) -> float:
    """Sleep until next_t (a perf_counter time) when pacing; the next deadline."""
    if period_s <= 0:
        return next_t
    left = next_t - time.perf_counter()
    if left > 0:
        time.sleep(left)
    return next_t + period_s


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _lease(tmp: Path) -> tuple[LeaseGate, str]:
    key = generate_private_key()
    now = int(time.time())
    claims = LeaseClaims(
        iss="bench", sub="bench", robot="bench", rid=0, scope="control",
        nbf=now - 5, exp=now + 3600, jti="bench",
    )  # fmt: skip
    return LeaseGate("bench", key.public_key()), sign_lease(key, claims)


def bench_ours(steps: int, curve: bool, period_s: float = 0.0) -> dict[str, float]:
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
    hand = _hand()
    packer = ObservationPacker(hand, MARKERS)
    rate = 1.0 / period_s if period_s > 0 else 1000.0
    sup = supervisor_for_hand(hand, SafetyConfig(), 1.0 / rate)  # type: ignore[arg-type]
    ctl = SessionController(
        socks, gate, cfg, packer,
        rate_hz=rate, decide_budget_ns=2_000_000_000, realtime=True, supervisor=sup,
    )  # fmt: skip
    client = subprocess.Popen(
        [python(), "-c", CLIENT, socks.control_endpoint, socks.public_key or "plain", token],
        cwd=ROOT,
    )
    obs = Observation()
    out = np.zeros(len(hand.actuator_names))
    step = Step(obs=obs, desired=out, applied=out.copy())
    rtt: list[int] = []
    warm = min(steps // 10, 50)
    try:
        while ctl.mode != "step":  # the client opens and arms
            ctl.decide(obs, out)
            time.sleep(0.001)
        next_t = time.perf_counter()
        for k in range(steps + warm):
            next_t = _pace(next_t, period_s)
            obs.cycle = k
            ok = ctl.decide(obs, out)
            if ok and k >= warm and ctl.timing.action_ns >= 0:
                rtt.append(ctl.timing.action_ns - ctl.timing.obs_sent_ns)
            ctl.publish(step)
    finally:
        client.kill()
        client.wait()
        socks.close()
    return dist_us(rtt)


def bench_peer(steps: int, curve: bool, period_s: float = 0.0) -> dict[str, float]:
    """Bare pyzmq REQ/REP carrying our bytes: the observation's frames (header and block) one
    way, the step's frames back, over the same transport (Curve or plain)."""
    packer = ObservationPacker(_hand(), MARKERS)
    fields = {"cycle": 1, "episode": 0, "stale": [], "safety": "running", "safety_reason": "ok"}
    frames = [
        bytes(f)
        for f in encode(Msg.OBS, fields, layout=packer.layouts["obs"], block=packer.obs_block)
    ]
    step_layout = packer.layouts["step"]
    action, _ = step_layout.allocate()
    reply = encode(Msg.STEP, {"cycle": 1}, layout=step_layout, block=action)
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    server_key = "plain"
    if curve:
        public, secret = zmq.curve_keypair()
        req.curve_server = True
        req.curve_publickey, req.curve_secretkey = public, secret
        server_key = public.decode()
    req.bind("tcp://127.0.0.1:*")
    endpoint = req.getsockopt_string(zmq.LAST_ENDPOINT)
    hexed = ",".join(bytes(f).hex() for f in reply)
    peer = subprocess.Popen([python(), "-c", PEER, endpoint, hexed, server_key])
    rtt: list[int] = []
    warm = min(steps // 10, 50)
    try:
        next_t = time.perf_counter()
        for k in range(steps + warm):
            next_t = _pace(next_t, period_s)
            t0 = time.monotonic_ns()
            req.send_multipart(frames)
            req.recv_multipart(copy=False)
            if k >= warm:
                rtt.append(time.monotonic_ns() - t0)
    finally:
        peer.kill()
        peer.wait()
        req.close(0)
        ctx.term()
    return dist_us(rtt)


def bench_stream(seconds: float, peer: bool = False) -> dict[str, float]:
    """Ours: StreamPublisher.publish (fill the block, pack the header, send) per observation.
    Peer (`peer=True`): the same frames, encoded once, sent by bare pyzmq."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    cfg = TransportConfig(
        control_endpoint=f"ipc://{tmp}/c", stream_endpoint="tcp://127.0.0.1:*", plain=True
    )
    socks = RobotSockets(cfg, zmq.Context())
    sub = subprocess.Popen([python(), "-c", SUB, socks.stream_endpoint])
    hand = _hand()
    pub = StreamPublisher(socks, ObservationPacker(hand, MARKERS), image_every=0)
    obs = Observation()
    n_act = len(hand.actuator_names)
    step = Step(obs=obs, desired=np.zeros(n_act), applied=np.zeros(n_act))
    pub.publish(step)
    frames = [Topic.STEP, *(bytes(f) for f in _last_frames(pub, step))]
    time.sleep(0.5)
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    try:
        while time.perf_counter() < end:
            for _ in range(1000):
                if peer:
                    socks.stream.send_multipart(frames, zmq.NOBLOCK)
                else:
                    obs.cycle = n
                    pub.publish(step)
                n += 1
        wall = time.perf_counter() - t0
    finally:
        sub.kill()
        sub.wait()
        socks.close()
    return {"published": n, "per_s": round(n / wall), "dropped": socks.dropped}


def _last_frames(pub: StreamPublisher, step: Step) -> list[Any]:
    """The frames publish() sends for `step` (header and block), captured once."""
    sent: list[Any] = []
    real = pub.sockets.publish3

    def capture(topic: bytes, header: bytes, body: Any) -> None:
        sent.extend((header, body))

    pub.sockets.publish3 = capture  # type: ignore[method-assign]
    try:
        pub.publish(step)
    finally:
        pub.sockets.publish3 = real  # type: ignore[method-assign]
    if len(sent) != 2:
        raise RuntimeError(f"publish() sent {len(sent)} frames after the topic, not 2")
    return sent


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
    p.add_argument("--steps", type=int, default=5000, help="remote steps per hot-loop run")
    p.add_argument(
        "--paced-steps", type=int, default=500, help="remote steps per 12.5 Hz run (80 ms each)"
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per stream/1 kHz run")
    p.add_argument("--no-subscribers", action="store_true", help="skip the 1 kHz runs")
    p.add_argument(
        "--phases",
        type=int,
        default=0,
        metavar="N",
        help="first, time each phase of a step alone over N steps in one process (0: skip)",
    )
    p.add_argument(
        "--hot-only",
        action="store_true",
        help="only the hot-loop round trips (no 12.5 Hz runs, stream or subscribers)",
    )
    p.add_argument(
        "--cpus",
        default="",
        metavar="LIST",
        help="run both sides (and the peer) on these CPUs only, e.g. 0 or 0,1",
    )
    args = p.parse_args(argv)
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    load = {"before": loadavg()}
    print(f"load average (1, 5, 15 min): {load['before']}")
    if args.cpus:
        print(f"on CPUs {sorted(os.sched_getaffinity(0))} only (both sides, ours and the peer)")

    phases: dict[str, Any] = {}
    if args.phases:
        print(f"== where a step's time goes: each phase alone, one process ({args.phases} steps)")
        phases = remote_phases.measure(args.phases, MARKERS)
        remote_phases.show(phases)
    rt: dict[str, Any] = {}
    print(f"== remote step round trip, loopback tcp, hot loop ({args.steps} steps)")
    for name, curve in (("plain", False), ("curve", True)):
        peer = bench_peer(args.steps, curve)
        print(fmt_dist(f"peer (bare REQ/REP, {name})", peer), flush=True)
        ours = bench_ours(args.steps, curve)
        print(fmt_dist(f"ours (remote step, {name})", ours), flush=True)
        r = ratio(ours["p50"], peer["p50"])
        print(f"ratio p50 ours/peer ({name}): {r} (target <= 1.3)")
        rt[f"hot_{name}"] = {"ours": ours, "peer": peer, "ratio_p50": r}
    if args.hot_only:
        load["after"] = loadavg()
        print(f"load average (1, 5, 15 min): {load['after']}")
        write_report(
            "remote",
            {"round_trip_us": rt, "phases_us": phases, "load": load, "cpus": args.cpus or None},
        )
        return 0
    n = args.paced_steps
    print(f"== remote step round trip at 12.5 Hz, Curve ({n} steps, 80 ms idle between)")
    peer = bench_peer(n, True, PERIOD_S)
    print(fmt_dist("peer (bare REQ/REP, curve)", peer), flush=True)
    ours = bench_ours(n, True, PERIOD_S)
    print(fmt_dist("ours (remote step, curve)", ours), flush=True)
    r50, r99 = ratio(ours["p50"], peer["p50"]), ratio(ours["p99"], peer["p99"])
    print(f"ratio p50 ours/peer: {r50} (target <= 1.5); p99: {r99} (target <= 2)")
    rt["paced_curve"] = {"ours": ours, "peer": peer, "ratio_p50": r50, "ratio_p99": r99}
    print(f"== observations encoded and published ({args.duration:g} s each)")
    stream_peer = bench_stream(args.duration, peer=True)
    print(f"peer (bare pyzmq PUB, same frames): {stream_peer['per_s']:,}/s", flush=True)
    stream = bench_stream(args.duration)
    sr = ratio(stream["per_s"], stream_peer["per_s"])
    print(f"ours: {stream['per_s']:,} observations/s (target >= 100,000); ours/peer {sr}")
    subs: dict[str, Any] = {}
    if not args.no_subscribers:
        print(f"== 1 kHz loop lateness with 0 and 8 subscribers ({args.duration:g} s each)")
        zero = bench_subscribers(0, args.duration)
        print(fmt_dist("0 subscribers lateness", zero["lateness_us"]), flush=True)
        eight = bench_subscribers(8, args.duration)
        print(fmt_dist("8 subscribers lateness", eight["lateness_us"]), flush=True)
        lr = ratio(eight["lateness_us"]["p999"], zero["lateness_us"]["p999"])
        print(f"ratio p99.9 8 subs/0 subs: {lr} (target <= 1.1)")
        subs = {"zero": zero, "eight": eight, "ratio_p999": lr}
    load["after"] = loadavg()
    print(f"load average (1, 5, 15 min): {load['after']}")
    write_report(
        "remote",
        {
            "round_trip_us": rt,
            "stream": {"ours": stream, "peer": stream_peer, "ratio": sr},
            "subscribers": subs,
            "phases_us": phases,
            "load": load,
            "cpus": args.cpus or None,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
