"""Policy servers over real sockets on the lockstep rig: a served policy drives the hand through
action chunks; bad chunks (another session, a bad cycle, wrong size, NaN) are refused and counted;
a server killed mid-chunk leaves the hand held within the watchdog bound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from raas_client.errors import RemoteError
from raas_client.policy_server import SimulatedLatency, serve
from raas_client.session import Observation, RemoteRobot
from raas_client.wire import Msg, Topic

from tests.transport.harness import ROOT, LeaseIssuer, RobotDaemon, wait_for

pytestmark = [pytest.mark.system, pytest.mark.slow]

H = 8
N = 20  # the simulated Shadow hand's actuators
MAX_REPEATS = 3  # loop.max_repeats of the simulated cell (docs/safety.md: N)


def policy(obs: Observation) -> np.ndarray:
    """A gentle chunk: the hand's first actuators nudged by 0.01 rad per row (clipped anyway)."""
    return np.tile(np.linspace(0.0, 0.07, H)[:, None], (1, N)) * 0.1


@pytest.mark.parametrize("workers", [1, 3])
def test_a_served_policy_drives_the_hand(
    daemon: RobotDaemon, issuer: LeaseIssuer, workers: int
) -> None:
    # the stream reaches open sessions only (docs/protocol.md, "Stream authorization")
    watcher = RemoteRobot(
        daemon.control, server_key=daemon.key, lease=issuer.issue(scope="observe", sub="watcher")
    )
    watcher.open("observe")
    # Subscribed to steps too, until the first one arrives: the stream is admitted then (an
    # observer's within about a second of `open`), so no chunk event can be missed.
    events = watcher.stream((Topic.STEP, Topic.EVENT))
    deadline = time.monotonic() + 30.0
    while (first := events.recv(1.0)) is None or first[0] != "step":
        assert time.monotonic() < deadline, "the observer's stream never arrived"
        watcher.heartbeat()
    events.sock.setsockopt(zmq.UNSUBSCRIBE, Topic.STEP)
    serving = threading.Event()

    def keep_watching() -> None:  # the observer session lives while the policy is served
        while not serving.wait(0.1):
            watcher.heartbeat()

    beats = threading.Thread(target=keep_watching, daemon=True)
    beats.start()
    try:
        stats = serve(
            policy,
            H,
            daemon.control,
            lease=issuer.issue(),
            server_key=daemon.key,
            max_chunks=20,
            latency=SimulatedLatency(30, 10, seed=1),  # ~1.5 periods at 50 Hz
            workers=workers,
        )
    finally:
        serving.set()
        beats.join(2)
    assert stats.chunks == 20 and stats.refused == 0, stats
    s = stats.summary
    assert s is not None and s["reason"] == "stopped by client"
    assert s["chunks"] == 20
    assert s["cycles_covered"] > 10  # the chunks decided the cycles after the first one
    assert s["age_cycles_max"] is not None and 0 <= s["age_cycles_max"] < H
    assert s["age_cycles_p50"] >= 1  # computed a cycle or more before it was applied
    assert s["refused"]["wrong_session"] == 0
    assert s["fallbacks"] == 0  # 30 +- 10 ms against H = 8 cycles of 20 ms: never uncovered
    # every accepted chunk's timing, on the stream (and so in the recording)
    chunks: list[dict[str, object]] = []
    done: dict[str, object] = {}
    while (got := events.recv(2.0)) is not None and not done:
        if got[0] != "event":
            continue  # a step queued before the unsubscription
        kind = got[1].get("kind")
        if kind == "chunk":
            chunks.append(got[1])
        elif kind == "serve_done":
            done = got[1]
    events.close()
    watcher.close()
    assert len(chunks) == 20 and done["chunks"] == 20
    used = sum(int(c["used"]) for c in chunks)  # type: ignore[call-overload]
    assert used == s["cycles_covered"]
    for c in chunks:
        assert int(c["used"]) + int(c["discarded"]) == H  # type: ignore[call-overload]
        assert int(c["arrival_cycle"]) >= int(c["cycle"])  # type: ignore[call-overload]
        assert int(c["latency_ns"]) > 0 and c["clock_offset_ns"] is not None  # type: ignore[call-overload]


