"""The action conditioning pipeline, one stage at a time: what each stage does to the target,
that it is counted (per cycle and per actuator), the order of the stages, derating by effort
and temperature, and that reset() makes the first action start from the measured pose."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from raas_drivers.hand.config import ACTUATOR_LIMITS, EFFORT_LIMITS

from raas.safety import ActionConditioner, ConditioningConfig, Stage
from raas.safety.conditioning import STAGE_NAMES, STAGES
from raas.safety.errors import ActionShapeError, SafetyConfigError

PERIOD_S = 0.08  # 12.5 Hz: max_step = min(0.35, 4.0 * 0.08) = 0.32 rad
N = len(ACTUATOR_LIMITS)
FF2 = 3  # A_FFJ2, range [0, 1.571]
ROW = {stage: i for i, stage in enumerate(STAGES)}


@pytest.fixture
def cond() -> ActionConditioner:
    return ActionConditioner(ACTUATOR_LIMITS, EFFORT_LIMITS, ConditioningConfig(), PERIOD_S)


def start_at(c: ActionConditioner, pose: np.ndarray) -> None:
    c.reset(pose)
    assert np.array_equal(c.last, pose)


def only(c: ActionConditioner, stage: Stage, actuators: list[int]) -> None:
    """Exactly `stage` was counted, once, on exactly `actuators`."""
    assert c.counts == {name: int(s is stage) for name, s in zip(STAGE_NAMES, STAGES, strict=True)}
    expected = np.zeros((len(STAGES), N), dtype=np.int64)
    expected[ROW[stage], actuators] = 1
    np.testing.assert_array_equal(c.per_actuator, expected)


def test_soft_range_and_step(cond: ActionConditioner) -> None:
    margin = ConditioningConfig().soft_margin_rad
    np.testing.assert_allclose(cond.lower, ACTUATOR_LIMITS[:, 0] + margin)
    np.testing.assert_allclose(cond.upper, ACTUATOR_LIMITS[:, 1] - margin)
    assert cond.max_step == pytest.approx(0.32)


def test_an_action_inside_every_bound_passes_unchanged(cond: ActionConditioner) -> None:
    start = cond.last.copy()
    desired = start + 0.1
    out = np.zeros(N)
    assert cond.condition(desired, out) == 0
    np.testing.assert_array_equal(out, desired)
    np.testing.assert_array_equal(cond.last, desired)
    assert sum(cond.counts.values()) == 0 and not cond.per_actuator.any()


def test_nonfinite_values_keep_the_previous_target(cond: ActionConditioner) -> None:
    start = cond.last.copy()
    desired = start + 0.05
    desired[[2, 7, 11]] = [np.nan, np.inf, -np.inf]
    out = np.zeros(N)
    assert cond.condition(desired, out) == Stage.NONFINITE
    np.testing.assert_array_equal(out[[2, 7, 11]], start[[2, 7, 11]])
    keep = np.setdiff1d(np.arange(N), [2, 7, 11])
    np.testing.assert_array_equal(out[keep], desired[keep])
    only(cond, Stage.NONFINITE, [2, 7, 11])


def test_limits_clip_to_the_soft_range(cond: ActionConditioner) -> None:
    pose = cond.lower + 0.01  # near the lower soft limit: one step below it is out of range
    start_at(cond, pose)
    desired = pose.copy()
    desired[FF2] = pose[FF2] - 0.2  # below the limit, inside the rate bound
    out = np.zeros(N)
    assert cond.condition(desired, out) == Stage.LIMITS
    assert out[FF2] == cond.lower[FF2]
    only(cond, Stage.LIMITS, [FF2])


def test_rate_bounds_the_change_per_cycle(cond: ActionConditioner) -> None:
    start = cond.last.copy()
    desired = start.copy()
    desired[FF2] = start[FF2] + 0.6  # inside the range, two steps away
    desired[6] = start[6] - 0.33
    out = np.zeros(N)
    assert cond.condition(desired, out) == Stage.RATE
    assert out[FF2] == pytest.approx(start[FF2] + cond.max_step)
    assert out[6] == pytest.approx(start[6] - cond.max_step)
    only(cond, Stage.RATE, [FF2, 6])
    # the next cycle continues from there
    assert cond.condition(desired, out) == 0
    assert out[FF2] == desired[FF2]


def test_stages_run_in_order(cond: ActionConditioner) -> None:
    """1e300 is finite: clipped to the limit (stage 2), then rate-limited from the previous
    target (stage 3). NaN is rejected (stage 1) and so never reaches stages 2-3."""
    start = cond.last.copy()
    desired = start.copy()
    desired[FF2] = 1e300
    desired[4] = np.nan
    out = np.zeros(N)
    flags = cond.condition(desired, out)
    assert flags == Stage.NONFINITE | Stage.LIMITS | Stage.RATE
    assert out[FF2] == pytest.approx(start[FF2] + cond.max_step)
    assert out[4] == start[4]
    assert cond.per_actuator[:, FF2].tolist() == [0, 1, 1, 0]
    assert cond.per_actuator[:, 4].tolist() == [1, 0, 0, 0]
    assert cond.counts == {"nonfinite": 1, "limits": 1, "rate": 1, "derate": 0}


def test_each_stage_counts_cycles_and_actuators(cond: ActionConditioner) -> None:
    start = cond.last.copy()
    out = np.zeros(N)
    nan = start.copy()
    nan[0] = np.nan
    for _ in range(3):
        cond.condition(nan, out)
    assert cond.counts["nonfinite"] == 3
    assert cond.per_actuator[ROW[Stage.NONFINITE], 0] == 3
    assert cond.per_actuator[ROW[Stage.NONFINITE]].sum() == 3


def test_derate_counts_only_the_actuators_it_changed(cond: ActionConditioner) -> None:
    """In one cycle: a limit clip on one actuator, a rate clip on another and a derate on a
    third; each stage's row names only its own actuator."""
    pose = cond.last.copy()
    pose[0] = cond.upper[0] - 0.05
    start_at(cond, pose)
    desired = pose.copy()
    desired[0] = cond.upper[0] + 0.1  # limits
    desired[FF2] = pose[FF2] + 0.6  # rate
    desired[6] = pose[6] + 0.2  # derated (effort at 90 % of its range)
    efforts = np.zeros(N)
    efforts[6] = -0.9 * EFFORT_LIMITS[6]  # the sign does not matter
    out = np.zeros(N)
    flags = cond.condition(desired, out, pose, efforts, np.full(N, 30.0))
    assert flags == Stage.LIMITS | Stage.RATE | Stage.DERATE
    assert np.flatnonzero(cond.per_actuator[ROW[Stage.LIMITS]]).tolist() == [0]
    assert np.flatnonzero(cond.per_actuator[ROW[Stage.RATE]]).tolist() == [FF2]
    assert np.flatnonzero(cond.per_actuator[ROW[Stage.DERATE]]).tolist() == [6]
    assert cond.counts == {"nonfinite": 0, "limits": 1, "rate": 1, "derate": 1}


