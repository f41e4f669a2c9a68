"""`python -m bench policy` measures any bundle: its observation carries every source a bundle
can read (a bundle reading hand data used to measure nothing and print a ratio of 0.015), and a
side that measured nothing stops the benchmark instead of printing a ratio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.bench_policy import Bare, EmptySampleError, check_runs, need, observation_for, tight
from raas.policy import load_bundle
from raas.policy.examples import ensure_examples
from raas.policy.runner import PolicyRunner

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> PolicyRunner:
    bundle = ensure_examples(tmp_path_factory.mktemp("bundles"), ["small"])["small"]
    runner = load_bundle(Path(bundle), period_s=0.08)
    assert "hand" in runner.needs, "the example no longer reads hand data; pick one that does"
    return runner


def test_hand_reading_bundle_is_measured(small: PolicyRunner) -> None:
    obs = observation_for(small)
    check_runs(small, obs)  # raises when the observation lacks a source
    runner_inferences = small.inferences
    out = np.zeros(len(small.cell.actuator_names))
    assert small.act(obs, out)
    assert small.inferences == runner_inferences + 1
    assert np.isfinite(out).all()


def test_tight_loop_measures_both_sides(small: PolicyRunner, tmp_path: Path) -> None:
    bundle = ensure_examples(tmp_path, ["small"])["small"]
    bare = Bare(Path(bundle) / small.manifest.model, small, 1)
    res = tight(small, bare, 20, blocks=2)
    assert len(res["bare"]) == len(res["act"]) == len(res["inference"]) == 20


def test_no_ratio_from_an_empty_sample(small: PolicyRunner) -> None:
    with pytest.raises(EmptySampleError, match="n=0"):
        need(np.array([], dtype=np.int64), "ours")
    obs = observation_for(small)
    del obs.sources["hand"]
    with pytest.raises(EmptySampleError, match="joint_positions"):
        check_runs(small, obs)
