"""What metrics cost the loop: MetricsPublisher.publish() beside a bare loop and beside the
obvious peer, prometheus_client instrumented in the loop process itself.

One Step, updated like the loop updates it (cycle index, lateness, trigger-to-apply, decide
time, a fallback now and then, a stale source now and then), handed to each publisher in turn;
each call timed alone with perf_counter_ns. The board is served by the real exporter process,
scraped by another process 10 times a second during the run (a reader never stops the writer).

  bare           a publisher that does nothing (the cost of the call and the timing itself)
  board          MetricsPublisher: shared-memory board, seqlock, histograms, thumbnails
  prometheus     prometheus_client Counter/Histogram objects in the loop process (locks)

    python -m bench metrics [--duration S]    (default 10 s per case)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from raas_drivers.cameras import CameraFrame

from bench.common import dist_us, fmt_dist, python, ratio, write_report
from raas.core.fallback import FallbackKind
from raas.core.observation import Observation, SourceReading, Step
from raas.metrics.board import LATENCY_EDGES_NS, LATENESS_EDGES_NS
from raas.metrics.cell import layout_for, start_metrics
from raas.metrics.config import MetricsConfig

SOURCES = ("hand", "trigger", "mocap", "cameras.left", "cameras.right", "cameras.top")
RATE_HZ = 1000.0

SCRAPER = """
import sys, time, urllib.request
url = sys.argv[1]
while True:
    try:
        urllib.request.urlopen(url, timeout=5).read()
    except OSError:
        pass
    time.sleep(0.1)
"""


def make_step() -> Step:
    obs = Observation()
    for name in SOURCES:
        obs.sources[name] = SourceReading(name=name, deadline_ns=1_000_000, required=True)
        obs.sources[name].stale = False
    rng = np.random.default_rng(0)
    for cam in ("left", "right", "top"):
        image = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
        obs.sources[f"cameras.{cam}"].sample = CameraFrame(
            cycle=0, capture_ns=0, camera=cam, image=image
        )
    return Step(obs=obs, desired=np.zeros(20), applied=np.zeros(20))


class Bare:
    def publish(self, step: Step) -> None:
        pass


class PrometheusInLoop:
    """The peer: prometheus_client metrics updated in the loop process."""

    def __init__(self) -> None:
        reg = CollectorRegistry()
        self.cycles = Counter("cycles", "c", registry=reg)
        self.fallbacks = Counter("fallbacks", "f", ["kind"], registry=reg)
        self.repeat = self.fallbacks.labels("repeat")
        self.idle = self.fallbacks.labels("idle")
        self.late = Histogram(
            "lateness", "l", buckets=[e / 1e9 for e in LATENESS_EDGES_NS], registry=reg
        )
        self.t2a = Histogram("t2a", "t", buckets=[e / 1e9 for e in LATENCY_EDGES_NS], registry=reg)
        self.dec = Histogram("dec", "d", buckets=[e / 1e9 for e in LATENCY_EDGES_NS], registry=reg)
        stale = Counter("stale", "s", ["source"], registry=reg)
        age = Gauge("age", "a", ["source"], registry=reg)
        self.per_source = [(stale.labels(n), age.labels(n)) for n in SOURCES]

    def publish(self, step: Step) -> None:
        self.cycles.inc()
        if step.fallback is FallbackKind.REPEAT:
            self.repeat.inc()
        elif step.fallback is FallbackKind.IDLE:
            self.idle.inc()
        self.late.observe(step.lateness_ns * 1e-9)
        self.t2a.observe(step.trigger_to_apply_ns * 1e-9)
        self.dec.observe(step.decide_ns * 1e-9)
        for (stale, age), reading in zip(self.per_source, step.obs.sources.values(), strict=True):
            if reading.stale:
                stale.inc()
            age.set(reading.age_ns * 1e-9)


def measure(pub: Any, step: Step, duration_s: float) -> np.ndarray:
    n = int(duration_s * 100_000)  # enough calls; paced by nothing but the calls themselves
    out = np.zeros(n, dtype=np.int64)
    clock = time.perf_counter_ns
    obs = step.obs
    mocap = obs.sources["mocap"]
    end = time.monotonic() + duration_s
    i = 0
    while i < n and time.monotonic() < end:
        for _ in range(1000):
            if i >= n:
                break
            obs.cycle = i
            step.lateness_ns = 20_000 + (i * 7919) % 80_000
            step.trigger_to_apply_ns = 300_000 + (i * 104729) % 200_000
            step.decide_ns = 50_000 + (i * 13) % 30_000
            step.fallback = FallbackKind.REPEAT if i % 997 == 0 else FallbackKind.NONE
            mocap.stale = i % 101 == 0
            t0 = clock()
            pub.publish(step)
            out[i] = clock() - t0
            i += 1
    return out[:i]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench metrics", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    args = p.parse_args(argv)

    cfg = MetricsConfig(enabled=True, port=0)
    layout = layout_for(
        cfg,
        rate_hz=RATE_HZ,
        sources=SOURCES,
        cameras=("left", "right", "top"),
        camera_size=(200, 200),
    )
    step = make_step()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        board_path = Path(tmp) / "bench.board"
        with start_metrics(cfg, layout, board_path=board_path) as board_pub:
            assert board_pub.url is not None
            scraper = subprocess.Popen([python(), "-c", SCRAPER, board_pub.url + "metrics"])
            try:
                cases: list[tuple[str, Any]] = [
                    ("bare", Bare()),
                    ("board", board_pub),
                    ("prometheus", PrometheusInLoop()),
                ]
                for name, pub in cases:
                    measure(pub, step, min(1.0, args.duration / 5))  # warm up
                    results[name] = dist_us(measure(pub, step, args.duration))
                    print(fmt_dist(f"publish: {name}", results[name]), flush=True)
            finally:
                scraper.terminate()
                scraper.wait()
    board_cost = {k: round(results["board"][k] - results["bare"][k], 3) for k in ("p50", "p99")}
    summary = {
        "board_vs_prometheus_p50": ratio(results["board"]["p50"], results["prometheus"]["p50"]),
        "board_vs_prometheus_p999": ratio(results["board"]["p999"], results["prometheus"]["p999"]),
        "board_minus_bare_us": board_cost,
    }
    print(
        f"ratio board/prometheus_client: p50 {summary['board_vs_prometheus_p50']}, "
        f"p99.9 {summary['board_vs_prometheus_p999']}; board over a bare call: "
        f"p50 {board_cost['p50']} us, p99 {board_cost['p99']} us",
        flush=True,
    )
    write_report(
        "metrics",
        {"duration_s": args.duration, "sources": len(SOURCES), "cases": results, **summary},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
