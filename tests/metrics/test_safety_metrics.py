"""The metrics board carries the safety layer: the supervisor's state as a gauge
(raas_safety_state) and every conditioning stage's interventions as a counter
(raas_safety_interventions_total{stage=...}), equal to the supervisor's own counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from raas_drivers.hand import HandState
from raas_drivers.hand.config import (
    ACTUATOR_JOINT_INDEX,
    ACTUATOR_LIMITS,
    EFFORT_LIMITS,
    JOINT_NAMES,
    default_idle_action,
)

from raas.core.observation import Observation, SourceReading, Step
from raas.metrics.board import Board, BoardLayout
from raas.metrics.collector import BoardCollector
from raas.metrics.publisher import MetricsPublisher
from raas.metrics.status import status
from raas.safety import STAGE_NAMES, Cause, Reason, SafetyConfig, SafetyState, Stage, Supervisor

N = len(ACTUATOR_LIMITS)


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    b = Board.create(tmp_path / "m.board", BoardLayout(rate_hz=12.5, sources=("hand",), ring=16))
    yield b
    b.close()


def make_step() -> Step:
    obs = Observation()
    obs.sources["hand"] = SourceReading(name="hand", deadline_ns=2_000_000, required=True)
    obs.sources["hand"].stale = False
    return Step(obs=obs, desired=np.zeros(N), applied=np.zeros(N))


def scrape(board: Board) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    reg = CollectorRegistry()
    reg.register(BoardCollector(lambda: (board.snapshot(), 0)))
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_state_gauge_and_intervention_counters(board: Board) -> None:
    pub = MetricsPublisher(board)
    step = make_step()
    script = [
        (SafetyState.ARMED, 0),
        (SafetyState.RUNNING, Stage.RATE),
        (SafetyState.RUNNING, Stage.LIMITS | Stage.RATE),
        (SafetyState.RUNNING, Stage.NONFINITE),
        (SafetyState.RUNNING, Stage.DERATE | Stage.RATE),
        (SafetyState.HOLD, 0),
    ]
    for k, (state, flags) in enumerate(script):
        step.obs.cycle = k
        step.safety = int(state)
        step.interventions = int(flags)
        pub.publish(step)
    m = scrape(board)
    per_stage = {dict(k)["stage"]: v for k, v in m["raas_safety_interventions_total"].items()}
    assert per_stage == {"nonfinite": 1, "limits": 1, "rate": 3, "derate": 1}
    states = {dict(k)["raas_safety_state"]: v for k, v in m["raas_safety_state"].items()}
    assert states == {s.label: float(s is SafetyState.HOLD) for s in SafetyState}
    view = status(board.snapshot(), 0, 0.0)
    assert view["safety"] == {
        "state": "hold",
        "interventions": {"nonfinite": 1, "limits": 1, "rate": 3, "derate": 1},
    }


def test_board_counters_equal_the_supervisors_counts(board: Board) -> None:
    """A real supervisor conditions random actions (some junk) cycle by cycle as the loop does;
    the board's counters after publishing each step equal conditioner.counts."""
    pub = MetricsPublisher(board)
    sup = Supervisor(
        ACTUATOR_LIMITS,
        EFFORT_LIMITS,
        default_idle_action(),
        ACTUATOR_JOINT_INDEX,
        SafetyConfig(),
        0.08,
    )
    step = make_step()
    rng = np.random.default_rng(5)
    positions = np.zeros(len(JOINT_NAMES))
    target = np.zeros(N)
    jidx = np.array(ACTUATOR_JOINT_INDEX)
    for k in range(400):
        if k == 5:
            sup.arm(Cause.POLICY)
        if k == 300:
            sup.hold(Cause.WATCHDOG, Reason.STALE_SENSOR, "hand")
        positions[jidx] = target + rng.normal(0, 0.02, N)
        efforts = rng.uniform(0, 1.1, N) * EFFORT_LIMITS
        sup.begin(k, HandState(cycle=k, capture_ns=k, positions=positions, efforts=efforts))
        step.desired[:] = rng.normal(0.3, 1.0, N)
        if k % 50 == 0:
            step.desired[2] = np.nan
        flags = sup.cycle((), step.desired, True, False, False, target)
        step.applied[:] = target
        step.obs.cycle = k
        step.safety = int(sup.state)
        step.interventions = flags
        pub.publish(step)
    snap = board.snapshot()
    assert {n: snap.int(f"interventions_{n}") for n in STAGE_NAMES} == sup.conditioner.counts
    assert min(sup.conditioner.counts.values()) > 0
    assert snap.safety_state == "hold"
