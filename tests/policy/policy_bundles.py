"""Helpers that build bundles for the policy tests: manifests, and deliberately simple or broken
models from onnx.helper."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from raas_drivers.hand.config import ACTUATOR_NAMES

PERIOD = 0.08


def state_fields() -> list[dict[str, Any]]:
    return [
        {"key": "fingertip_positions", "shape": [5, 3], "mean": 1.0, "std": 0.1},
        {"key": "object_position", "shape": [3]},
        {"key": "relative_goal_orientation", "shape": [4]},
    ]


def write_manifest(dir_: Path, **over: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "name": dir_.name,
        "control_period_s": PERIOD,
        "observation": {"input": "obs", "fields": state_fields()},
        "action": {"output": "action", "actuators": list(ACTUATOR_NAMES)},
    }
    m.update(over)
    (dir_ / "manifest.json").write_text(json.dumps(m))
    return m


def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def dense_model(path: Path, n_in: int, n_out: int, bias: float = 0.0) -> None:
    """action = obs @ W + b (b may be NaN): a stateless model from onnx.helper."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(n_in, n_out)).astype(np.float32) * 0.1, "W")
    b = numpy_helper.from_array(np.full((n_out,), bias, dtype=np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["obs", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "B"], ["action"]),
        ],
        "dense",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, n_out])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9  # what onnxruntime 1.x reads (onnx.helper writes its newest)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
