"""What the safety layer costs the loop's condition phase: Supervisor.cycle() (RUNNING, the full
conditioning pipeline with derating, watchdogs on two sources) beside the peer it replaced, the
loop's old bare `np.clip(desired, lo, hi, out=target)`.

Inputs are a precomputed stream of 4096 cycles, replayed in a loop: policy-like actions (mostly
small moves, now and then a jump beyond the rate bound or the limits, a rare NaN), a hand that
follows its targets with a lag, and efforts that cross the derating threshold on ~10 % of the
cycles. Each call is timed alone with perf_counter_ns.

  clip           the peer: np.clip into the joint limits (no rate limit, no derate, no counting)
  conditioner    ActionConditioner.condition() alone (four stages, counted)
  supervisor     Supervisor.begin() + cycle(): measure the hand, watchdogs, conditioning

    python -m bench safety [--duration S]    (default 10 s per case)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from raas_drivers.hand import HandState
from raas_drivers.hand.config import (
    ACTUATOR_JOINT_INDEX,
    ACTUATOR_LIMITS,
    EFFORT_LIMITS,
    JOINT_NAMES,
    default_idle_action,
)

from bench.common import dist_us, fmt_dist, ratio, write_report
from raas.core.observation import SourceReading
from raas.safety import Cause, SafetyConfig, SafetyState, Supervisor

RATE_HZ = 12.5
STREAM = 4096
N = len(ACTUATOR_LIMITS)


def make_stream(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo, hi = ACTUATOR_LIMITS[:, 0], ACTUATOR_LIMITS[:, 1]
    # a random walk inside the range, with jumps and out-of-range requests now and then
    walk = np.cumsum(rng.normal(0.0, 0.05, (STREAM, N)), axis=0)
    desired = lo + (hi - lo) * (0.5 + 0.4 * np.sin(walk))
    jump = rng.random(STREAM) < 0.05
    desired[jump] += rng.normal(0.0, 1.0, (int(jump.sum()), N))
    desired[rng.random(STREAM) < 0.002, 3] = np.nan
    lag = rng.normal(0.0, 0.03, (STREAM, N))
    strain = rng.random(STREAM) < 0.1
    efforts = rng.uniform(0.0, 0.6, (STREAM, N)) * EFFORT_LIMITS
    efforts[strain, :5] = 0.9 * EFFORT_LIMITS[:5]
    temps = rng.uniform(35.0, 50.0, (STREAM, N))
    return {"desired": desired, "lag": lag, "efforts": efforts, "temps": temps}


def measure(call: Callable[[int], None], duration_s: float) -> np.ndarray:
    n = int(duration_s * 200_000)
    out = np.zeros(n, dtype=np.int64)
    clock = time.perf_counter_ns
    end = time.monotonic() + duration_s
    i = 0
    while i < n and time.monotonic() < end:
        for _ in range(1000):
            if i >= n:
                break
            t0 = clock()
            call(i)
            out[i] = clock() - t0
            i += 1
    return out[:i]


def clip_case(s: dict[str, np.ndarray]) -> Callable[[int], None]:
    lo = np.array(ACTUATOR_LIMITS[:, 0])
    hi = np.array(ACTUATOR_LIMITS[:, 1])
    target = np.zeros(N)
    desired = s["desired"]

    def call(i: int) -> None:
        np.clip(desired[i % STREAM], lo, hi, out=target)

    return call


def supervisor() -> Supervisor:
    sup = Supervisor(
        ACTUATOR_LIMITS,
        EFFORT_LIMITS,
        default_idle_action(),
        ACTUATOR_JOINT_INDEX,
        SafetyConfig(),
        1.0 / RATE_HZ,
    )
    sup.needs = frozenset({"hand", "mocap"})
    return sup


def conditioner_case(s: dict[str, np.ndarray]) -> Callable[[int], None]:
    c = supervisor().conditioner
    target = np.zeros(N)
    measured = np.zeros(N)
    desired, lag, efforts, temps = s["desired"], s["lag"], s["efforts"], s["temps"]

    def call(i: int) -> None:
        j = i % STREAM
        np.add(target, lag[j], out=measured)  # (outside the timed part in spirit: ~0.5 us)
        c.condition(desired[j], target, measured, efforts[j], temps[j])

    return call


def supervisor_case(s: dict[str, np.ndarray]) -> Callable[[int], None]:
    sup = supervisor()
    readings = [
        SourceReading(name="hand", deadline_ns=2_000_000, required=True, stale=False),
        SourceReading(name="mocap", deadline_ns=2_000_000, required=True, stale=False),
    ]
    states = [HandState(cycle=j, capture_ns=j) for j in range(STREAM)]
    jidx = np.array(ACTUATOR_JOINT_INDEX)
    home = default_idle_action()
    for j, st in enumerate(states):  # the hand a lag behind a plausible target
        st.positions = np.zeros(len(JOINT_NAMES))
        st.positions[jidx] = np.clip(
            home + s["lag"][j], ACTUATOR_LIMITS[:, 0], ACTUATOR_LIMITS[:, 1]
        )
        st.efforts = s["efforts"][j]
        st.temperatures = s["temps"][j]
    target = np.zeros(N)
    desired = s["desired"]
    sup.begin(0, states[0])
    sup.arm(Cause.POLICY)

    def call(i: int) -> None:
        j = i % STREAM
        sup.begin(i, states[j])
        sup.cycle(readings, desired[j], True, False, False, target)

    call(0)
    if sup.state is not SafetyState.RUNNING:
        raise RuntimeError(f"the supervisor is not running: {sup.status()}")
    return call


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench safety", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    args = p.parse_args(argv)
    stream = make_stream()
    results: dict[str, Any] = {}
    cases: list[tuple[str, Callable[[dict[str, np.ndarray]], Callable[[int], None]]]] = [
        ("clip", clip_case),
        ("conditioner", conditioner_case),
        ("supervisor", supervisor_case),
    ]
    for name, build in cases:
        call = build(stream)
        measure(call, min(1.0, args.duration / 5))  # warm up
        results[name] = dist_us(measure(call, args.duration))
        print(fmt_dist(f"condition: {name}", results[name]), flush=True)
    sup_vs_clip = {
        k: ratio(results["supervisor"][k], results["clip"][k]) for k in ("p50", "p99", "p999")
    }
    extra_us = {k: round(results["supervisor"][k] - results["clip"][k], 3) for k in ("p50", "p99")}
    budget_share = round(results["supervisor"]["p999"] / (1e6 / RATE_HZ), 6)
    print(
        f"ratio supervisor/clip: p50 {sup_vs_clip['p50']}, p99 {sup_vs_clip['p99']}, "
        f"p99.9 {sup_vs_clip['p999']}; extra per cycle p50 {extra_us['p50']} us, "
        f"p99 {extra_us['p99']} us; p99.9 is {budget_share:.4%} of a {1e3 / RATE_HZ:.0f} ms cycle",
        flush=True,
    )
    write_report(
        "safety",
        {
            "duration_s": args.duration,
            "rate_hz": RATE_HZ,
            "actuators": N,
            "cases": results,
            "supervisor_vs_clip": sup_vs_clip,
            "supervisor_minus_clip_us": extra_us,
            "supervisor_p999_share_of_period": budget_share,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
