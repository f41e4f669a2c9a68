"""The issue's property: random action sequences, including NaN, infinities and huge values, give
applied targets that are always finite, inside the joint limits and inside the rate bound; and
through the real Supervisor, with random arm/disarm/hold/ramp-down/fault/clear requests between
them, the target never leaves the limits, never moves more than max_step per cycle (a ramp-down:
ramp_step), a stop holds where the hand was measured, and a re-arm after HOLD starts from the
measured position.

Two generators: hypothesis finds awkward structure (short sequences, exact specials, shrinking
to a minimal failing case); a numpy generator drives 10^5 sequences (~3x10^5 cycles) through
the conditioner in seconds, checked in bulk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from raas_drivers.hand import HandDriver, HandState
from raas_drivers.hand.config import (
    ACTUATOR_JOINT_INDEX,
    ACTUATOR_LIMITS,
    EFFORT_LIMITS,
    JOINT_NAMES,
    default_idle_action,
)

from raas.safety import (
    ActionConditioner,
    Cause,
    ConditioningConfig,
    Reason,
    SafetyConfig,
    SafetyState,
    Supervisor,
    TransitionRefusedError,
    supervisor_for_hand,
)

N = len(ACTUATOR_LIMITS)
PERIOD_S = 0.08
TOL = 1e-12
SPECIALS = np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, 1.7e308, -1.7e308, 0.0, -0.0, 5e-324])
JIDX = np.array(ACTUATOR_JOINT_INDEX)


def check_target(c: ActionConditioner, out: np.ndarray, ref: np.ndarray, step: float) -> None:
    assert np.isfinite(out).all(), out
    assert ((out >= c.lower) & (out <= c.upper)).all(), out
    assert np.abs(out - ref).max() <= step + TOL, (out, ref)


# ------------------------------------------------------------------ the conditioner, hypothesis
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-4.0, 4.0),
    st.sampled_from([float(x) for x in SPECIALS]),
)
vector = hnp.arrays(np.float64, N, elements=values)
maybe_vector = st.none() | vector
cycle_inputs = st.tuples(vector, maybe_vector, maybe_vector, maybe_vector, st.booleans())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=maybe_vector, cycles=st.lists(cycle_inputs, min_size=1, max_size=25))
def test_conditioned_targets_stay_in_limits_and_rate_bounds(
    start: np.ndarray | None,
    cycles: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None, bool]],
) -> None:
    c = ActionConditioner(ACTUATOR_LIMITS, EFFORT_LIMITS, ConditioningConfig(), PERIOD_S)
    if start is not None:
        c.reset(start)
    out = np.zeros(N)
    for desired, measured, efforts, temps, rearm in cycles:
        if rearm and measured is not None:
            c.reset(measured)
        ref = c.last.copy()
        check_target(c, ref, ref, 0.0)  # the reference itself is always a valid target
        c.condition(desired, out, measured, efforts, temps)
        check_target(c, out, ref, c.max_step)
        assert np.array_equal(c.last, out)


# ------------------------------------------------------------------ the conditioner, 10^5 sequences
def junk(rng: np.random.Generator, shape: tuple[int, ...], scale: float, p: float) -> np.ndarray:
    """Normal values of `scale`, a fraction p of them replaced by NaN, +-inf or huge values."""
    x = rng.normal(0.0, scale, shape)
    hit = rng.random(shape) < p
    x[hit] = rng.choice(SPECIALS, int(hit.sum()))
    return x


def scaled(x: np.ndarray, by: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # huge * 1e6 = inf is one more special
        return x * by


def run_sequences(seed: int, sequences: int, mean_length: float) -> dict[str, int]:
    """`sequences` random action sequences (each starts with a reset to a random, possibly junk,
    measured pose), every target checked in bulk per batch. Returns the stage counts."""
    rng = np.random.default_rng(seed)
    c = ActionConditioner(ACTUATOR_LIMITS, EFFORT_LIMITS, ConditioningConfig(), PERIOD_S)
    lengths = rng.geometric(1.0 / mean_length, sequences)
    total = int(lengths.sum())
    batch = 20_000
    first = np.zeros(total, dtype=bool)
    first[np.concatenate(([0], np.cumsum(lengths)[:-1]))] = True
    done = 0
    while done < total:
        b = min(batch, total - done)
        scale = rng.choice([0.05, 0.5, 3.0, 1e6], (b, 1))  # small moves .. absurd requests
        desired = scaled(junk(rng, (b, N), 1.0, 0.05), scale)
        measured = junk(rng, (b, N), 0.8, 0.03)
        efforts = scaled(junk(rng, (b, N), 0.7, 0.03), EFFORT_LIMITS)
        temps = 45.0 + junk(rng, (b, N), 15.0, 0.03)
        use = rng.random((b, 3)) < 0.7  # each of measured/efforts/temps given or None
        refs = np.empty((b, N))
        outs = np.empty((b, N))
        starts = first[done : done + b]
        for i in range(b):
            if starts[i]:
                c.reset(measured[i])
            refs[i] = c.last
            c.condition(
                desired[i],
                outs[i],
                measured[i] if use[i, 0] else None,
                efforts[i] if use[i, 1] else None,
                temps[i] if use[i, 2] else None,
            )
        assert np.isfinite(outs).all()
        assert (outs >= c.lower).all() and (outs <= c.upper).all()
        assert np.abs(outs - refs).max() <= c.max_step + TOL
        # the reference of every cycle but a sequence's first is the previous target
        cont = ~starts[1:]
        assert np.array_equal(refs[1:][cont], outs[:-1][cont])
        # and a sequence's first starts from its measured pose where that is finite
        fin = np.isfinite(measured) & starts[:, None]
        expect = np.clip(measured, c.lower, c.upper)
        assert np.array_equal(refs[fin], expect[fin])
        done += b
    return c.counts


@pytest.mark.slow
def test_1e5_random_sequences_stay_in_limits_and_rate_bounds() -> None:
    counts = run_sequences(seed=7, sequences=100_000, mean_length=3.0)
    # every stage was exercised, many times
    assert min(counts.values()) > 10_000, counts


def test_random_sequences_quick() -> None:
    """The same property on 2000 sequences (runs in the default, fast test selection)."""
    counts = run_sequences(seed=11, sequences=2_000, mean_length=5.0)
    assert min(counts.values()) > 100, counts


# ------------------------------------------------------------------ through the Supervisor
class LimitsHand(HandDriver):
    """A hand with the simulated hand's limits and idle pose; never polled or applied here."""

    def __init__(self) -> None:
        super().__init__("hand")

    @property
    def idle_action(self) -> np.ndarray:
        return default_idle_action()

    def request_state(self, cycle: int) -> None:
        pass

    def poll(self, cycle: int) -> HandState | None:
        return None

    def fileno(self) -> int:
        return -1

    def apply(self, targets: np.ndarray, cycle: int) -> np.ndarray:
        return targets.copy()


