"""Dactyl's timing faults as rig configuration: action delay and timestep stretch do what they
say, seen through the real drivers on a lockstep rig (deterministic, so exact comparisons)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from raas_drivers.sim import RigConfig, SimRig
from raas_drivers.sim.config import RigFaults
from raas_drivers.sim.timing_faults import ActionDelay, TimestepStretch

from tests.drivers.conftest import bring_up, step

pytestmark = [pytest.mark.system]

FF = 2  # A_FFJ3: the index finger sideways
CHANGE_AT = 3  # the cycle whose targets move the finger
CYCLES = 9


def _finger(faults: RigFaults) -> list[float]:
    """The finger's position at each cycle when its target jumps by 0.3 rad at CHANGE_AT."""
    cfg = RigConfig(clock="lockstep", cameras=0, seed=0, faults=faults)
    with SimRig(cfg) as rig:
        cell = bring_up(rig)
        hand = cell.devs.hand
        idle = hand.idle_action
        moved = idle.copy()
        moved[FF] += 0.3
        out = []
        for k in range(CYCLES):
            out.append(float(step(cell)["hand"].positions[FF]))
            hand.apply(moved if k >= CHANGE_AT else idle, k)
        return out


def _first_move(trace: list[float]) -> int:
    """The first cycle whose state shows the finger on its way (> 0.02 rad from the start)."""
    return next(k for k, p in enumerate(trace) if abs(p - trace[0]) > 0.02)


def test_action_delay_applies_targets_cycles_late() -> None:
    plain = _finger(RigFaults())
    late = _finger(RigFaults(action_delay_cycles=2))
    assert _first_move(late) == _first_move(plain) + 2
    # the same motion, two cycles later
    np.testing.assert_allclose(late[2:], plain[:-2], atol=1e-9)


def test_action_delay_probability_one_is_one_more_cycle() -> None:
    """With probability 1 every actuator takes the older set: a delay of exactly one cycle."""
    assert _finger(RigFaults(action_delay_prob=1.0)) == _finger(RigFaults(action_delay_cycles=1))


def test_action_delay_probability_delays_some_actuators() -> None:
    delay = ActionDelay(0, 0.5, np.random.default_rng(1))
    delay.clear(np.zeros(20))
    out = delay.push(np.ones(20))
    late = out == 0.0
    assert 0 < late.sum() < 20  # some actuators kept the old target, the others took the new
    assert delay.delayed_actuators == late.sum()
    fractions = []
    for _ in range(200):
        prev = delay.push(np.ones(20))
        fractions.append(float((delay.push(np.full(20, 2.0)) == 1.0).mean()))
        assert prev.shape == (20,)
    assert np.mean(fractions) == pytest.approx(0.5, abs=0.05)


def test_a_hold_is_never_delayed() -> None:
    delay = ActionDelay(3, 0.0, np.random.default_rng(0))
    delay.clear(np.zeros(4))
    assert (delay.push(np.ones(4)) == 0).all()  # queued
    delay.clear(np.full(4, 7.0))  # the firmware held: the queue is gone
    assert (delay.push(np.ones(4)) == 7.0).all()


def test_timestep_stretch_moves_the_plant_further_per_cycle() -> None:
    plain = _finger(RigFaults())
    # lambda 50/s: each 8 ms sub-step lasts 20 ms longer on average, the plant runs ~3.5x
    stretched = _finger(RigFaults(timestep_stretch_lambda_hz=50.0))
    k = _first_move(plain)
    travel_plain = abs(plain[k] - plain[0])
    travel_stretched = abs(stretched[k] - stretched[0])
    assert travel_stretched > 1.5 * travel_plain


def test_timestep_stretch_draws_exp_lambda_per_substep() -> None:
    stretch = TimestepStretch(1250.0, 0.008, 80_000_000, np.random.default_rng(2))
    assert stretch.substeps == 10
    extras = [stretch.next_cycle() for _ in range(4000)]
    # 10 sub-steps of mean 1/1250 s = 0.8 ms each: 8 ms per cycle on average
    assert np.mean(extras) == pytest.approx(8e6, rel=0.05)
    assert stretch.total_ns == sum(extras)
    assert TimestepStretch(None, 0.008, 80_000_000, np.random.default_rng(2)).next_cycle() == 0


def test_bad_fault_settings_name_the_field() -> None:
    with pytest.raises(ValidationError, match="action_delay_prob"):
        RigFaults(action_delay_prob=1.5)
    with pytest.raises(ValidationError, match="timestep_stretch_lambda_hz"):
        RigFaults(timestep_stretch_lambda_hz=0)
