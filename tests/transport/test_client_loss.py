"""A client killed with SIGKILL mid-session: the robot holds within the liveness timeout plus
one cycle, and the controller slot is free again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from raas_client.wire import Topic

from tests.transport.harness import ROOT, LeaseIssuer, RobotDaemon, start_daemon, watch_stream

pytestmark = [pytest.mark.system, pytest.mark.slow]

RATE = 20.0
LIVENESS_S = 0.5  # the harness's --liveness

CLIENT = """
import sys, numpy as np
from raas_client.session import RemoteRobot
r = RemoteRobot(sys.argv[1], server_key=sys.argv[2], lease=sys.argv[3])
r.open("control"); r.arm()
obs = r.observation()
idle = np.array(r.info["spaces"]["action"]["idle"])
n = 0
while True:
    r.act(obs.cycle, idle)
    obs = r.observation(after=obs.cycle)
    n += 1
    if n == 10:
        print("stepping", flush=True)
"""


@pytest.fixture(scope="module")
def rt_daemon(
    tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer
) -> Iterator[RobotDaemon]:
    d = start_daemon(Path(tmp_path_factory.mktemp("rt")), issuer, clock="realtime", rate=RATE)
    yield d
    d.stop()


def test_sigkilled_client_makes_the_robot_hold(rt_daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, rt_daemon.control, rt_daemon.key, issuer.issue()],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    watcher = None
    try:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "stepping"
        watcher, stream = watch_stream(rt_daemon, issuer, (Topic.STEP, Topic.EVENT))
        assert watcher.status()["mode"] == "step"
        os.kill(client.pid, signal.SIGKILL)
        killed = time.monotonic()
        closed = None
        held_cycle = None
        while time.monotonic() < killed + 5 and held_cycle is None:
            watcher.heartbeat()
            got = stream.recv(timeout_s=0.2)
            if got is None:
                continue
            topic, h, _ = got
            if topic == "event" and h["kind"] == "session_closed":
                closed = h
            elif topic == "step" and closed is not None and h["mode"] == "hold":
                held_cycle = h
        assert closed is not None, "the robot never closed the lost client's session"
        assert closed["reason"] == "liveness"
        # On the daemon's own clock: from the client's last message to the hold.
        silent_s = (closed["closed_ns"] - closed["last_seen_ns"]) / 1e9
        assert silent_s <= LIVENESS_S + 1.0 / RATE + 0.05, silent_s
        assert held_cycle is not None and held_cycle["holder"] is None
        # Seen from here too (wide margin: the test's own scheduling adds to it).
        assert time.monotonic() - killed < LIVENESS_S + 1.0
        st = watcher.status()
        assert st["controlled"] is False and st["mode"] == "hold"
        assert st["sessions_closed"].get("liveness", 0) >= 1
    finally:
        client.kill()
        client.wait()
        if watcher is not None:
            stream.close()
            watcher.close()
