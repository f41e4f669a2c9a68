"""A small torch-exported bundle, loaded once, for the task tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from raas_drivers.hand.config import ACTUATOR_NAMES

from raas.policy import examples


@pytest.fixture(scope="session")
def small_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return examples.make_small(tmp_path_factory.mktemp("task-bundles") / "small")


@pytest.fixture(scope="session")
def nan_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A policy whose every output is NaN (its bias is NaN)."""
    d = tmp_path_factory.mktemp("task-nan") / "nan"
    d.mkdir()
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["obs", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "B"], ["action"]),
        ],
        "nan",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, 22])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, 20])],
        initializer=[
            numpy_helper.from_array(np.zeros((22, 20), np.float32), "W"),
            numpy_helper.from_array(np.full(20, np.nan, np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(d / "model.onnx"))
    fields = [
        {"key": "fingertip_positions", "shape": [5, 3]},
        {"key": "object_position", "shape": [3]},
        {"key": "relative_goal_orientation", "shape": [4]},
    ]
    manifest = {
        "name": "nan",
        "control_period_s": 0.08,
        "observation": {"input": "obs", "fields": fields},
        "action": {"output": "action", "actuators": list(ACTUATOR_NAMES)},
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d
