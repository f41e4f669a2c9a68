"""The stream's lease gate (docs/protocol.md, Stream authorization): what it costs the loop and
how long a subscriber waits to be let in.

    python -m bench stream_auth [-- --rate 1000 --subscribers 20 --cycles 20000 --rebinds 30]

ours   RobotSockets' ZAP handler, served by the loop once per cycle (`serve_stream_auth`):
       `idle_cost_us` its cost in a cycle with nothing waiting (every cycle pays it);
       `admit_ms` a subscriber's connect to its first message, the loop cycling at --rate;
       `rebind_us` dropping every connection when an admitted session ends (unbind + bind).
peer   pyzmq's ThreadAuthenticator (a Python thread, which the loop process must not have),
       allowing the same keys: `admit_ms` the same connect-to-first-message.
The loop here only publishes one small message per cycle and serves the gate; the sockets and
the handshakes are real (loopback tcp, CurveZMQ).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from bench.common import dist_us, fmt_dist, ratio, write_report
from raas.transport.config import TransportConfig
from raas.transport.sockets import RobotSockets


def _admit(
    pub_send: Any, serve: Any, endpoint: str, server_key: bytes, keys: Any, rate: float
) -> int:
    """Connect one SUB with `keys`, cycle (publish, serve) at `rate` until it receives: ns."""
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.curve_publickey, sub.curve_secretkey = keys
    sub.curve_serverkey = server_key
    sub.subscribe(b"")
    period = 1.0 / rate
    t0 = time.perf_counter_ns()
    sub.connect(endpoint)
    nxt = time.perf_counter()
    try:
        while True:
            serve()
            pub_send()
            if sub.poll(0):
                return time.perf_counter_ns() - t0
            nxt += period
            time.sleep(max(0.0, nxt - time.perf_counter()))
            if time.perf_counter_ns() - t0 > 10e9:
                raise RuntimeError("a subscriber was never let in")
    finally:
        sub.close(0)


def ours(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-auth-"))
    cfg = TransportConfig(
        control_endpoint="tcp://127.0.0.1:*", stream_endpoint="tcp://127.0.0.1:*", key_dir=tmp
    )
    s = RobotSockets(cfg, zmq.Context())
    assert s.keys is not None and s.stream_gate is not None
    try:
        idle = []
        for _ in range(args.cycles):
            t = time.perf_counter_ns()
            s.serve_stream_auth()
            idle.append(time.perf_counter_ns() - t)
        admit = []
        for i in range(args.subscribers):
            keys = zmq.curve_keypair()
            s.allow_subscriber(f"s{i}", zmq.utils.z85.decode(keys[0]))
            admit.append(
                _admit(
                    lambda: s.publish(b"step", [b"x"]),
                    s.serve_stream_auth,
                    s.stream_endpoint,
                    s.keys.public,  # type: ignore[union-attr]
                    keys,
                    args.rate,
                )
            )
            s.forget_subscriber(f"s{i}")
            s.serve_stream_auth()  # its session ended: the rebind (not timed here)
        rebind = []
        for i in range(args.rebinds):
            s.stream_gate.admitted.add(b"%032d" % i)
            s.forget_subscriber("none")
            s.stream_gate._forgotten = True
            t = time.perf_counter_ns()
            s.serve_stream_auth()
            rebind.append(time.perf_counter_ns() - t)
            time.sleep(0.005)
        return {
            "idle_cost_us": dist_us(idle),
            "admit_ms": {k: v / 1e3 for k, v in dist_us(admit).items() if k != "n"}
            | {"n": len(admit)},
            "rebind_us": dist_us(rebind),
        }
    finally:
        s.close()


def peer(args: argparse.Namespace) -> dict[str, Any]:
    ctx = zmq.Context()
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
    public, secret = zmq.curve_keypair()
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    pub.curve_secretkey, pub.curve_publickey, pub.curve_server = secret, public, True
    pub.bind("tcp://127.0.0.1:*")
    endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        admit = [
            _admit(
                lambda: pub.send_multipart([b"step", b"x"], zmq.NOBLOCK),
                lambda: None,
                endpoint,
                public,
                zmq.curve_keypair(),
                args.rate,
            )
            for _ in range(args.subscribers)
        ]
        return {
            "admit_ms": {k: v / 1e3 for k, v in dist_us(admit).items() if k != "n"}
            | {"n": len(admit)}
        }
    finally:
        pub.close(0)
        auth.stop()
        ctx.term()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench stream_auth")
    p.add_argument("--rate", type=float, default=1000.0, help="the loop's cycles per second")
    p.add_argument("--subscribers", type=int, default=20)
    p.add_argument("--cycles", type=int, default=20000, help="idle cycles timed")
    p.add_argument("--rebinds", type=int, default=30)
    args = p.parse_args(argv)
    print(f"== stream gate: loop at {args.rate:g} Hz, {args.subscribers} subscribers")
    o, q = ours(args), peer(args)
    print(fmt_dist("ours idle cycle cost", o["idle_cost_us"]))
    print(fmt_dist("ours rebind (session end)", o["rebind_us"]))
    for label, d in (
        ("ours admit", o["admit_ms"]),
        ("peer ThreadAuthenticator admit", q["admit_ms"]),
    ):
        print(
            f"{label:<34} p50 {d['p50']:>7.1f}  p99 {d['p99']:>7.1f}  p99.9 {d['p999']:>7.1f}  "
            f"max {d['max']:>7.1f} ms  (n={d['n']})"
        )
    r = ratio(o["admit_ms"]["p50"], q["admit_ms"]["p50"])
    print(f"admit p50 ours/peer: {r}")
    write_report(
        "stream_auth",
        {"args": vars(args), "ours": o, "peer": q, "admit_p50_ratio": r},
    )
    return 0
