"""A torch.onnx.export'ed LSTM policy loads as exported (fixed or dynamic batch, external data
files included) and carries its memory from cycle to cycle: the output depends on the past."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from policy_bundles import write_manifest
from torch_export import export_lstm

from raas.policy import load_bundle
from raas.policy.runner import PolicyRunner


@pytest.fixture(scope="module", params=["fixed", "dynamic"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp(request.param) / "bundle"
    d.mkdir()
    # torch's default exporter, external weights file beside the model, as a researcher gets it
    export_lstm(
        d / "model.onnx",
        n_in=22,
        dense=16,
        hidden=8,
        n_out=20,
        logits_shape=(20,),
        dynamic_batch=request.param == "dynamic",
        external_data=True,
    )
    write_manifest(d, state=[{"input": "h", "output": "h_out"}, {"input": "c", "output": "c_out"}])
    return d


def _run(runner: PolicyRunner, inputs: list[float]) -> list[np.ndarray]:
    outs = []
    for v in inputs:
        runner.obs_input[:] = v
        runner.policy.run()
        outs.append(runner.action_output.copy())
    return outs


def test_exported_lstm_loads_and_remembers(exported: Path) -> None:
    assert any(p.name != "model.onnx" and p.suffix != ".json" for p in exported.iterdir()), (
        "the exporter wrote no external data file; the test no longer covers that case"
    )
    runner = load_bundle(exported, period_s=0.08)
    assert runner.manifest.state[0].input == "h"
    # same last input, different history -> different output: the state is carried
    a = _run(runner, [0.0, 0.0, 1.0])
    runner.reset()
    b = _run(runner, [2.0, -2.0, 1.0])
    assert not np.allclose(a[-1], b[-1])
    # a reset gives the memory-less start again: the same sequence, the same outputs
    runner.reset()
    c = _run(runner, [0.0, 0.0, 1.0])
    for x, y in zip(a, c, strict=True):
        np.testing.assert_array_equal(x, y)
    # the state input of the next cycle is what the model wrote, not the initial zeros
    assert np.any(runner.policy.state("h") != 0.0)
