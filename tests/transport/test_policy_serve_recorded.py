"""A policy bundle served as chunks (`raas serve-policy BUNDLE`, a process of its own, real
sockets) to the realtime simulated cell with the recorder on: the session's MCAP holds every
accepted chunk's timing (observation cycle, the server's receive and send stamps, the clock offset,
arrival, rows used and discarded), consistent with each other and with the serve's summary, and
`raas report` rebuilds from it the latency split and each applied action's age."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from raas_client.report import format as fmt
from raas_client.report.chunks import chunk_timing
from raas_client.report.data import load
from raas_client.report.html import render
from raas_client.report.reader import RecordingFile

from raas.policy.examples import ensure_examples
from tests.transport.harness import ROOT, LeaseIssuer, RobotDaemon, start_daemon, wait_for

pytestmark = [pytest.mark.system, pytest.mark.slow]

H = 6
CHUNKS = 8


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> LeaseIssuer:
    return LeaseIssuer.create(tmp_path_factory.mktemp("lease"))


@pytest.fixture(scope="module")
def robot(
    tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer
) -> Iterator[tuple[RobotDaemon, Path]]:
    """The realtime simulated cell at the bundles' 12.5 Hz, recording into rec/."""
    tmp = Path(tmp_path_factory.mktemp("robot"))
    (tmp / "cell.toml").write_text(f'[recording]\nenabled = true\ndirectory = "{tmp}/rec"\n')
    d = start_daemon(
        tmp, issuer, clock="realtime", rate=12.5, extra=("--config", str(tmp / "cell.toml"))
    )
    yield d, tmp / "rec"
    d.stop()


def _finished(path: Path) -> bool:
    try:
        closing = RecordingFile(path).scan_metadata().get(fmt.META_RECORDING, {})
        return closing.get("status") == "complete"
    except Exception:  # still being written
        return False


def test_chunk_timing_is_recorded_per_chunk_and_reported(
    robot: tuple[RobotDaemon, Path], issuer: LeaseIssuer, tmp_path: Path
) -> None:
    daemon, rec = robot
    bundle = ensure_examples(tmp_path / "bundles", ["small"])["small"]
    r = subprocess.run(
        [
            sys.executable, "-m", "raas_client.cli", "serve-policy", str(bundle),
            "--robot", daemon.control, "--server-key", daemon.key, "--lease", issuer.issue(),
            "--chunk", str(H), "--max-chunks", str(CHUNKS), "--simulate-latency", "120,20",
        ],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bundle small, chunks of 6 (its one action held)" in r.stderr
    assert '"chunks": 8' in r.stdout and '"refused": 0' in r.stdout
    assert wait_for(lambda: any(_finished(p) for p in rec.glob("*.mcap")), 30)
    (path,) = list(rec.glob("*.mcap"))

    events = [m.data for m in RecordingFile(path).messages([fmt.TOPIC_EVENTS])]
    chunks: list[dict[str, Any]] = [e["data"] for e in events if e["kind"] == "chunk"]
    (done,) = [e["data"] for e in events if e["kind"] == "serve_done"]
    # what served is named: the session that sent `serve` and its settings (it dialled the
    # robot: no dialled endpoint); before the first chunk
    (started,) = [e["data"] for e in events if e["kind"] == "serve_started"]
    assert started["horizon"] == H and started["blend"] == "newest"
    assert started["dial"] is None and started["server_key"] is None
    assert started["episode"] is False and started["seed"] is None
    assert isinstance(started["session"], str) and started["session"]
    kinds = [e["kind"] for e in events]
    assert kinds.index("serve_started") < kinds.index("chunk")
    assert len(chunks) == CHUNKS == done["chunks"]
    cycles = [c["cycle"] for c in chunks]
    assert cycles == sorted(cycles) and len(set(cycles)) == CHUNKS
    for c in chunks:
        # the observation's cycle, its arrival cycle, rows used and discarded
        assert c["cycle"] <= c["arrival_cycle"] < c["cycle"] + H
        assert c["used"] + c["discarded"] == H
        assert c["first_row"] is None if c["used"] == 0 else c["first_row"] >= 0
        # server and robot share this machine's monotonic clock: the stamps are in order
        assert 0 < c["obs_sent_ns"] <= c["server_recv_ns"] <= c["server_send_ns"]
        assert c["server_send_ns"] <= c["arrival_ns"]
        assert c["latency_ns"] == c["arrival_ns"] - c["obs_sent_ns"]
        compute = c["server_send_ns"] - c["server_recv_ns"]
        assert compute >= 80e6  # the simulated latency (120 +- 20 ms), kept apart from network
        assert c["network_ns"] == c["latency_ns"] - compute >= 0
        assert isinstance(c["clock_offset_ns"], int)
    assert sum(c["used"] for c in chunks) == done["cycles_covered"]
    # the offset estimate (true offset 0 here) is within half the least network delay
    best = min(c["network_ns"] for c in chunks)
    assert abs(done["clock_offset_ns"]) <= best / 2 + 1

    # raas report: the same numbers, one clock, and each applied action's age rebuilt
    d = load(path)
    assert len(d.chunks) == CHUNKS and not any(e.get("kind") == "chunk" for _, e in d.events)
    t = chunk_timing(d.chunks)
    assert t.offset_ns is not None and abs(t.offset_ns) <= best / 2 + 1
    np.testing.assert_allclose(t.uplink_ms + t.compute_ms + t.downlink_ms, t.latency_ms)
    assert t.age_cycles.size == done["cycles_covered"]
    assert int(t.age_cycles.max()) == done["age_cycles_max"]
    assert float(np.percentile(t.age_cycles, 50)) == done["age_cycles_p50"]
    page = render(d)
    for anchor in ('id="chunk-latency"', 'id="chunk-age"', "action chunks", "server clock"):
        assert anchor in page
