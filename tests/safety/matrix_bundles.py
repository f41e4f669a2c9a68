"""Policy bundles for the fault matrix, built with onnx.helper (nothing here sleeps).

`counter_bundle` makes a stateless-looking policy with one recurrent state, a step counter that
advances only on a real observation (the latency measurement at load feeds zeros, so it never
advances there). Once the counter reaches `after_steps`:
  slow  the model runs an ONNX Loop of `iterations` 256x256 MatMuls per step: its inference
        becomes slower than the budget at run time, from the model's own state;
  nan   the action becomes NaN.
The action is otherwise 0 (the middle of every actuator's range, continuous absolute).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from raas_drivers.hand.config import ACTUATOR_NAMES

N_IN = 22
N_OUT = len(ACTUATOR_NAMES)
SIDE = 256  # the Loop body's matrix size


def _manifest(dir_: Path, name: str) -> None:
    manifest: dict[str, Any] = {
        "format": 1,
        "name": name,
        "description": "fault-matrix policy (tests/safety/matrix_bundles.py)",
        "control_period_s": 0.08,
        "observation": {
            "input": "obs",
            "fields": [
                {"key": "fingertip_positions", "shape": [5, 3], "mean": 1.0, "std": 0.1},
                {"key": "object_position", "shape": [3]},
                {"key": "relative_goal_orientation", "shape": [4]},
            ],
        },
        "action": {
            "output": "action",
            "actuators": list(ACTUATOR_NAMES),
            "kind": "continuous",
            "mode": "absolute",
        },
        "state": [{"input": "count", "output": "count_out", "shape": [1, 1], "initial": 0.0}],
    }
    (dir_ / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _loop_body() -> onnx.GraphProto:
    w = np.random.default_rng(1).normal(size=(SIDE, SIDE)).astype(np.float32) / SIDE
    return helper.make_graph(
        [
            helper.make_node("MatMul", ["x_in", "W_body"], ["body_mm"]),
            helper.make_node("Tanh", ["body_mm"], ["x_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [SIDE, SIDE]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [SIDE, SIDE]),
        ],
        initializer=[numpy_helper.from_array(w, "W_body")],
    )


def counter_model(path: Path, *, kind: str, after_steps: int, iterations: int = 0) -> None:
    """kind: 'slow' | 'nan' | 'plain' (never changes)."""
    c = numpy_helper.from_array
    inits = [
        c(np.zeros((N_IN, N_OUT), dtype=np.float32), "W"),
        c(np.zeros((N_OUT,), dtype=np.float32), "B"),
        c(np.array(0.0, dtype=np.float32), "zero"),
        c(np.array(1.0, dtype=np.float32), "one"),
        c(np.array(float(after_steps) - 0.5, dtype=np.float32), "after"),
        c(np.full((1, N_OUT), np.nan, dtype=np.float32), "nan_action"),
        c(np.array(iterations, dtype=np.int64), "iters"),
        c(np.array(0, dtype=np.int64), "no_iters"),
        c(np.full((SIDE, SIDE), 0.5, dtype=np.float32), "x0"),
    ]
    nodes = [
        # count_out = count + (any observation value != 0)
        helper.make_node("Abs", ["obs"], ["abs_obs"]),
        helper.make_node("ReduceSum", ["abs_obs"], ["obs_mass"], keepdims=0),
        helper.make_node("Greater", ["obs_mass", "zero"], ["real_obs"]),
        helper.make_node("Where", ["real_obs", "one", "zero"], ["inc"]),
        helper.make_node("Add", ["count", "inc"], ["count_out"]),
        helper.make_node("Greater", ["count", "after"], ["gate"]),
        # the plain action: obs @ 0 + 0 (the middle of the range)
        helper.make_node("MatMul", ["obs", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["base"]),
    ]
    # the gate as a scalar bool
    nodes.append(helper.make_node("Reshape", ["gate", "scalar_shape"], ["gate_s"]))
    inits.append(c(np.array([], dtype=np.int64), "scalar_shape"))
    if kind == "slow":
        nodes += [
            helper.make_node("Where", ["gate_s", "iters", "no_iters"], ["trip"]),
            helper.make_node("Loop", ["trip", "", "x0"], ["x_final"], body=_loop_body()),
            helper.make_node("ReduceMean", ["x_final"], ["x_mean"], keepdims=0),
            helper.make_node("Mul", ["x_mean", "zero"], ["x_zero"]),
            helper.make_node("Add", ["base", "x_zero"], ["action"]),
        ]
    elif kind == "nan":
        nodes.append(helper.make_node("Where", ["gate_s", "nan_action", "base"], ["action"]))
    else:
        nodes.append(helper.make_node("Identity", ["base"], ["action"]))
    used = {name for node in nodes for name in node.input}
    inits = [i for i in inits if i.name in used]
    graph = helper.make_graph(
        nodes,
        f"counter_{kind}",
        [
            helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, N_IN]),
            helper.make_tensor_value_info("count", TensorProto.FLOAT, [1, 1]),
        ],
        [
            helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, N_OUT]),
            helper.make_tensor_value_info("count_out", TensorProto.FLOAT, [1, 1]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def iterations_for(target_ms: float) -> int:
    """How many Loop iterations take about `target_ms` on this machine (onnxruntime, 1 thread)."""
    path = Path(f"/tmp/raas-calibrate-{time.monotonic_ns()}.onnx")
    probe = 20
    counter_model(path, kind="slow", after_steps=0, iterations=probe)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    path.unlink()
    feed = {"obs": np.ones((1, N_IN), np.float32), "count": np.full((1, 1), 5, np.float32)}
    sess.run(None, feed)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    per_iter_ms = float(np.min(times)) * 1e3 / probe  # the unloaded cost: never too few
    return max(1, round(target_ms / per_iter_ms))


def counter_bundle(dir_: Path, *, kind: str, after_steps: int = 25, slow_ms: float = 60.0) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    iterations = iterations_for(slow_ms) if kind == "slow" else 0
    counter_model(dir_ / "model.onnx", kind=kind, after_steps=after_steps, iterations=iterations)
    _manifest(dir_, f"matrix-{kind}")
    return dir_
