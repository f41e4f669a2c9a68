"""An example bundle for any hand: `python -m raas.policy.examples DIR --actuators 16` (or
`--cell CELL.toml`, the hand of a cell file).

A stateless policy made with onnx's own helpers (no training framework): the hand's joint
positions and its previous action in, one value in [-1, 1] per actuator out (tanh of a seeded
random linear map), continuous absolute targets. Its manifest names the hand (`hand.model`) and
its actuators, so it loads only on that hand. RANDOM weights: it exercises the pipeline on a
hand of that shape, it does nothing useful.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from raas_drivers.hand.shape import HandShape

#: opset of the generated graph (MatMul, Add, Tanh: any runtime has them)
OPSET = 17


def generic_shape(actuators: int, model: str = "mirror") -> HandShape:
    """The shape of a mirror hand with `actuators = N` and no other settings (names joint_i,
    range [-1, 1] rad, effort limit 1)."""
    names = tuple(f"joint_{i}" for i in range(actuators))
    return HandShape(
        model=model,
        actuator_names=names,
        joint_names=names,
        limits=np.tile([-1.0, 1.0], (actuators, 1)),
        effort_limits=np.ones(actuators),
        actuator_joint_index=tuple(range(actuators)),
    )


def _model(n_in: int, n_out: int, seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
    b = np.zeros(n_out, dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["obs", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["pre"]),
            helper.make_node("Tanh", ["pre"], ["action"]),
        ],
        "hand_example",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, n_out])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def make_hand_bundle(
    dir_: Path, shape: HandShape, *, control_period_s: float = 0.08, seed: int = 0
) -> Path:
    """Write a bundle for `shape` into `dir_` (model.onnx + manifest.json); return `dir_`."""
    dir_.mkdir(parents=True, exist_ok=True)
    nj, na = shape.n_joints, shape.n_actuators
    onnx.save(_model(nj + na, na, seed), dir_ / "model.onnx")
    manifest = {
        "format": 1,
        "name": f"{shape.model}-{na}",
        "description": f"stateless example policy for the hand {shape.model!r} ({na} "
        "actuators): joint positions and previous action in, absolute targets out; RANDOM "
        "weights",
        "model": "model.onnx",
        "control_period_s": control_period_s,
        "hand": {"model": shape.model},
        "observation": {
            "input": "obs",
            "fields": [
                {"key": "joint_positions", "shape": [nj], "units": "rad", "clip": 5.0},
                {"key": "previous_action", "shape": [na], "units": "rad", "clip": 5.0},
            ],
        },
        "action": {
            "output": "action",
            "actuators": list(shape.actuator_names),
            "kind": "continuous",
            "mode": "absolute",
            "smoothing": 0.5,
        },
    }
    (dir_ / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return dir_


def hand_bundle_from_args(
    out: Path, actuators: int | None, cell: Path | None, hand_model: str, rate_hz: float | None
) -> Path:
    """What `python -m raas.policy.examples DIR --actuators N | --cell CELL.toml` makes:
    DIR/hand-<model>-<N>. Raises ConfigError for a bad cell file."""
    period_s = 0.08
    if cell is not None:
        from raas.config import assemble_cell_config, hand_shape  # noqa: PLC0415 - only here

        cfg = assemble_cell_config(cell, {}, {}, what="raas.policy.examples")
        shape = hand_shape(cfg)
        period_s = cfg.loop.period_ns / 1e9
    else:
        assert actuators is not None
        shape = generic_shape(actuators, hand_model)
    if rate_hz is not None:
        period_s = 1.0 / rate_hz
    return make_hand_bundle(
        out / f"hand-{shape.model}-{shape.n_actuators}", shape, control_period_s=period_s
    )