REQUESTS = ("arm", "disarm", "hold", "ramp_down", "fault", "clear_client", "clear_staff")
HOLDING = (SafetyState.IDLE, SafetyState.HOLD, SafetyState.FAULT, SafetyState.ARMED)


@dataclass
class Cycle:
    request: str | None
    desired: np.ndarray
    lag: np.ndarray  # measured = previous target + lag (the hand follows with an error)
    efforts: np.ndarray
    temps: np.ndarray
    decided: bool = True
    exhausted: bool = False
    slipped: bool = False


@dataclass
class Model:
    """What the test expects of the supervisor's target, cycle by cycle."""

    sup: Supervisor
    prev: np.ndarray
    ref: np.ndarray = field(init=False)  # the rate limit's reference of the next RUNNING cycle
    rearms: int = 0
    rearm_pending: bool = False
    checked_rearms: int = 0
    ramps: int = 0

    def __post_init__(self) -> None:
        self.ref = self.prev.copy()


def request(sup: Supervisor, what: str) -> None:
    try:
        if what == "arm":
            sup.arm(Cause.CLIENT)
        elif what == "disarm":
            sup.disarm(Cause.CLIENT)
        elif what == "hold":
            sup.hold(Cause.WATCHDOG, Reason.CLIENT_LOST)
        elif what == "ramp_down":
            sup.ramp_down(Cause.LEASE, Reason.LEASE_ENDED)
        elif what == "fault":
            sup.fault(Cause.OPERATOR, Reason.ESTOP)
        elif what == "clear_client":
            sup.clear(Cause.CLIENT)
        elif what == "clear_staff":
            sup.clear(Cause.OPERATOR)
    except TransitionRefusedError:
        pass


