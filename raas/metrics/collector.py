"""Prometheus families from a board snapshot (a prometheus_client custom collector).

Names follow the Prometheus conventions: base units (seconds), `_total` for counters, labels
for what varies (fallback kind, source, device and stat). A scrape reads one consistent
snapshot, so a histogram's `_count` equals `raas_loop_cycles_total` in the same scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

from raas.metrics.board import STATE_NAMES, Snapshot
from raas.metrics.status import live_state
from raas.safety.conditioning import STAGE_NAMES
from raas.safety.reasons import SafetyState

_NS = 1e-9


def _histogram(
    name: str, doc: str, edges_ns: Sequence[int], counts: np.ndarray, sum_ns: int
) -> HistogramMetricFamily:
    cumulative = np.cumsum(counts)
    buckets = [(f"{e * _NS:.6g}", float(c)) for e, c in zip(edges_ns, cumulative[:-1], strict=True)]
    buckets.append(("+Inf", float(cumulative[-1])))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=sum_ns * _NS)


def families(snap: Snapshot, now_ns: int) -> Iterator[Metric]:
    """Every family the daemon exports, from one snapshot."""
    lay = snap.layout
    yield CounterMetricFamily(
        "raas_loop_cycles", "Control cycles run since the cell came up", value=snap.int("cycles")
    )
    yield GaugeMetricFamily("raas_loop_cycle", "Index of the last cycle", value=snap.int("cycle"))
    yield CounterMetricFamily(
        "raas_loop_missed_cycles",
        "Grid slots skipped because a cycle overran or woke too late",
        value=snap.int("missed"),
    )
    yield CounterMetricFamily(
        "raas_loop_overruns",
        "Cycles that ended after the next cycle's start (after warm-up)",
        value=snap.int("overruns"),
    )
    fb = CounterMetricFamily(
        "raas_loop_fallbacks", "Cycles that applied a fallback action", labels=["kind"]
    )
    fb.add_metric(["repeat"], snap.int("fallbacks_repeat"))
    fb.add_metric(["idle"], snap.int("fallbacks_idle"))
    yield fb
    yield CounterMetricFamily(
        "raas_loop_clipped",
        "Cycles whose desired action was clipped to the hand's limits (after warm-up)",
        value=snap.int("clipped"),
    )
    yield CounterMetricFamily(
        "raas_loop_apply_late",
        "Cycles whose fixed-phase apply time could not be met (after warm-up)",
        value=snap.int("apply_late"),
    )
    yield _histogram(
        "raas_loop_lateness_seconds",
        "Trigger time minus the cycle's grid time",
        lay.lateness_edges_ns,
        snap.ints("lateness_hist"),
        snap.int("lateness_sum_ns"),
    )
    yield _histogram(
        "raas_loop_trigger_to_apply_seconds",
        "Trigger to applied action",
        lay.latency_edges_ns,
        snap.ints("trigger_to_apply_hist"),
        snap.int("trigger_to_apply_sum_ns"),
    )
    yield _histogram(
        "raas_loop_decide_seconds",
        "Time the controller took to decide (inference latency)",
        lay.latency_edges_ns,
        snap.ints("decide_hist"),
        snap.int("decide_sum_ns"),
    )
    state = live_state(snap, now_ns)
    yield StateSetMetricFamily(
        "raas_loop_state",
        "The loop's state (IDLE: no cycle for a while or not started)",
        value={name: name == state for name in STATE_NAMES.values()},
    )
    yield GaugeMetricFamily(
        "raas_loop_rate_config_hertz", "Configured cycle rate", value=lay.rate_hz
    )
    yield GaugeMetricFamily(
        "raas_metrics_board_age_seconds",
        "Time since the loop last wrote the board",
        value=max(0, now_ns - snap.int("update_ns")) * _NS,
    )
    stale_total = CounterMetricFamily(
        "raas_source_stale_cycles", "Cycles a source missed its deadline", labels=["source"]
    )
    stale_now = GaugeMetricFamily(
        "raas_source_stale", "1 when the source was stale in the last cycle", labels=["source"]
    )
    age = GaugeMetricFamily(
        "raas_source_age_seconds", "Age of the source's sample at the last cycle", labels=["source"]
    )
    tot, now, ages = snap.ints("stale_total"), snap.ints("stale_now"), snap.ints("age_ns")
    for j, name in enumerate(lay.sources):
        stale_total.add_metric([name], int(tot[j]))
        stale_now.add_metric([name], int(now[j]))
        age.add_metric([name], int(ages[j]) * _NS)
    yield stale_total
    yield stale_now
    yield age
    links = GaugeMetricFamily(
        "raas_device_stat",
        "A device's own counters (Device.stats(): serial link round trips, errors, ...)",
        labels=["device", "stat"],
    )
    for (device, stat), value in sorted(snap.link_stats().items()):
        links.add_metric([device, stat], value)
    yield links
    yield GaugeMetricFamily("raas_episode", "Episode index of the task", value=snap.int("episode"))
    yield StateSetMetricFamily(
        "raas_safety_state",
        "The safety supervisor's state in the last cycle (docs/safety.md)",
        value={st.label: st.label == snap.safety_state for st in SafetyState},
    )
    interventions = CounterMetricFamily(
        "raas_safety_interventions",
        "Cycles in which a conditioning stage changed the desired action",
        labels=["stage"],
    )
    for name in STAGE_NAMES:
        interventions.add_metric([name], snap.int(f"interventions_{name}"))
    yield interventions
    lease = InfoMetricFamily("raas_lease", "Who holds the robot's lease now")
    lease.add_metric([], {"holder": snap.lease_holder or ""})
    yield lease


class BoardCollector(Collector):
    """Reads a fresh snapshot per scrape through `snapshot()`."""

    def __init__(self, snapshot: Callable[[], tuple[Snapshot, int]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap, now_ns = self._snapshot()
        yield from families(snap, now_ns)