def _open_serving(daemon: RobotDaemon, issuer: LeaseIssuer) -> tuple[RemoteRobot, str]:
    r = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    session = r.open("control")["session"]
    got = r.request(Msg.SERVE, {"horizon": H})
    assert got["mode"] == "serve" and got["horizon"] == H and got["n_actuators"] == N
    return r, str(session)


def test_bad_chunks_are_refused_and_counted(daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
    r, session = _open_serving(daemon, issuer)
    try:
        obs = r.observation()
        good = np.zeros((H, N))

        def send(**over: object) -> str:
            fields = {"session": session, "cycle": obs.cycle, "recv_ns": 1, "send_ns": 2}
            actions = over.pop("actions", good)
            fields.update(over)  # type: ignore[arg-type]
            with pytest.raises(RemoteError) as exc:
                r.request(Msg.CHUNK, fields, {"actions": actions})  # type: ignore[dict-item]
            assert exc.value.code == "bad_chunk"
            return exc.value.message

        assert send(session="someone-else").startswith("wrong_session")
        assert send(cycle=obs.cycle + 1000).startswith("future")
        assert send(cycle=-5).startswith("unsent")
        assert send(actions=np.zeros((H + 1, N))).startswith("wrong_size")
        assert send(actions=np.full((H, N), np.nan)).startswith("non_finite")
        assert send(cycle="7").startswith("bad_fields")
        refused = r.status()["serve"]["refused"]
        assert refused["wrong_session"] == 1 and refused["future"] == 1
        assert refused["unsent"] == 1 and refused["wrong_size"] == 1
        assert refused["non_finite"] == 1 and refused["bad_fields"] == 1
        # an observer cannot send chunks at all
        o = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue(scope="observe"))
        try:
            o.open("observe")
            with pytest.raises(RemoteError) as exc:
                o.request(Msg.CHUNK, {"session": session, "cycle": obs.cycle}, {"actions": good})
            assert exc.value.code == "not_controller"
        finally:
            o.close()
    finally:
        r.close()


def test_a_server_killed_mid_chunk_leaves_the_hand_held(
    daemon: RobotDaemon, issuer: LeaseIssuer, tmp_path: Path
) -> None:
    cmd = [
        sys.executable,
        "-m",
        "raas_client.cli",
        "serve-policy",
        "tests.transport.test_policy_serve:policy",
        "--robot",
        daemon.control,
        "--server-key",
        daemon.key,
        "--lease",
        issuer.issue(),
        "--chunk",
        str(H),
        "--simulate-latency",
        "40,10",
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    watcher = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        assert wait_for(lambda: (watcher.status().get("serve") or {}).get("chunks", 0) >= 5, 30)
        assert watcher.status()["mode"] == "serve"
        proc.send_signal(signal.SIGKILL)  # mid-chunk: its sleep is most of its time
        proc.wait(10)
        # held by the watchdog (N+1 cycles without a chunk row: client_late) or, at the latest,
        # by liveness (0.5 s without a message: client_lost); both well inside 10 s
        assert wait_for(lambda: watcher.status()["safety"]["state"] == "hold", 10)
        st = watcher.status()
        assert st["safety"]["reason"] in ("client_late", "client_lost")
        assert st["mode"] == "hold"
        # the watchdog bound: once the last chunk's rows ran out, at most N+1 cycles without a
        # row (the loop's fallback, N = loop.max_repeats = 3) before the hand holds
        assert 1 <= st["serve"]["fallbacks"] <= MAX_REPEATS + 1
        assert st["serve"]["reason"].startswith("hold")
        assert wait_for(lambda: not watcher.status()["controlled"], 10)  # liveness closed it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        watcher.close()


def test_serve_needs_a_valid_horizon(daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
    r = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        r.open("control")
        for bad in (0, "8", None):
            with pytest.raises(RemoteError, match="horizon"):
                r.request(Msg.SERVE, {"horizon": bad})
        with pytest.raises(RemoteError, match="blend"):
            r.request(Msg.SERVE, {"horizon": 4, "blend": "average"})
    finally:
        r.close()