def run_supervisor(cycles: list[Cycle]) -> Model:
    sup = supervisor_for_hand(LimitsHand(), SafetyConfig(), PERIOD_S)
    c = sup.conditioner
    m = Model(sup, sup.target.copy())
    positions = np.zeros(len(JOINT_NAMES))
    out = np.zeros(N)
    tol = sup.cfg.home_tolerance_rad
    for k, cy in enumerate(cycles):
        positions[JIDX] = m.prev + cy.lag
        hand = HandState(
            cycle=k, capture_ns=k, positions=positions, efforts=cy.efforts, temperatures=cy.temps
        )
        sup.begin(k, hand)
        pose = positions[JIDX]
        # a pose is believed when finite and within 0.2 rad of the joint range
        measured_ok = bool(
            np.isfinite(pose).all()
            and (pose >= ACTUATOR_LIMITS[:, 0] - 0.2).all()
            and (pose <= ACTUATOR_LIMITS[:, 1] + 0.2).all()
        )
        here = np.clip(positions[JIDX] if measured_ok else m.prev, c.lower, c.upper)
        before = sup.state
        if cy.request is not None:
            request(sup, cy.request)
            if (
                cy.request == "arm"
                and sup.state is SafetyState.ARMED
                and before
                not in (
                    SafetyState.ARMED,
                    SafetyState.RUNNING,
                )
            ):
                # re-arm: re-measured, the hold and the rate reference are the measured pose
                np.testing.assert_array_equal(sup.hold_target, here)
                m.ref[:] = here
                m.rearms += 1
                m.rearm_pending = True
        mid = sup.state
        sup.cycle((), cy.desired, cy.decided, cy.exhausted, cy.slipped, out)
        st = sup.state

        assert np.isfinite(out).all()
        assert ((out >= c.lower) & (out <= c.upper)).all()
        assert np.array_equal(c.last, out)
        if st is SafetyState.RUNNING:
            if m.rearm_pending:  # the first running target after a re-arm
                m.checked_rearms += 1
            assert np.abs(out - m.ref).max() <= c.max_step + TOL
        elif st is SafetyState.RAMP_DOWN or (
            st is SafetyState.IDLE and mid is SafetyState.RAMP_DOWN
        ):
            m.ramps += 1
            assert np.abs(out - m.prev).max() <= sup.ramp_step + tol + TOL
            home_gap = np.abs(out - sup.home).max()
            assert home_gap <= np.abs(m.prev - sup.home).max() + TOL  # towards home
        else:
            assert st in HOLDING
            np.testing.assert_array_equal(out, sup.hold_target)
            # a holding target is the previous one, or where the hand was measured this cycle
            if not np.array_equal(out, m.prev):
                np.testing.assert_array_equal(out, here)
        if st is not SafetyState.ARMED:
            m.rearm_pending = False
        m.prev[:] = out
        m.ref[:] = out
    return m


def random_cycles(rng: np.random.Generator, n: int) -> list[Cycle]:
    req = rng.random(n) < 0.08
    which = rng.integers(0, len(REQUESTS), n)
    scale = rng.choice([0.05, 0.5, 3.0, 1e6], n)
    desired = scaled(junk(rng, (n, N), 1.0, 0.02), scale[:, None])
    lag = junk(rng, (n, N), 0.1, 0.002)  # a rare NaN/inf/huge measured position
    efforts = scaled(junk(rng, (n, N), 0.6, 0.01), EFFORT_LIMITS)
    temps = 50.0 + junk(rng, (n, N), 12.0, 0.01)
    flags = rng.random((n, 3)) < (0.95, 0.03, 0.05)
    return [
        Cycle(
            REQUESTS[which[i]] if req[i] else None,
            desired[i],
            lag[i],
            efforts[i],
            temps[i],
            bool(flags[i, 0]),
            bool(flags[i, 1]),
            bool(flags[i, 2]),
        )
        for i in range(n)
    ]


def test_supervisor_targets_under_random_requests() -> None:
    rng = np.random.default_rng(3)
    model = run_supervisor(random_cycles(rng, 20_000))
    c = model.sup.conditioner
    assert model.rearms > 100 and model.checked_rearms > 50 and model.ramps > 100
    assert min(c.counts.values()) > 50, c.counts
    assert model.sup.reason_counts.get(Reason.HOME_REACHED.value, 0) > 0


