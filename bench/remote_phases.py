"""Where a remote step's time goes: each phase of one step timed alone, in one process.

The robot's side is the real SessionController (lease gate, supervisor, RemoteStep), the
client's a real RemoteRobot, both on one inproc socket pair, driven one phase after the other
in one thread, so each phase's Python and ZeroMQ calls are timed without the other process or
the I/O threads running at the same time. What the round trip adds on top is the hops through
ZeroMQ's I/O threads and the kernel, which the peer (bare REQ/REP) pays alike.

  python -m bench remote -- --phases 5000 ...
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from raas_client.session import RemoteRobot
from raas_drivers.hand.shape import HandShape

from raas.core.observation import Observation, Step
from raas.leases import LeaseClaims, generate_private_key, sign_lease
from raas.safety import SafetyConfig, supervisor_for_hand
from raas.transport.config import TransportConfig
from raas.transport.leases import LeaseGate
from raas.transport.session import SessionController
from raas.transport.sockets import RobotSockets
from raas.transport.spaces import ObservationPacker

PHASES = (
    ("prologue", "robot: decide's prologue (messages, sessions, stream gate)"),
    ("observation", "robot: observation (fill the block, header, send)"),
    ("client_recv", "client: receive + decode the observation, Observation object"),
    ("client_drain", "client: is a newer observation queued? (ZMQ_EVENTS)"),
    ("client_act", "client: act (header, send the step block)"),
    ("robot_recv", "robot: receive the step (the wait's recv)"),
    ("robot_dispatch", "robot: decode, lease re-check, on_step"),
    ("published", "robot: published (the step report)"),
)


def _controller(tmp: Path, markers: tuple[str, ...]) -> tuple[SessionController, str]:
    key = generate_private_key()
    now = int(time.time())
    claims = LeaseClaims(
        iss="bench", sub="bench", robot="bench", rid=0, scope="control",
        nbf=now - 5, exp=now + 3600, jti="bench",
    )  # fmt: skip
    cfg = TransportConfig(
        robot="bench",
        control_endpoint=f"inproc://phases-{id(tmp)}",
        stream_endpoint=f"inproc://phases-stream-{id(tmp)}",
        plain=True,
        key_dir=tmp,
        liveness_timeout_s=30,
        action_wait_ms=1000,
    )
    hand = HandShape.shadow()
    packer = ObservationPacker(hand, markers)  # type: ignore[arg-type]
    sup = supervisor_for_hand(hand, SafetyConfig(), 0.08)  # type: ignore[arg-type]
    ctl = SessionController(
        RobotSockets(cfg, zmq.Context.instance()), LeaseGate("bench", key.public_key()), cfg,
        packer, rate_hz=12.5, decide_budget_ns=2_000_000_000, realtime=True, supervisor=sup,
    )  # fmt: skip
    return ctl, sign_lease(key, claims)


def measure(steps: int, markers: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """p10/p50/p90 (us) of each phase over `steps` steps (the first 200 are warm-up)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-phases-"))
    ctl, token = _controller(tmp, markers)
    socks = ctl.sockets
    robot = RemoteRobot(socks.control_endpoint, lease=token, timeout_s=30)
    obs = Observation()
    out = np.zeros(len(ctl.packer.actuators))
    stop = threading.Event()

    def serve() -> None:  # the daemon's loop while the client opens and arms
        while not stop.is_set():
            ctl.decide(obs, out)
            time.sleep(0.001)

    th = threading.Thread(target=serve)
    th.start()
    try:
        robot.open("control")
        robot.arm()
    finally:
        stop.set()
        th.join()
    if ctl.mode != "step":
        raise RuntimeError(f"the client did not arm (mode {ctl.mode})")
    step = Step(obs=obs, desired=out, applied=out.copy())
    action = np.zeros(len(ctl.packer.actuators))
    st = ctl.stepping
    times: dict[str, list[int]] = {name: [] for name, _ in PHASES}
    clock = time.perf_counter_ns
    limit = ctl.cfg.max_messages_per_cycle
    try:
        for k in range(steps + 200):
            obs.cycle = k
            t0 = clock()
            ctl._service(limit)
            ctl._check_sessions(t0)
            socks.serve_stream_auth()
            t1 = clock()
            t = st.timing
            t.cycle, t.action_ns, st.have_action = k, -1, False
            t.obs_sent_ns = st.observation(obs)
            t.deadline_ns = t.obs_sent_ns + 10**9
            t2 = clock()
            robot._pump(30.0)
            t3 = clock()
            robot.observation(timeout_s=30)  # the drain: the observation is already here
            t4 = clock()
            robot.act(k, action)
            t5 = clock()
            frames = socks.recv_wait(1000)
            t6 = clock()
            assert frames is not None
            ctl._dispatch(frames)
            ctl._service_inbox(limit)
            t7 = clock()
            if not st.have_action:
                raise RuntimeError(f"step {k}: the action was not taken")
            ctl.publish(step)
            t8 = clock()
            if k >= 200:
                marks = (t0, t1, t2, t3, t4, t5, t6, t7, t8)
                for i, (name, _) in enumerate(PHASES):
                    times[name].append(marks[i + 1] - marks[i])
    finally:
        robot.sock.close(0)
        socks.close()
    result: dict[str, dict[str, float]] = {}
    for name, _ in PHASES:
        v = np.sort(np.asarray(times[name])) / 1e3
        n = len(v)
        result[name] = {
            "p10": round(float(v[n // 10]), 2),
            "p50": round(float(v[n // 2]), 2),
            "p90": round(float(v[n * 9 // 10]), 2),
        }
    return result


def show(result: dict[str, Any]) -> None:
    total = 0.0
    for name, label in PHASES:
        d = result[name]
        total += d["p50"]
        print(f"  {label:62s} p10 {d['p10']:6.2f}  p50 {d['p50']:6.2f}  p90 {d['p90']:6.2f} us")
    print(f"  {'sum of the p50s':62s}            {total:6.2f} us")
