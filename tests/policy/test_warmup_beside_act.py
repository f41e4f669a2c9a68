"""The warm-up while the devices answer (PolicyRunner.warm_background, on the loop's helper
thread) runs beside act() on the same onnxruntime session: with a thread calling it without
pause, the same observations give the same actions and the same recurrent state, bit for bit,
as without it (a real session; the two threads really overlap)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from policy_bundles import write_manifest

from raas.policy import examples, load_bundle
from raas.policy.runner import PolicyRunner


@pytest.fixture(scope="module")
def lstm_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bgwarm") / "bundle"
    d.mkdir()
    examples.export_lstm(
        d / "model.onnx", n_in=22, dense=64, hidden=64, n_out=20, logits_shape=(20,)
    )
    write_manifest(d, state=[{"input": "h", "output": "h_out"}, {"input": "c", "output": "c_out"}])
    return d


def _run(runner: PolicyRunner, inputs: np.ndarray, hammer: bool) -> tuple[list[np.ndarray], int]:
    runner.reset()
    stop = threading.Event()
    warmed = [0]

    def warm_forever() -> None:
        while not stop.is_set():
            runner.warm_background()
            warmed[0] += 1

    thread = threading.Thread(target=warm_forever, daemon=True)
    if hammer:
        thread.start()
    outs = []
    try:
        for v in inputs:
            runner.obs_input[:] = v
            runner.policy.run()
            outs.append(runner.action_output.copy())
            outs.append(runner.policy.state("h").copy())
            outs.append(runner.policy.state("c").copy())
    finally:
        stop.set()
        if hammer:
            thread.join(10)
    return outs, warmed[0]


def test_background_warmups_leave_actions_and_state_unchanged(lstm_bundle: Path) -> None:
    runner = load_bundle(lstm_bundle, period_s=0.08)
    seq = np.random.default_rng(3).normal(size=(400, 22))
    alone, _ = _run(runner, seq, hammer=False)
    before = runner.background_warmups
    beside, warmed = _run(runner, seq, hammer=True)
    assert warmed > 10, "the warm-up thread did not overlap the runs"
    assert runner.background_warmups - before == warmed
    assert runner.stats()["background_warmups"] == runner.background_warmups
    for a, b in zip(alone, beside, strict=True):
        np.testing.assert_array_equal(a, b)
    # the comparison can fail: the sequence does move the state and the actions
    assert not np.array_equal(alone[1], alone[-2]) and not np.array_equal(alone[0], alone[-3])