def test_rearm_after_hold_starts_from_the_measured_position() -> None:
    """RUNNING far from home, HOLD, the hand is pushed elsewhere (0.3 rad), re-arm: the first
    running target is within one step of the new measured pose, not of the old hold."""
    sup = supervisor_for_hand(LimitsHand(), SafetyConfig(), PERIOD_S)
    c = sup.conditioner
    out = np.zeros(N)
    positions = np.zeros(len(JOINT_NAMES))

    def cycle(k: int, measured: np.ndarray, desired: np.ndarray) -> None:
        positions[JIDX] = measured
        sup.begin(k, HandState(cycle=k, capture_ns=k, positions=positions))
        sup.cycle((), desired, True, False, False, out)

    pose = sup.home.copy()
    sup.arm(Cause.CLIENT)
    goal = c.lower + 0.1
    for k in range(20):
        cycle(k, pose, goal)
        pose = out.copy()  # a perfect hand
    assert sup.state is SafetyState.RUNNING
    np.testing.assert_allclose(out, goal)
    sup.disarm(Cause.CLIENT)
    cycle(20, pose, goal)
    assert sup.state is SafetyState.HOLD
    np.testing.assert_array_equal(out, pose)
    pushed = np.clip(pose + 0.3, c.lower, c.upper)
    cycle(21, pushed, goal)
    np.testing.assert_array_equal(out, pose)  # HOLD keeps its target while the hand is pushed
    positions[JIDX] = pushed
    sup.begin(22, HandState(cycle=22, capture_ns=22, positions=positions))
    sup.arm(Cause.CLIENT)
    np.testing.assert_array_equal(sup.hold_target, pushed)
    sup.cycle((), pushed, True, False, False, out)  # the controller asks for where it is
    assert sup.state is SafetyState.RUNNING
    np.testing.assert_array_equal(out, pushed)  # no jump back to the old hold
    cycle(23, pushed, goal)
    assert np.abs(out - pushed).max() <= c.max_step + TOL


requests = st.lists(
    st.tuples(
        st.none() | st.sampled_from(REQUESTS),
        hnp.arrays(np.float64, N, elements=values),
        st.floats(-0.3, 0.3) | st.sampled_from([float("nan"), 1e300]),
        st.floats(0.0, 1.5),  # effort, fraction of the force range
        st.floats(20.0, 100.0) | st.just(float("nan")),
        st.booleans(),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=requests)
def test_supervisor_targets_under_hypothesis_requests(
    script: list[tuple[str | None, np.ndarray, float, float, float, bool, bool]],
) -> None:
    cycles = [
        Cycle(
            req,
            desired,
            np.full(N, lag),
            np.full(N, effort) * EFFORT_LIMITS,
            np.full(N, temp),
            decided,
            False,
            slipped,
        )
        for req, desired, lag, effort, temp, decided, slipped in script
    ]
    run_supervisor(cycles)


def test_every_watchdog_stop_is_counted_in_watchdog_trips() -> None:
    """A hold for late decisions (client_late, inference_overrun) and for a lost client is a
    watchdog trip like a stale sensor's: status()'s `watchdog_trips` counts each by reason."""
    sup = supervisor_for_hand(LimitsHand(), SafetyConfig(), PERIOD_S)
    out = np.zeros(N)
    desired = sup.home.copy()
    for k, late in enumerate((Reason.CLIENT_LATE, Reason.INFERENCE_OVERRUN)):
        sup.arm(Cause.CLIENT, late_reason=late)
        sup.cycle((), desired, True, True, False, out)  # the fallback's repeats ran out
        assert (sup.state, sup.reason) == (SafetyState.HOLD, late), k
    sup.arm(Cause.CLIENT)
    sup.hold(Cause.WATCHDOG, Reason.CLIENT_LOST)
    sup.arm(Cause.CLIENT)
    sup.disarm(Cause.CLIENT)  # a client's own disarm is no watchdog trip
    trips = sup.status()["watchdog_trips"]
    assert isinstance(trips, dict)
    assert trips == {
        "stale_sensor": 0,
        "loop_deadline": 0,
        "nonfinite_action": 0,
        "client_late": 1,
        "inference_overrun": 1,
        "client_lost": 1,
    }