@pytest.mark.parametrize(
    ("effort_fraction", "temperature_c", "factor"),
    [
        (0.5, 30.0, 1.0),  # below both thresholds: no derating
        (0.9, 30.0, 0.5),  # half-way between 0.8 and 1.0 of the force range
        (1.0, 30.0, 0.0),  # at the force limit: hold the measured position
        (1.7, 30.0, 0.0),
        (0.1, 70.0, 0.5),  # half-way between 60 and 80 degC
        (0.1, 85.0, 0.0),
        (0.9, 75.0, 0.25),  # the stronger of the two wins
        (np.nan, 30.0, 0.0),  # a sensor reading NaN derates fully
        (0.1, np.nan, 0.0),
        (np.inf, 30.0, 0.0),
        (0.1, -np.inf, 1.0),
    ],
)
def test_derate_pulls_the_target_toward_the_measured_position(
    cond: ActionConditioner, effort_fraction: float, temperature_c: float, factor: float
) -> None:
    pose = cond.last.copy()
    start_at(cond, pose)
    measured = pose - 0.1  # the hand lags its target
    desired = pose + 0.1
    efforts = np.full(N, 0.1) * EFFORT_LIMITS
    efforts[FF2] = effort_fraction * EFFORT_LIMITS[FF2]
    temps = np.full(N, 30.0)
    temps[FF2] = temperature_c
    out = np.zeros(N)
    flags = cond.condition(desired, out, measured, efforts, temps)
    assert out[FF2] == pytest.approx(measured[FF2] + factor * 0.2)
    assert cond.factor[FF2] == pytest.approx(factor)
    others = np.arange(N) != FF2
    np.testing.assert_array_equal(out[others], desired[others])
    if factor < 1.0:
        assert flags == Stage.DERATE
        only(cond, Stage.DERATE, [FF2])
    else:
        assert flags == 0


def test_derate_by_effort_alone_or_temperature_alone(cond: ActionConditioner) -> None:
    pose = cond.last.copy()
    desired = pose + 0.1
    out = np.zeros(N)
    hot = np.full(N, 90.0)
    assert cond.condition(desired, out, pose, None, hot) == Stage.DERATE
    np.testing.assert_array_equal(out, pose)
    strained = EFFORT_LIMITS * 2
    assert cond.condition(desired, out, pose, strained, None) == Stage.DERATE
    np.testing.assert_array_equal(out, pose)
    # without the measured position there is nothing to pull towards
    assert cond.condition(desired, out, None, strained, hot) == 0


def test_derate_with_a_nonfinite_measured_position_holds_that_actuator(
    cond: ActionConditioner,
) -> None:
    pose = cond.last.copy()
    measured = pose - 0.1
    measured[FF2] = np.nan
    desired = pose + 0.1
    out = np.zeros(N)
    flags = cond.condition(desired, out, measured, EFFORT_LIMITS * 1.0, np.full(N, 30.0))
    assert flags == Stage.DERATE
    assert out[FF2] == pose[FF2]  # no measurement: it stays at its previous target
    others = np.arange(N) != FF2
    np.testing.assert_allclose(out[others], measured[others])


