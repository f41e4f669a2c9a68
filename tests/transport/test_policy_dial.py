"""The robot dials the policy server (`serve` with `dial`), over real sockets on the lockstep
rig: a bound policy server's chunks drive the hand; a server pinned to another robot's key
refuses the handshake; a bad `dial` is refused with `bad_dial` and changes nothing; a bound
server killed mid-run leaves the hand held within the watchdog bound."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from raas_client.errors import RemoteError
from raas_client.policy_server import (
    PolicyListener,
    ServeStats,
    SimulatedLatency,
    ask_to_dial,
    serve,
)
from raas_client.session import RemoteRobot
from raas_client.wire import Msg, Topic

from tests.transport.harness import ROOT, LeaseIssuer, RobotDaemon, wait_for, watch_stream
from tests.transport.test_policy_serve import MAX_REPEATS, H, policy

pytestmark = [pytest.mark.system, pytest.mark.slow]


class BoundServer:
    """serve(bind=...) in a thread, until `stop` is set; its listener once bound."""

    def __init__(self, robot_key: str | list[str], **kw: Any) -> None:
        self.stop = threading.Event()
        self.bound = threading.Event()
        self.listener: PolicyListener | None = None
        self.stats: ServeStats | None = None
        self.error: BaseException | None = None

        def on_bound(listener: PolicyListener) -> None:
            self.listener = listener
            self.bound.set()

        def run() -> None:
            try:
                self.stats = serve(
                    policy,
                    H,
                    bind="tcp://127.0.0.1:*",
                    robot_key=robot_key,
                    on_bound=on_bound,
                    should_stop=self.stop.is_set,
                    **kw,
                )
            except BaseException as exc:  # the test reports it
                self.error = exc
                self.bound.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.bound.wait(10) and self.listener is not None, self.error

    @property
    def endpoint(self) -> str:
        assert self.listener is not None
        return self.listener.endpoint

    @property
    def key(self) -> str:
        assert self.listener is not None
        return self.listener.public_key.decode("ascii")

    def finish(self) -> ServeStats:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()
        assert self.error is None, self.error
        assert self.stats is not None
        return self.stats


def test_the_robot_dials_a_bound_policy_server(daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
    server = BoundServer(daemon.key, latency=SimulatedLatency(30, 10, seed=1))  # ~1.5 periods
    watcher, stream = watch_stream(daemon, issuer, (Topic.STEP, Topic.EVENT))
    r = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    started: list[dict[str, Any]] = []

    def seen_start() -> bool:
        watcher.heartbeat()
        while (got := stream.recv(timeout_s=0)) is not None:
            if got[0] == "event" and got[1].get("kind") == "serve_started":
                started.append(got[1])
        return bool(started)

    try:
        r.open("control")
        got = ask_to_dial(r, server.endpoint, server.key, H)
        assert got["mode"] == "serve" and got["dial"] == server.endpoint and got["horizon"] == H
        # the stream (and a recording) names the dialled server: its endpoint and public key
        assert wait_for(seen_start, 10)
        assert started[0]["dial"] == server.endpoint and started[0]["server_key"] == server.key
        assert started[0]["horizon"] == H and started[0]["session"]
        # the researcher's session owns the serving: its status requests are its heartbeats
        assert wait_for(lambda: (r.status().get("serve") or {}).get("chunks", 0) >= 20, 30)
        summary = r.request(Msg.STOP)["summary"]
    finally:
        r.close()
        watcher.close()
    stats = server.finish()
    assert stats.refused == 0 and stats.refused_peers == 0 and stats.chunks >= 20, stats
    assert summary["dialled"] == server.endpoint
    assert summary["chunks"] >= 20 and summary["cycles_covered"] > 10
    assert summary["fallbacks"] == 0  # no cycle uncovered once the first chunk came
    assert all(n == 0 for n in summary["refused"].values()), summary["refused"]
    assert summary["age_cycles_max"] is not None and 0 <= summary["age_cycles_max"] < H


def test_a_bound_server_refuses_another_robot(daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
    other_robot = zmq.curve_keypair()[0].decode("ascii")
    server = BoundServer(other_robot)
    r = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        r.open("control")
        ask_to_dial(r, server.endpoint, server.key, H)
        assert server.listener is not None
        listener = server.listener
        assert wait_for(lambda: listener.pin.refused >= 1, 20)
        # the robot keeps trying; the hand holds, waiting for a first chunk (not a fallback)
        assert wait_for(lambda: r.status()["serve"]["cycles_before_first_chunk"] > 10, 20)
        st = r.status()["serve"]
        assert st["chunks"] == 0 and st["fallbacks"] == 0
        r.request(Msg.STOP)
    finally:
        r.close()
    stats = server.finish()
    assert stats.chunks == 0 and stats.refused_peers >= 1
    assert stats.reason == "stopped"  # it never heard from a robot it admits


def test_a_bound_server_outlives_the_robot_hanging_up(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    """The serving ends while a chunk is being computed: the robot closes its socket, and the
    finished chunk has nowhere to go. It is counted as unsent, not waited on forever (a bound
    DEALER without a peer blocks a send)."""
    server = BoundServer(daemon.key, latency=SimulatedLatency(100, 0))
    r = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        r.open("control")
        ask_to_dial(r, server.endpoint, server.key, H)
        assert wait_for(lambda: (r.status().get("serve") or {}).get("chunks", 0) >= 1, 30)
        r.request(Msg.STOP)  # a chunk is being computed (100 ms, 5 cycles)
    finally:
        r.close()
    time.sleep(1.0)  # it finished after the robot hung up
    stats = server.finish()
    assert stats.unsent >= 1 and stats.chunks >= 1, stats


@pytest.mark.parametrize(
    ("dial", "names"),
    [
        ("tcp://127.0.0.1:43001", "dial must be a map"),
        ({"endpoint": "ipc:///tmp/x", "server_key": "k" * 40}, "dial.endpoint"),
        ({"endpoint": "tcp://127.0.0.1", "server_key": "k" * 40}, "dial.endpoint"),
        ({"endpoint": "tcp://*:43001", "server_key": "k" * 40}, "dial.endpoint"),
        ({"endpoint": "tcp://127.0.0.1:0", "server_key": "k" * 40}, "dial.endpoint"),
        ({"endpoint": "tcp://127.0.0.1:43001", "server_key": "short"}, "dial.server_key"),
        ({"endpoint": "tcp://127.0.0.1:43001", "server_key": "~" * 40}, "dial.server_key"),
        ({"endpoint": "tcp://127.0.0.1:43001"}, "dial.server_key"),
    ],
)
def test_a_bad_dial_is_refused_and_changes_nothing(
    daemon: RobotDaemon, issuer: LeaseIssuer, dial: object, names: str
) -> None:
    r = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        r.open("control")
        armed = r.status()["safety"]["transitions"].get("armed", 0)
        with pytest.raises(RemoteError) as exc:
            r.request(Msg.SERVE, {"horizon": H, "dial": dial})
        assert exc.value.code == "bad_dial"
        assert names in exc.value.message
        st = r.status()
        assert st["mode"] == "hold"  # not serving, and the supervisor was not armed
        assert st["safety"]["transitions"].get("armed", 0) == armed
    finally:
        r.close()


_BOUND = re.compile(r"bound (\S+) server key (\S+)")


def test_a_bound_server_killed_mid_run_leaves_the_hand_held(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    cmd = [
        sys.executable,
        "-m",
        "raas_client.cli",
        "serve-policy",
        "tests.transport.test_policy_serve:policy",
        "--bind",
        "tcp://127.0.0.1:*",
        "--robot-key",
        daemon.key,
        "--chunk",
        str(H),
        "--simulate-latency",
        "40,10",
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=dict(os.environ), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    r = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        found = _BOUND.search(line)
        assert found, line
        r.open("control")
        ask_to_dial(r, found[1], found[2], H)
        assert wait_for(lambda: (r.status().get("serve") or {}).get("chunks", 0) >= 5, 30)
        proc.send_signal(signal.SIGKILL)  # mid-chunk: its sleep is most of its time
        proc.wait(10)
        # the researcher's session stays (its status requests are heartbeats): the watchdog holds
        # the hand once the last chunk's rows ran out and N+1 cycles went without a row
        assert wait_for(lambda: r.status()["safety"]["state"] == "hold", 10)
        st = r.status()
        assert st["safety"]["reason"] == "client_late"
        assert st["mode"] == "hold"
        assert 1 <= st["serve"]["fallbacks"] <= MAX_REPEATS + 1
        assert st["serve"]["reason"].startswith("hold")
        assert st["controlled"]  # the session that owned the serving is still open
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        r.close()


def test_serve_needs_robot_or_bind_and_a_robot_key() -> None:
    with pytest.raises(ValueError, match="bind"):
        serve(policy, H)  # neither robot nor bind
    with pytest.raises(ValueError, match="bind"):
        serve(policy, H, "tcp://127.0.0.1:1", bind="tcp://127.0.0.1:*")
    with pytest.raises(ValueError, match="robot_key"):
        serve(policy, H, bind="tcp://127.0.0.1:*")
    with pytest.raises(ValueError, match="tcp"):
        serve(policy, H, bind="ipc:///tmp/x", robot_key="k" * 40)


def test_dial_policy_and_serve_policy_bind_from_a_shell(
    daemon: RobotDaemon, issuer: LeaseIssuer, tmp_path: Path
) -> None:
    """`raas serve-policy --bind` on the GPU machine, `raas dial-policy` from the researcher's:
    the hand is served for --duration, then the researcher's `stop` reply is printed."""
    cli = [sys.executable, "-m", "raas_client.cli"]
    server = subprocess.Popen(
        [*cli, "serve-policy", "tests.transport.test_policy_serve:policy", "--bind",
         "tcp://127.0.0.1:*", "--robot-key", daemon.key, "--chunk", str(H), "--key-dir",
         str(tmp_path)],
        cwd=ROOT, env=dict(os.environ), stderr=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        found = _BOUND.search(server.stderr.readline().decode())
        assert found and found[2] == (tmp_path / "server.public").read_text().strip()
        dial = subprocess.run(
            [*cli, "dial-policy", daemon.control, "--server-key", daemon.key, "--lease",
             issuer.issue(), "--policy", found[1], "--policy-key", found[2], "--chunk", str(H),
             "--duration", "2"],
            cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert dial.returncode == 0, dial.stderr
        summary = json.loads(dial.stdout.strip().splitlines()[-1])
        assert summary["dialled"] == found[1] and summary["reason"] == "stopped by client"
        assert summary["chunks"] > 10 and summary["fallbacks"] == 0
        # the robot stopped sending: the server ends on its own after its timeout and says why
        out, _ = server.communicate(timeout=30)
        stats = json.loads(out.decode().strip().splitlines()[-1])
        assert stats["chunks"] >= summary["chunks"] and stats["refused_peers"] == 0
        assert stats["reason"] == "RobotTimeoutError: no observation"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()


def test_serve_policy_keep_serving_serves_one_session_after_another(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    """`--keep-serving` with two `--robot-key`s: two `raas dial-policy` runs one after the other
    are both served by the one server; SIGTERM ends it gracefully with its JSON line."""
    cli = [sys.executable, "-m", "raas_client.cli"]
    other = zmq.curve_keypair()[0].decode("ascii")
    server = subprocess.Popen(
        [*cli, "serve-policy", "tests.transport.test_policy_serve:policy", "--bind",
         "tcp://127.0.0.1:*", "--robot-key", other, "--robot-key", daemon.key, "--chunk", str(H),
         "--keep-serving"],
        cwd=ROOT, env=dict(os.environ), stderr=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        found = _BOUND.search(server.stderr.readline().decode())
        assert found
        for _ in range(2):
            dial = subprocess.run(
                [*cli, "dial-policy", daemon.control, "--server-key", daemon.key, "--lease",
                 issuer.issue(), "--policy", found[1], "--policy-key", found[2], "--chunk",
                 str(H), "--duration", "1"],
                cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60,
                check=False,
            )  # fmt: skip
            assert dial.returncode == 0, dial.stderr
            summary = json.loads(dial.stdout.strip().splitlines()[-1])
            assert summary["chunks"] > 5 and summary["fallbacks"] == 0, summary
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
        assert server.returncode == 0
        stats = json.loads(out.decode().strip().splitlines()[-1])
        assert stats["sessions"] == 2 and stats["reason"] == "stopped", stats
        assert stats["refused_peers"] == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
