"""The fault matrix's misbehaving bundles pass the load-time checks and misbehave only at run
time, from their own recurrent state: the overrun is the model's, not a sleep in our code."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from raas.policy import load_bundle
from tests.safety.matrix_bundles import counter_bundle


def _run(bundle: Path, steps: int) -> tuple[list[float], list[bool]]:
    runner = load_bundle(bundle, period_s=0.08)  # the latency check at load passes
    session = runner.policy
    session.inputs["obs"][:] = 0.5  # a real observation advances the step counter
    times, finite = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        session.run()
        times.append(time.perf_counter() - t0)
        finite.append(bool(np.isfinite(session.outputs["action"]).all()))
    return times, finite


def test_slow_bundle_overruns_only_after_its_counter(tmp_path: Path) -> None:
    bundle = counter_bundle(tmp_path / "slow", kind="slow", after_steps=3, slow_ms=100)
    times, _ = _run(bundle, 5)
    assert max(times[:3]) < 0.02
    assert min(times[3:]) > 0.04  # calibrated to 100 ms: over the 40 ms budget, widely


def test_nan_bundle_turns_nan_after_its_counter(tmp_path: Path) -> None:
    _, finite = _run(counter_bundle(tmp_path / "nan", kind="nan", after_steps=3), 5)
    assert finite == [True, True, True, False, False]
