"""The loop's side of the metrics board: what a cycle writes, and that writing never blocks.

Unit tests of one piece: a board in a temp dir, hand-made Steps, fake devices (at the
Device.stats() boundary). No processes, no sockets."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from raas_drivers.cameras import CameraFrame

from raas.core.fallback import FallbackKind
from raas.core.observation import Observation, SourceReading, Step
from raas.metrics.board import Board, BoardLayout, thumbnail_geometry
from raas.metrics.collector import BoardCollector
from raas.metrics.publisher import MetricsPublisher

SOURCES = ("hand", "mocap", "cameras.left")
RATE_HZ = 100.0


class CountingDevice:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.calls = 0
        self.fail = fail

    def stats(self) -> dict[str, float]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("link gone")
        return {"frames": float(self.calls), "crc_errors": 2.0}


def make_step() -> Step:
    obs = Observation()
    for name in SOURCES:
        obs.sources[name] = SourceReading(name=name, deadline_ns=1_000_000, required=True)
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    image[:, :, 1] = 200
    obs.sources["cameras.left"].sample = CameraFrame(
        cycle=0, capture_ns=0, camera="left", image=image
    )
    return Step(obs=obs, desired=np.zeros(20), applied=np.zeros(20))


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    shape, stride = thumbnail_geometry(160, 120, 40)
    layout = BoardLayout(
        rate_hz=RATE_HZ,
        sources=SOURCES,
        cameras=("left",),
        thumb_shape=shape,
        thumb_stride=stride,
        ring=64,
    )
    b = Board.create(tmp_path / "m.board", layout)
    yield b
    b.close()


def run_cycles(pub: MetricsPublisher, step: Step, cycles: list[int]) -> None:
    for k in cycles:
        step.obs.cycle = k
        step.lateness_ns = 3_000 + k  # 3 us: the 5 us bucket
        step.trigger_to_apply_ns = 300_000  # 0.3 ms
        step.decide_ns = 40_000
        step.fallback = FallbackKind.REPEAT if k % 10 == 0 else FallbackKind.NONE
        step.obs.sources["mocap"].stale = k % 4 == 0
        step.obs.sources["mocap"].age_ns = 7_000 if k % 4 == 0 else 0
        pub.publish(step)


def test_counters_histograms_and_staleness(board: Board, tmp_path: Path) -> None:
    dev = CountingDevice("hand")
    pub = MetricsPublisher(board, [dev], slow_hz=10.0)
    step = make_step()
    for s in step.obs.sources.values():
        s.stale = False
    step.lease_holder = "alice@lab"
    step.obs.episode = 4
    step.obs.goal[:] = [0.1, 0.2, 0.3, 1.0, 0.0, 0.0, 0.0]
    # 0..99, then 105..204: five slots skipped
    cycles = [*range(100), *range(105, 205)]
    run_cycles(pub, step, cycles)

    reader = Board.open(tmp_path / "m.board")  # another mapping, as the exporter has
    snap = reader.snapshot()
    assert not snap.torn
    assert snap.state == "RUNNING"
    assert snap.int("cycles") == 200
    assert snap.int("cycle") == 204
    assert snap.int("missed") == 5
    assert snap.int("fallbacks_repeat") == sum(1 for k in cycles if k % 10 == 0)
    assert snap.int("fallbacks_idle") == 0
    for hist in ("lateness_hist", "trigger_to_apply_hist", "decide_hist"):
        assert snap.ints(hist).sum() == 200
    assert snap.ints("lateness_hist")[0] == 200  # <= 5 us
    assert snap.int("lateness_sum_ns") == sum(3_000 + k for k in cycles)
    stale = dict(zip(SOURCES, snap.ints("stale_total"), strict=True))
    assert stale == {"hand": 0, "mocap": sum(1 for k in cycles if k % 4 == 0), "cameras.left": 0}
    assert list(snap.recent("lateness")) == [3_000 + k for k in cycles[-64:]]  # the ring
    assert snap.lease_holder == "alice@lab"
    assert snap.int("episode") == 4
    assert snap.goal[:3] == pytest.approx([0.1, 0.2, 0.3])
    # slow tasks: each at most once per its stride, the device's stats and the thumbnail landed
    assert 0 < dev.calls <= 200
    assert snap.link_stats()[("hand", "crc_errors")] == 2.0
    thumb = snap.thumbnail("left")
    assert thumb is not None and thumb.shape == (30, 40, 3)
    assert (thumb[:, :, 1] == 200).all()
    pub.close()
    assert reader.snapshot().state == "STOPPED"
    reader.close()


def test_prometheus_families_from_the_board_parse(board: Board) -> None:
    pub = MetricsPublisher(board, [CountingDevice("trigger")], slow_hz=50.0)
    step = make_step()
    run_cycles(pub, step, list(range(50)))
    registry = CollectorRegistry()
    registry.register(BoardCollector(lambda: (board.snapshot(), time.monotonic_ns())))
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples
    }
    assert samples[("raas_loop_cycles_total", ())] == 50
    for h in ("lateness", "trigger_to_apply", "decide"):
        assert samples[(f"raas_loop_{h}_seconds_count", ())] == 50
        assert samples[(f"raas_loop_{h}_seconds_bucket", (("le", "+Inf"),))] == 50
    assert samples[("raas_loop_trigger_to_apply_seconds_bucket", (("le", "0.0002"),))] == 0
    assert samples[("raas_loop_trigger_to_apply_seconds_bucket", (("le", "0.0005"),))] == 50
    assert samples[("raas_loop_fallbacks_total", (("kind", "repeat"),))] == 5
    assert samples[("raas_source_stale_cycles_total", (("source", "mocap"),))] == 13
    assert samples[("raas_loop_state", (("raas_loop_state", "RUNNING"),))] == 1
    assert samples[("raas_device_stat", (("device", "trigger"), ("stat", "crc_errors")))] == 2.0


def test_publish_never_blocks_allocates_nothing_and_survives_a_failing_device(
    board: Board,
) -> None:
    """Per-cycle work is a fixed set of stores: no lock, no system call that can wait, no
    growth of memory. A device whose stats() raises is counted, never propagated."""
    bad = CountingDevice("mocap", fail=True)
    pub = MetricsPublisher(board, [bad], slow_hz=10.0)
    step = make_step()
    reader = Board.open(board.path)
    run_cycles(pub, step, list(range(200)))  # warm: slots, thumbnails, link names
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        t0 = time.perf_counter_ns()
        run_cycles(pub, step, list(range(200, 5200)))
        per_cycle_us = (time.perf_counter_ns() - t0) / 5000 / 1e3
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert grown - base < 16_384  # nothing kept per cycle
    assert per_cycle_us < 500  # a very wide margin: a few us on a normal machine
    snap = reader.snapshot()
    assert snap.int("cycles") == 5200
    assert snap.int("stats_errors") == bad.calls > 0
    reader.close()


def test_a_writer_that_died_mid_cycle_gives_a_torn_snapshot(board: Board) -> None:
    board.ints_mv[board.index("seq")] = 7  # odd: inside a cycle, forever
    reader = Board.open(board.path)
    snap = reader.snapshot(timeout_s=0.01)
    assert snap.torn
    reader.close()
