"""`serve` with `episode: true`: the daemon serves one episode of the cell's task to a policy
server the robot dialled and ends it by itself when the task ends it (the hand holds,
`serve_done` carries the episode's record, shaped like a bundle run's); a safety stop while
serving ends it `held` with the stop's reason; before the first chunk the episode has not
started (a server that never answers is not judged). Real sockets, the lockstep rig."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from raas_client.errors import RemoteError
from raas_client.session import RemoteRobot
from raas_client.wire import Msg

from tests.transport.harness import ROOT, LeaseIssuer, RobotDaemon, start_daemon, wait_for
from tests.transport.test_policy_dial import _BOUND, BoundServer
from tests.transport.test_policy_serve import MAX_REPEATS, H

pytestmark = [pytest.mark.system, pytest.mark.slow]

#: A threshold of pi: every judged cycle is a success; the episode ends at the 40th (0.8 s at
#: 50 Hz), unless something stops it first.
MAX_SUCCESSES = 40


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer) -> Iterator[RobotDaemon]:
    tmp = Path(tmp_path_factory.mktemp("robot"))
    (tmp / "cell.toml").write_text(
        f"[transport.task]\nsuccess_threshold_rad = 3.14159\nmax_successes = {MAX_SUCCESSES}\n"
    )
    d = start_daemon(tmp, issuer, extra=("--config", str(tmp / "cell.toml")))
    yield d
    d.stop()


def _serve_episode(r: RemoteRobot, server: BoundServer, seed: int = 7) -> dict[str, Any]:
    return r.request(
        Msg.SERVE,
        {
            "horizon": H,
            "dial": {"endpoint": server.endpoint, "server_key": server.key},
            "episode": True,
            "seed": seed,
        },
    )


def _serve_done(r: RemoteRobot, timeout: float) -> dict[str, Any] | None:
    """Follow the session's events (heartbeating it) until serve_done; None after timeout."""
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        r.heartbeat()
        found.extend(e for e in r.events(timeout_s=0.1) if e.get("kind") == "serve_done")
        return bool(found)

    return found[0] if wait_for(seen, timeout, 0.05) else None


def test_a_served_episode_ends_by_itself_when_the_task_ends_it(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    server = BoundServer(daemon.key)
    r = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        r.open("control")
        got = _serve_episode(r, server)
        assert got["mode"] == "serve" and got["episode"] is True
        done = _serve_done(r, 60)
        assert done is not None, r.status()
        st = r.status()
    finally:
        r.close()
    server.finish()
    assert done["reason"] == "done" and done["chunks"] >= 1
    [record] = done["episodes"]
    # a bundle run's episode record: the same keys, the task's own ending
    assert set(record) == {
        "episode",
        "successes",
        "reason",
        "cycles",
        "seconds",
        "seconds_per_goal",
    }
    assert record["reason"] == "max_successes" and record["successes"] == MAX_SUCCESSES
    assert record["cycles"] == MAX_SUCCESSES  # judged from the first chunk on, one per cycle
    assert len(record["seconds_per_goal"]) == MAX_SUCCESSES
    assert record["seconds"] == pytest.approx(MAX_SUCCESSES * 0.02)
    # serving ended as `stop` ends it: the hand holds where it is, the reason says why
    assert st["mode"] == "hold" and st["controlled"]
    assert st["safety"]["state"] == "hold" and st["safety"]["reason"] == "episode_over"
    assert st["serve"]["reason"] == "done"


def test_a_safety_stop_ends_the_served_episode_held(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    """The server sends 2 chunks (16 rows) and stops answering: after N+1 uncovered cycles the
    watchdog holds the hand (client_late), before the task's 40th success."""
    server = BoundServer(daemon.key, max_chunks=2)
    r = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        r.open("control")
        _serve_episode(r, server)
        done = _serve_done(r, 60)
        assert done is not None, r.status()
    finally:
        r.close()
    server.finish()
    assert done["reason"] == "hold: client_late" and done["chunks"] == 2
    [record] = done["episodes"]
    assert record["reason"] == "held" and record["safety_reason"] == "client_late"
    assert 0 < record["successes"] < MAX_SUCCESSES
    assert 1 <= done["fallbacks"] <= MAX_REPEATS + 1


def test_before_the_first_chunk_the_episode_has_not_started(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    """A server that admits another robot never sends a chunk: were the waiting cycles judged,
    the 40 successes would end the episode within a second. It keeps waiting (the hand holds);
    `stop` ends it with no record (no episode was run)."""
    server = BoundServer(zmq.curve_keypair()[0].decode("ascii"))
    r = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        r.open("control")
        _serve_episode(r, server)
        assert wait_for(lambda: r.status()["serve"]["cycles_before_first_chunk"] > 3 * 50, 30)
        assert _serve_done(r, 0.5) is None
        st = r.status()
        assert st["mode"] == "serve" and st["serve"]["chunks"] == 0
        summary = r.request(Msg.STOP)["summary"]
    finally:
        r.close()
    server.finish()
    assert summary["reason"] == "stopped by client" and summary["episodes"] == []


@pytest.mark.parametrize(
    ("fields", "names"),
    [({"episode": 1}, "episode must be"), ({"episode": True, "seed": -1}, "seed must be")],
)
def test_bad_episode_fields_are_refused(
    daemon: RobotDaemon, issuer: LeaseIssuer, fields: dict[str, Any], names: str
) -> None:
    r = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        r.open("control")
        with pytest.raises(RemoteError) as exc:
            r.request(Msg.SERVE, {"horizon": H, **fields})
        assert exc.value.code == "bad_request" and names in exc.value.message
        assert r.status()["mode"] == "hold"
    finally:
        r.close()


def test_dial_policy_episode_from_a_shell_prints_the_record(
    daemon: RobotDaemon, issuer: LeaseIssuer, tmp_path: Path
) -> None:
    """`raas serve-policy --bind` on the GPU machine, `raas dial-policy --episode --seed 3`
    from the researcher's: the robot serves one episode and ends it by itself (no --duration);
    the command prints the episode's record and exits 0. `--seed` without `--episode` is a usage
    error that sends nothing."""
    cli = [sys.executable, "-m", "raas_client.cli"]
    env = dict(os.environ)
    base = [*cli, "dial-policy", daemon.control, "--server-key", daemon.key, "--chunk", str(H)]
    bad = subprocess.run(
        [*base, "--lease", issuer.issue(), "--policy", "tcp://127.0.0.1:1", "--policy-key",
         "k" * 40, "--seed", "3"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "--seed needs --episode" in bad.stderr
    server = subprocess.Popen(
        [*cli, "serve-policy", "tests.transport.test_policy_serve:policy", "--bind",
         "tcp://127.0.0.1:*", "--robot-key", daemon.key, "--chunk", str(H), "--key-dir",
         str(tmp_path)],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        found = _BOUND.search(server.stderr.readline().decode())
        assert found
        dial = subprocess.run(
            [*base, "--lease", issuer.issue(), "--policy", found[1], "--policy-key", found[2],
             "--episode", "--seed", "3"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
        assert dial.returncode == 0, dial.stderr
        summary = json.loads(dial.stdout.strip().splitlines()[-1])
        assert summary["reason"] == "done" and summary["dialled"] == found[1]
        [record] = summary["episodes"]
        assert record["reason"] == "max_successes" and record["successes"] == MAX_SUCCESSES
        assert f"episode 0: {MAX_SUCCESSES} successes, max_successes" in dial.stderr
    finally:
        server.kill()
        server.wait()
        if server.stderr is not None:
            server.stderr.close()
        if server.stdout is not None:
            server.stdout.close()
