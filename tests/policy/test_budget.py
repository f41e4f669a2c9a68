"""The inference budget: an over-budget bundle is refused at load; at run time an overrun or a
non-finite output is the fallback (act() returns False), counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from raas_drivers.mocap import MocapFrame

from raas.core.observation import Observation, SourceReading
from raas.policy import PolicyController, load_bundle
from raas.policy.cell import BLOCK_MARKER_OFFSETS
from raas.policy.errors import OverBudgetError


def observation() -> Observation:
    obs = Observation()
    block = np.add(BLOCK_MARKER_OFFSETS, [1.0, 0.87, 0.17])
    tips = np.tile([1.0, 0.85, 0.2], (5, 1))
    frame = MocapFrame(
        cycle=0, capture_ns=0, positions=np.vstack([tips, block]), visible=np.ones(13, bool)
    )
    obs.sources["mocap"] = SourceReading("mocap", 0, True, sample=frame, stale=False)
    obs.goal[3] = 1.0
    return obs


def test_over_budget_bundle_is_refused(small_bundle: Path) -> None:
    with pytest.raises(OverBudgetError) as info:
        load_bundle(small_bundle, period_s=0.08, budget_ms=0.0001)  # 100 ns: nothing fits
    assert info.value.field == "budget_ms"
    assert info.value.p99_ms > info.value.budget_ms
    assert "p99" in str(info.value)


def test_runtime_overrun_gives_fallback_and_is_counted(dense_bundle: Path) -> None:
    runner = load_bundle(dense_bundle, period_s=0.08)
    ctl = PolicyController(runner)
    out = np.zeros(20)
    obs = observation()
    assert ctl.decide(obs, out) is True
    runner.budget_ns = 0  # from now on every inference is "slow"
    assert ctl.decide(obs, out) is False
    assert ctl.decide(obs, out) is False
    assert runner.overruns == 2


def test_a_lockstep_overrun_is_counted_not_failed(dense_bundle: Path) -> None:
    """On simulated time (obs.lockstep, set by the loop on a LockstepClock) the budget in wall
    time judges nothing: a stalled machine must not change a lockstep evaluation's actions."""
    runner = load_bundle(dense_bundle, period_s=0.08)
    ctl = PolicyController(runner)
    obs = observation()
    obs.lockstep = True
    timed, slow = np.zeros(20), np.zeros(20)
    assert ctl.decide(obs, timed) is True
    ctl.reset()
    runner.budget_ns = 0  # every inference is "slow"
    assert ctl.decide(obs, slow) is True
    assert runner.overruns == 1
    np.testing.assert_array_equal(slow, timed)


def test_nan_output_is_handed_to_the_safety_pipeline_and_counted(nan_bundle: Path) -> None:
    """A NaN output is passed on as NaN (the conditioning rejects it and the supervisor's
    non-finite watchdog holds the run, tests/policy/test_nan_in_loop.py), never as a number."""
    runner = load_bundle(nan_bundle, period_s=0.08)
    out = np.full(20, 0.123)
    assert runner.act(observation(), out) is True
    assert runner.nonfinite == 1
    assert np.isnan(out).all()
    assert runner.stats()["nonfinite_outputs"] == 1


def test_missing_source_gives_fallback(dense_bundle: Path) -> None:
    runner = load_bundle(dense_bundle, period_s=0.08)
    assert runner.act(Observation(), np.zeros(20)) is False
    assert runner.missing == 1
    assert runner.last_missing == "fingertip_positions"
    assert runner.needs == frozenset({"hand", "mocap"})
