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


def dense_model(
    path: Path, n_in: int, n_out: int, bias: float = 0.0, dtype: str = "float32"
) -> None:
    """action = obs @ W + b (b may be NaN): a stateless model from onnx.helper, in `dtype`
    (float32, float64, float16: what torch exports after .double() or .half())."""
    rng = np.random.default_rng(0)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    w = numpy_helper.from_array((rng.normal(size=(n_in, n_out)) * 0.1).astype(dtype), "W")
    b = numpy_helper.from_array(np.full((n_out,), bias, dtype=dtype), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["obs", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "B"], ["action"]),
        ],
        "dense",
        [helper.make_tensor_value_info("obs", elem, [1, n_in])],
        [helper.make_tensor_value_info("action", elem, [1, n_out])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9  # what onnxruntime 1.x reads (onnx.helper writes its newest)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def slow_when_observed_model(path: Path, n_in: int, n_out: int, iterations: int) -> None:
    """action = tanh(obs @ W), plus `iterations` rounds of a 64x768 @ 768x768 matmul whose result
    is multiplied by 0, run only when the observation is not all zeros: fast at load (the
    latency is measured on zeros, so the load-time check passes), slow in the loop (tens of ms
    per inference once real observations come in: what the acceptance tester's "obsslow"
    bundle did)."""
    rng = np.random.default_rng(0)
    n = 768
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["x_in", "Wl"], ["mm"]),
            helper.make_node("Tanh", ["mm"], ["x_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [64, n]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [64, n]),
        ],
    )

    def const(name: str, value: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))

    nodes = [
        helper.make_node("ReduceSum", ["obs"], ["sum"], keepdims=1),
        helper.make_node("Abs", ["sum"], ["abs"]),
        const("thr", np.full((1, 1), 1e-3, np.float32)),
        helper.make_node("Greater", ["abs", "thr"], ["observed"]),
        helper.make_node("Cast", ["observed"], ["observed_i"], to=TensorProto.INT64),
        const("k", np.array([[iterations]], np.int64)),
        helper.make_node("Mul", ["observed_i", "k"], ["m2"]),
        const("scalar", np.array([], np.int64)),
        helper.make_node("Reshape", ["m2", "scalar"], ["M"]),
        const("true", np.array(True)),
        helper.make_node("Loop", ["M", "true", "x0"], ["xf"], body=body),
        helper.make_node("ReduceMean", ["xf"], ["xm"], keepdims=0),
        const("zero", np.zeros((), np.float32)),
        helper.make_node("Mul", ["xm", "zero"], ["xz"]),
        helper.make_node("MatMul", ["obs", "W"], ["a0"]),
        helper.make_node("Tanh", ["a0"], ["a1"]),
        helper.make_node("Add", ["a1", "xz"], ["action"]),
    ]
    weights = [
        numpy_helper.from_array(
            (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32), "Wl"
        ),
        numpy_helper.from_array((rng.standard_normal((n_in, n_out)) * 0.1).astype(np.float32), "W"),
        numpy_helper.from_array(np.ones((64, n), np.float32), "x0"),
    ]
    graph = helper.make_graph(
        nodes,
        "slow_when_observed",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, n_out])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
