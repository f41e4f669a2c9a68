"""The warm-up inference before the trigger (PolicyRunner.prepare) must not change what the
policy does: with or without it, the same observations give the same actions and the same
recurrent state, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from policy_bundles import write_manifest

from raas.policy import examples, load_bundle
from raas.policy.runner import PolicyRunner


@pytest.fixture(scope="module")
def lstm_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("warm") / "bundle"
    d.mkdir()
    examples.export_lstm(
        d / "model.onnx", n_in=22, dense=16, hidden=8, n_out=20, logits_shape=(20,)
    )
    write_manifest(d, state=[{"input": "h", "output": "h_out"}, {"input": "c", "output": "c_out"}])
    return d


def _run(runner: PolicyRunner, inputs: list[float], warm: bool) -> list[np.ndarray]:
    runner.reset()
    outs = []
    for v in inputs:
        runner.obs_input[:] = v
        if warm:
            runner.prepare()
            runner.prepare()  # twice: a warm-up never feeds the next one either
        runner.policy.run()
        outs.append(runner.action_output.copy())
        outs.append(runner.policy.state("h").copy())
        outs.append(runner.policy.state("c").copy())
    return outs


def test_warmup_leaves_state_and_actions_unchanged(lstm_bundle: Path) -> None:
    runner = load_bundle(lstm_bundle, period_s=0.08)
    seq = [0.5, -1.0, 2.0, 0.0, 1.5]
    cold = _run(runner, seq, warm=False)
    warm = _run(runner, seq, warm=True)
    for a, b in zip(cold, warm, strict=True):
        np.testing.assert_array_equal(a, b)
    assert runner.prepared == 2 * len(seq)
    # the test can fail: a run on the real bindings does advance the state
    runner.reset()
    runner.obs_input[:] = 0.5
    runner.policy.run()
    assert not np.array_equal(runner.policy.state("h"), np.zeros_like(runner.policy.state("h")))


def test_warmup_of_the_whole_act_leaves_its_actions_unchanged(dense_bundle: Path) -> None:
    """prepare() also refits the block's pose on the last observation (to warm the SVD):
    act() on the next observation must give the same targets as without it."""
    from tests.policy.test_budget import observation

    def cycle_obs(k: int):  # type: ignore[no-untyped-def]
        obs = observation()
        frame = obs.mocap
        assert frame is not None
        frame.positions[5:] += [0.01 * k, -0.005 * k, 0.002 * k]  # the block moves
        return obs

    def run(warm: bool) -> list[np.ndarray]:
        runner = load_bundle(dense_bundle, period_s=0.08)
        outs = []
        for k in range(5):
            if warm:
                runner.prepare()
            out = np.zeros(20)
            assert runner.act(cycle_obs(k), out) is True
            outs += [out, runner.pose.position.copy(), runner.pose.orientation.copy()]
        assert runner.prepared == (5 if warm else 0)
        return outs

    for a, b in zip(run(False), run(True), strict=True):
        np.testing.assert_array_equal(a, b)
