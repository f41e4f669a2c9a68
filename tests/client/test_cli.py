"""The researcher CLI against a real daemon: `raas status`, `raas watch`, and `raas run` of the
example bundle (upload, run in the loop, live progress, results)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.transport.harness import ROOT, LeaseIssuer, RobotDaemon, start_daemon

pytestmark = [pytest.mark.system, pytest.mark.slow]


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> LeaseIssuer:
    return LeaseIssuer.create(tmp_path_factory.mktemp("lease"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer) -> Iterator[RobotDaemon]:
    # The example bundles are trained for the cell's 12.5 Hz; the recorder is on.
    tmp = Path(tmp_path_factory.mktemp("robot"))
    (tmp / "cell.toml").write_text(f'[recording]\nenabled = true\ndirectory = "{tmp}/rec"\n')
    d = start_daemon(tmp, issuer, rate=12.5, extra=("--config", str(tmp / "cell.toml")))
    d.lines.append(f"state dir {tmp}\n")
    yield d
    d.stop()


def raas(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raas_client.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def test_status_and_watch(daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
    r = raas("status", "shadow-1", "--endpoint", daemon.control, "--server-key", daemon.key)
    assert r.returncode == 0, r.stderr
    assert "shadow-1: hold, free" in r.stdout
    # The safety state and the health result, in words, without --json.
    assert "safety: idle (startup" in r.stdout, r.stdout
    assert "health: not run since the daemon started" in r.stdout, r.stdout
    r = raas("watch", daemon.control, "--server-key", daemon.key, "--seconds", "2.5")
    assert r.returncode == 1 and "needs a lease" in r.stderr  # the stream is lease-gated
    lease = issuer.issue(scope="observe", sub="watcher")
    r = raas(
        "watch", daemon.control, "--server-key", daemon.key, "--lease", lease, "--seconds", "2.5"
    )
    assert r.returncode == 0, r.stderr
    assert "cycle" in r.stdout and "lateness p50" in r.stdout
    # A lease that ends (or is revoked) closes the session: watch says so and ends, rather
    # than print the last cycle once a second forever.
    short = issuer.issue(scope="observe", sub="watcher", exp=time.time() + 3)
    r = raas(
        "watch", daemon.control, "--server-key", daemon.key, "--lease", short, "--seconds", "60"
    )
    assert r.returncode == 1, r.stderr
    assert "the session closed: lease_expired" in r.stderr, r.stderr
    r = raas("status", "shadow-1")  # nowhere to find it
    assert r.returncode == 1 and "--endpoint" in r.stderr


def test_run_uploads_runs_and_reports(
    daemon: RobotDaemon, issuer: LeaseIssuer, tmp_path: Path
) -> None:
    from raas.policy.examples import ensure_examples

    bundle = ensure_examples(tmp_path / "bundles", ["small"])["small"]
    r = raas(
        "run",
        str(bundle),
        "--robot",
        daemon.control,
        "--server-key",
        daemon.key,
        "--lease",
        issuer.issue(),
        "--episodes",
        "1",
        "--out",
        str(tmp_path / "out"),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "uploaded small" in r.stdout
    # events in words, one line each; the results name both hashes
    assert "  episode 1 started" in r.stdout
    assert re.search(r"^  episode 1 ended by .+: \d+ successes in [\d.]+ s$", r.stdout, re.M)
    assert "results: 1 episode(s), successes per episode" in r.stdout
    assert "(upload sha256 " in r.stdout and "over the bundle's files" in r.stdout
    assert "{'" not in r.stdout and "\r" not in r.stdout + r.stderr
    assert "loaded in" in daemon.output()
    # The session's recording was fetched, byte for byte.
    fetched = list((tmp_path / "out").glob("*.mcap"))
    assert len(fetched) == 1
    state = Path(daemon.output().split("state dir ", 1)[1].split("\n", 1)[0])
    original = state / "rec" / fetched[0].name
    assert fetched[0].read_bytes() == original.read_bytes()
    assert f"recording: {fetched[0]}" in r.stdout
    # The file says who ran what, on which robot: the lease's reservation and holder.
    from raas_client.report import format as fmt
    from raas_client.report.reader import RecordingFile

    session = RecordingFile(fetched[0]).scan_metadata()[fmt.META_SESSION]
    assert session["robot"] == "shadow-1"
    assert session["reservation"] == session["rid"] == "7"
    assert session["user"] == session["sub"] == "alice"
    assert session["bundle_sha256"] and session["bundle"] == "small"


def test_a_run_past_max_wait_is_stopped_with_its_results_so_far(
    daemon: RobotDaemon, issuer: LeaseIssuer, tmp_path: Path
) -> None:
    from raas.policy.examples import ensure_examples

    bundle = ensure_examples(tmp_path / "bundles", ["small"])["small"]
    r = raas(
        "run", str(bundle), "--robot", daemon.control, "--server-key", daemon.key,
        "--lease", issuer.issue(), "--episodes", "100000", "--max-wait", "4", "--no-fetch",
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "did not finish in time; stopping it" in r.stderr
    # the stop reply's summary: what ran before the stop, and why it ended
    assert re.search(
        r"^results: \d+ episode\(s\), .* the run ended: stopped by client$", r.stdout, re.M
    ), r.stdout


def test_status_words_for_safety_and_health() -> None:
    """The lines `raas status` prints for a held robot and a failed health check (the shapes of
    the `safety` and `health` fields of docs/protocol.md's status reply)."""
    from raas_client.commands.status import describe_health, describe_safety

    safety = {
        "state": "hold",
        "reason": "stale_sensor",
        "cause": "watchdog",
        "detail": "hand",
        "since_s": 3.25,
        "watchdog_trips": {"stale_sensor": 2, "client_late": 0},
    }
    assert describe_safety(safety) == (
        "safety: hold (stale_sensor, by watchdog: hand) for 3.2 s; watchdog trips: stale_sensor 2"
    )
    report = {
        "ok": False,
        "at": "2026-12-03T07:00:00+00:00",
        "checks": [
            {"name": "reach", "ok": True, "detail": "all targets"},
            {"name": "tracking", "ok": False, "detail": "A_FFJ3 0.3 rad off"},
        ],
    }
    assert describe_health(report) == (
        "health: FAILED at 2026-12-03T07:00:00+00:00: tracking: A_FFJ3 0.3 rad off"
    )
    assert describe_health({**report, "ok": True}).startswith("health: passed at")


def test_run_with_json_events(daemon: RobotDaemon, issuer: LeaseIssuer, tmp_path: Path) -> None:
    from raas.policy.examples import ensure_examples

    bundle = ensure_examples(tmp_path / "bundles", ["small"])["small"]
    r = raas(
        "run", str(bundle), "--robot", daemon.control, "--server-key", daemon.key,
        "--lease", issuer.issue(), "--no-fetch", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]  # stdout: JSON lines only
    kinds = [e["kind"] for e in events]
    assert "run_started" in kinds and kinds[-1] == "run_done"
    end = next(e for e in events if e["kind"] == "episode_end")
    assert end["episode"] == 0 and end["reason"] in ("timeout", "dropped", "max_successes")
    assert "results: 1 episode(s)" in r.stderr


def test_a_refused_bundle_is_named_and_leaves_no_file(
    daemon: RobotDaemon, issuer: LeaseIssuer, tmp_path: Path
) -> None:
    from raas.policy.examples import make_small

    bundle = make_small(tmp_path / "dup")
    m = json.loads((bundle / "manifest.json").read_text())
    m["action"]["actuators"][3] = m["action"]["actuators"][1]
    (bundle / "manifest.json").write_text(json.dumps(m))
    out = tmp_path / "out"
    r = raas(
        "run", str(bundle), "--robot", daemon.control, "--server-key", daemon.key,
        "--lease", issuer.issue(), "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 5, r.stdout + r.stderr
    assert "raas run: the robot refused the bundle: ManifestError: action.actuators:" in r.stderr
    assert "'A_WRJ0' is listed twice" in r.stderr
    assert "recorder not configured" not in r.stdout + r.stderr
    assert not out.exists() or not any(out.iterdir())  # no empty <session>.mcap


def test_a_held_run_says_why_the_episode_ended(
    daemon: RobotDaemon, issuer: LeaseIssuer, tmp_path: Path
) -> None:
    """A policy that outputs NaN: the robot holds after 3 cycles; the episode is recorded as
    ended by that safety stop (not lost in the run's end), and raas run exits 1."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from raas.policy.examples import make_small

    bundle = make_small(tmp_path / "nan")
    model = onnx.load(str(bundle / "model.onnx"))
    for init in model.graph.initializer:
        if init.name == "head.B":
            init.CopyFrom(numpy_helper.from_array(np.full(20, np.nan, np.float32), "head.B"))
    onnx.save(model, str(bundle / "model.onnx"))
    r = raas(
        "run", str(bundle), "--robot", daemon.control, "--server-key", daemon.key,
        "--lease", issuer.issue(), "--no-fetch",
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "  safety: running -> hold, nonfinite_action by watchdog" not in r.stdout  # never ran
    assert "safety: armed -> hold, nonfinite_action by watchdog" in r.stdout
    assert "  episode 1 ended by a safety stop (nonfinite_action): 0 successes in" in r.stdout
    assert "results: 1 episode(s)" in r.stdout
    assert "HELD: episodes ended by a safety stop: nonfinite_action 1" in r.stdout


def test_a_server_key_that_starts_with_a_dash_parses() -> None:
    """Z85 keys start with "-" one time in 85; argparse alone refuses them ("expected one
    argument"), so a CI run once failed on a random key."""
    from raas_client.cli import build_parser, join_dash_values

    key = "-" + "a" * 39
    argv = join_dash_values(["status", "tcp://127.0.0.1:1", "--server-key", key, "--json"])
    args = build_parser().parse_args(argv)
    assert args.server_key == key
    assert args.json is True
    assert join_dash_values(["status", "x", "--server-key"]) == ["status", "x", "--server-key"]