def test_derate_keeps_limits_and_rate_when_the_measurement_is_absurd(
    cond: ActionConditioner,
) -> None:
    pose = cond.last.copy()
    measured = np.where(np.arange(N) % 2 == 0, 1e300, -1e300)
    out = np.zeros(N)
    cond.condition(pose, out, measured, EFFORT_LIMITS * 5, np.full(N, 30.0))
    assert np.all(np.abs(out - pose) <= cond.max_step + 1e-12)
    assert np.all((out >= cond.lower) & (out <= cond.upper))


def test_reset_makes_the_first_action_start_from_the_measured_pose(
    cond: ActionConditioner,
) -> None:
    out = np.zeros(N)
    far = cond.upper.copy()
    for _ in range(20):  # drive the last target to the upper limits
        cond.condition(far, out)
    measured = cond.lower + 0.05  # the hand was moved elsewhere meanwhile
    cond.reset(measured)
    before = sum(cond.counts.values())
    assert cond.condition(measured, out) == 0  # the controller asks for where the hand is
    np.testing.assert_array_equal(out, measured)
    assert sum(cond.counts.values()) == before
    # and an action far away moves one step from the measured pose, not from the old target
    cond.reset(measured)
    cond.condition(far, out)
    assert np.all(np.abs(out - measured) <= cond.max_step + 1e-12)


def test_reset_clips_and_keeps_the_reference_where_start_is_not_finite(
    cond: ActionConditioner,
) -> None:
    before = cond.last.copy()
    start = before + 0.05
    start[0] = np.nan
    start[1] = 10.0
    start[2] = -np.inf
    cond.reset(start)
    assert cond.last[0] == before[0]
    assert cond.last[1] == cond.upper[1]
    assert cond.last[2] == before[2]
    np.testing.assert_array_equal(cond.last[3:], start[3:])


def test_out_may_be_the_desired_buffer(cond: ActionConditioner) -> None:
    start = cond.last.copy()
    buf = start + 0.05
    buf[0] = np.nan
    buf[FF2] = 1e300
    flags = cond.condition(buf, buf)
    assert flags == Stage.NONFINITE | Stage.LIMITS | Stage.RATE
    assert buf[0] == start[0]
    assert buf[FF2] == pytest.approx(start[FF2] + cond.max_step)


def test_a_float32_action_is_accepted(cond: ActionConditioner) -> None:
    desired = (cond.last + 0.1).astype(np.float32)
    out = np.zeros(N)
    assert cond.condition(desired, out) == 0
    np.testing.assert_array_equal(out, desired.astype(np.float64))


def test_an_action_of_the_wrong_shape_is_refused(cond: ActionConditioner) -> None:
    out = np.zeros(N)
    with pytest.raises(ActionShapeError, match=r"\(20,\)"):
        cond.condition(np.zeros(1), out)  # would broadcast silently
    with pytest.raises(ActionShapeError):
        cond.condition(np.zeros(N), np.zeros(N + 1))
    np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize(
    ("limits", "efforts", "period", "what"),
    [
        (ACTUATOR_LIMITS[:, ::-1], EFFORT_LIMITS, 0.08, "lower <= upper"),
        (np.where(ACTUATOR_LIMITS > 1, np.nan, ACTUATOR_LIMITS), EFFORT_LIMITS, 0.08, "finite"),
        (ACTUATOR_LIMITS, np.zeros(N), 0.08, "non-zero"),
        (ACTUATOR_LIMITS, EFFORT_LIMITS[:5], 0.08, "effort limits"),
        (ACTUATOR_LIMITS, EFFORT_LIMITS, 0.0, "period"),
        (ACTUATOR_LIMITS, EFFORT_LIMITS, float("nan"), "period"),
    ],
)
def test_inconsistent_settings_are_refused(
    limits: np.ndarray, efforts: np.ndarray, period: float, what: str
) -> None:
    with pytest.raises(SafetyConfigError, match=what):
        ActionConditioner(limits, efforts, ConditioningConfig(), period)


def test_a_cycle_allocates_no_arrays(cond: ActionConditioner) -> None:
    """Every stage, derate included, runs on preallocated buffers. One (20,) float array costs
    ~270 bytes of traced memory; the old pipeline peaked ~1.1 kB above its baseline."""
    rng = np.random.default_rng(0)
    desired = rng.uniform(-3, 3, N)
    desired[3] = np.nan
    measured = cond.last.copy()
    measured[4] = np.nan
    efforts = EFFORT_LIMITS * 0.9
    temps = np.full(N, np.nan)
    out = np.zeros(N)
    for _ in range(100):
        cond.condition(desired, out, measured, efforts, temps)
    tracemalloc.start()
    try:
        cond.condition(desired, out, measured, efforts, temps)
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(1000):
            cond.condition(desired, out, measured, efforts, temps)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 700
