"""Example bundles, generated (never committed as binaries):

  dactyl   Dactyl-shaped state policy: 22 inputs (fingertips, object position, relative goal
           orientation), dense 1024 + ReLU, LSTM 512, 20 x 11 logits (discrete relative
           targets, EMA smoothing 0.3), trained period 80 ms.
  small    the same interface at toy size (dense 64, LSTM 32), continuous absolute targets:
           fast to load, used by tests and `make run`.
  vision   a small LSTM policy whose object pose comes from a vision model: the cell's 3
           camera images (1, 3, H, W) in, the block's pose (7) out.

The weights are random (seeded): these bundles exercise the pipeline and its timing; they do not
reorient the block. The graphs are built with onnx.helper and numpy weights, so generating them
needs only the daemon's own dependencies (onnx), not torch; the graphs have the interface
torch.onnx.export gives (tests/policy/test_lstm_state.py checks that torch exports still load).

    python -m raas.policy.examples DIR [--camera 200x200]     (raasd up does it on first use)
    python -m raas.policy.examples DIR --actuators 16 | --cell CELL.toml   (any hand:
        raas.policy.hand_bundle; the Shadow-hand examples above are then not made)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto, NodeProto, TensorProto, helper, numpy_helper
from raas_drivers.hand.config import ACTUATOR_NAMES

from raas.policy.keys import KEYS

EXAMPLES = ("dactyl", "small", "vision")
#: The vision model's inputs, one per camera of the cell (manifest `vision.cameras`).
CAMERAS = ("left", "right", "top")

#: Rough statistics of the simulated cell (the block rests near (1.0, 0.87, 0.17) m).
_CENTRE = (1.0, 0.87, 0.17)


def _state_fields(relative_goal: bool = True) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = [
        {
            "key": "fingertip_positions",
            "shape": list(KEYS["fingertip_positions"].shape),
            "units": "m",
            "mean": list(_CENTRE) * 5,
            "std": 0.03,
            "clip": 5.0,
        },
        {
            "key": "object_position",
            "shape": [3],
            "units": "m",
            "mean": list(_CENTRE),
            "std": 0.03,
            "clip": 5.0,
        },
    ]
    if relative_goal:
        fields.append(
            {"key": "relative_goal_orientation", "shape": [4], "units": "quaternion", "clip": 5.0}
        )
    return fields


def _actuators() -> list[str]:
    return list(ACTUATOR_NAMES)


#: The opset and IR version of the generated models: what onnxruntime 1.18+ reads (onnx.helper
#: would otherwise write its newest IR version).
OPSET = 17
IR_VERSION = 9


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """PyTorch's default initialisation for Linear/LSTM/Conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def _const(name: str, values: Sequence[int]) -> TensorProto:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _save(model: ModelProto, path: Path) -> None:
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def lstm_model(
    *,
    n_in: int,
    dense: int,
    hidden: int,
    n_out: int,
    logits_shape: tuple[int, ...],
    seed: int = 0,
    output_name: str = "action",
) -> ModelProto:
    """One step of a dense + LSTM policy as an ONNX graph (onnx.helper, numpy weights):

        obs (1, n_in) -> MatMul + Add -> Relu -> LSTM step (state h, c: (1, 1, hidden))
            -> MatMul + Add -> <output_name> (1, *logits_shape); h_out, c_out (1, 1, hidden)

    the same interface torch.onnx.export gives for an nn.Linear / nn.LSTM(batch_first) policy
    with its state as explicit inputs and outputs (docs/policy.md section 4)."""
    rng = np.random.default_rng(seed)
    g = 4 * hidden  # the LSTM's gates i, o, f, c stacked (ONNX order)
    init = [
        numpy_helper.from_array(_uniform(rng, (n_in, dense), n_in), "dense.W"),
        numpy_helper.from_array(_uniform(rng, (dense,), n_in), "dense.B"),
        numpy_helper.from_array(_uniform(rng, (1, g, dense), hidden), "lstm.W"),
        numpy_helper.from_array(_uniform(rng, (1, g, hidden), hidden), "lstm.R"),
        numpy_helper.from_array(_uniform(rng, (1, 2 * g), hidden), "lstm.B"),
        numpy_helper.from_array(_uniform(rng, (hidden, n_out), hidden), "head.W"),
        numpy_helper.from_array(_uniform(rng, (n_out,), hidden), "head.B"),
        _const("seq_shape", (1, 1, dense)),
        _const("flat_shape", (1, hidden)),
        _const("out_shape", (1, *logits_shape)),
    ]
    nodes = [
        helper.make_node("MatMul", ["obs", "dense.W"], ["dense.mm"]),
        helper.make_node("Add", ["dense.mm", "dense.B"], ["dense.out"]),
        helper.make_node("Relu", ["dense.out"], ["dense.relu"]),
        helper.make_node("Reshape", ["dense.relu", "seq_shape"], ["lstm.x"]),  # (seq, batch, in)
        helper.make_node(
            "LSTM",
            ["lstm.x", "lstm.W", "lstm.R", "lstm.B", "", "h", "c"],
            ["lstm.y", "h_out", "c_out"],
            hidden_size=hidden,
        ),
        helper.make_node("Reshape", ["h_out", "flat_shape"], ["lstm.flat"]),
        helper.make_node("MatMul", ["lstm.flat", "head.W"], ["head.mm"]),
        helper.make_node("Add", ["head.mm", "head.B"], ["head.out"]),
        helper.make_node("Reshape", ["head.out", "out_shape"], [output_name]),
    ]
    state = [1, 1, hidden]
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "lstm_policy",
        [
            helper.make_tensor_value_info("obs", f, [1, n_in]),
            helper.make_tensor_value_info("h", f, state),
            helper.make_tensor_value_info("c", f, state),
        ],
        [
            helper.make_tensor_value_info(output_name, f, [1, *logits_shape]),
            helper.make_tensor_value_info("h_out", f, state),
            helper.make_tensor_value_info("c_out", f, state),
        ],
        initializer=init,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def vision_model(width: int, height: int, seed: int = 0) -> ModelProto:
    """Three camera towers (strided 8x8 conv to 8 channels, ReLU, global average), concatenated,
    then a linear pose head (7: x y z, qw qx qy qz) that starts near the block's resting pose."""
    rng = np.random.default_rng(seed)
    f = TensorProto.FLOAT
    init: list[TensorProto] = []
    nodes: list[NodeProto] = []
    for cam in CAMERAS:
        init += [
            numpy_helper.from_array(_uniform(rng, (8, 3, 8, 8), 3 * 64), f"{cam}.W"),
            numpy_helper.from_array(_uniform(rng, (8,), 3 * 64), f"{cam}.B"),
        ]
        nodes += [
            helper.make_node(
                "Conv",
                [cam, f"{cam}.W", f"{cam}.B"],
                [f"{cam}.conv"],
                kernel_shape=[8, 8],
                strides=[8, 8],
            ),
            helper.make_node("Relu", [f"{cam}.conv"], [f"{cam}.relu"]),
            helper.make_node("GlobalAveragePool", [f"{cam}.relu"], [f"{cam}.pool"]),
            helper.make_node("Flatten", [f"{cam}.pool"], [f"{cam}.feat"]),
        ]
    head_w = _uniform(rng, (24, 7), 24) * 0.01
    head_b = np.array([*_CENTRE, 1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    init += [
        numpy_helper.from_array(head_w, "head.W"),
        numpy_helper.from_array(head_b, "head.B"),
    ]
    nodes += [
        helper.make_node("Concat", [f"{c}.feat" for c in CAMERAS], ["feats"], axis=1),
        helper.make_node("MatMul", ["feats", "head.W"], ["head.mm"]),
        helper.make_node("Add", ["head.mm", "head.B"], ["pose"]),
    ]
    image = [1, 3, height, width]
    graph = helper.make_graph(
        nodes,
        "vision_towers",
        [helper.make_tensor_value_info(c, f, image) for c in CAMERAS],
        [helper.make_tensor_value_info("pose", f, [1, 7])],
        initializer=init,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def export_lstm(
    path: Path,
    *,
    n_in: int,
    dense: int,
    hidden: int,
    n_out: int,
    logits_shape: tuple[int, ...],
    seed: int = 0,
    output_name: str = "action",
) -> None:
    """Write a dense + LSTM policy (lstm_model) to `path`: inputs obs, h, c; outputs
    <output_name>, h_out, c_out."""
    model = lstm_model(
        n_in=n_in,
        dense=dense,
        hidden=hidden,
        n_out=n_out,
        logits_shape=logits_shape,
        seed=seed,
        output_name=output_name,
    )
    _save(model, path)


def export_vision(path: Path, width: int, height: int, seed: int = 0) -> None:
    """Write the three-camera vision model (vision_model) to `path`."""
    _save(vision_model(width, height, seed), path)


def _write(dir_: Path, manifest: dict[str, Any]) -> None:
    (dir_ / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def make_dactyl(dir_: Path) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    fields = _state_fields()
    n_in = sum(math.prod(f["shape"]) for f in fields)
    export_lstm(
        dir_ / "model.onnx", n_in=n_in, dense=1024, hidden=512, n_out=220, logits_shape=(20, 11)
    )
    _write(
        dir_,
        {
            "format": 1,
            "name": "dactyl-shaped",
            "description": "Dactyl-shaped state policy (dense 1024, LSTM 512, 20x11 logits) "
            "with RANDOM weights: for timing and plumbing, it does not reorient the block",
            "model": "model.onnx",
            "control_period_s": 0.08,
            "observation": {"input": "obs", "fields": fields},
            "action": {
                "output": "action",
                "actuators": _actuators(),
                "kind": "discrete",
                "bins": 11,
                "mode": "relative",
                "relative_step": 0.1,
                "smoothing": 0.3,
            },
            "state": [
                {"input": "h", "output": "h_out", "shape": [1, 1, 512]},
                {"input": "c", "output": "c_out", "shape": [1, 1, 512]},
            ],
        },
    )
    return dir_


def make_small(dir_: Path) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    fields = [
        *_state_fields(),
        {"key": "joint_positions", "shape": [24], "units": "rad", "std": 0.5, "clip": 5.0},
    ]
    export_lstm(dir_ / "model.onnx", n_in=46, dense=64, hidden=32, n_out=20, logits_shape=(20,))
    _write(
        dir_,
        {
            "format": 1,
            "name": "small",
            "description": "small LSTM policy (dense 64, LSTM 32), continuous absolute targets, "
            "RANDOM weights",
            "control_period_s": 0.08,
            "observation": {"input": "obs", "fields": fields},
            "action": {
                "output": "action",
                "actuators": _actuators(),
                "kind": "continuous",
                "mode": "absolute",
                "smoothing": 0.5,
            },
            "state": [
                {"input": "h", "output": "h_out", "shape": [1, 1, 32]},
                {"input": "c", "output": "c_out", "shape": [1, 1, 32]},
            ],
        },
    )
    return dir_


def make_vision(dir_: Path, width: int = 200, height: int = 200) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    fields = _state_fields()
    export_lstm(dir_ / "model.onnx", n_in=22, dense=64, hidden=32, n_out=20, logits_shape=(20,))
    export_vision(dir_ / "vision.onnx", width, height)
    _write(
        dir_,
        {
            "format": 1,
            "name": "vision",
            "description": "small LSTM policy fed by a vision model of the cell's 3 cameras "
            f"({width}x{height}); RANDOM weights",
            "control_period_s": 0.08,
            "observation": {"input": "obs", "fields": fields},
            "action": {
                "output": "action",
                "actuators": _actuators(),
                "kind": "continuous",
                "mode": "absolute",
                "smoothing": 0.5,
            },
            "state": [{"input": "h", "output": "h_out"}, {"input": "c", "output": "c_out"}],
            "vision": {
                "model": "vision.onnx",
                "cameras": {"left": "left", "right": "right", "top": "top"},
                "image_width": width,
                "image_height": height,
                "output": "pose",
            },
        },
    )
    return dir_


def make_examples(
    out: Path, names: Sequence[str] = EXAMPLES, camera: tuple[int, int] = (200, 200)
) -> dict[str, Path]:
    made: dict[str, Path] = {}
    for name in names:
        if name == "dactyl":
            made[name] = make_dactyl(out / "dactyl")
        elif name == "small":
            made[name] = make_small(out / "small")
        elif name == "vision":
            made[name] = make_vision(out / "vision", *camera)
        else:
            raise ValueError(f"unknown example {name!r}; choose from {', '.join(EXAMPLES)}")
    return made


def ensure_examples(out: Path, names: Sequence[str] = EXAMPLES) -> dict[str, Path]:
    """Generate the examples that are missing in `out` (what `make run` does on first run)."""
    missing = [n for n in names if not (out / n / "manifest.json").is_file()]
    if missing:
        make_examples(out, missing)
    return {n: out / n for n in names}


def parse_resolution(text: str) -> tuple[int, int]:
    w, h = (int(x) for x in text.lower().split("x"))
    return w, h


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="generate the example policy bundles")
    p.add_argument("dir", type=Path)
    p.add_argument("--only", choices=EXAMPLES, action="append", help="just these examples")
    p.add_argument("--camera", default="200x200", help="vision model image size WxH (200x200)")
    hand = p.add_mutually_exclusive_group()
    hand.add_argument(
        "--actuators",
        type=int,
        metavar="N",
        help="a bundle for an N-actuator mirror hand (names joint_0..), raas.policy.hand_bundle",
    )
    hand.add_argument(
        "--cell",
        type=Path,
        metavar="CELL.toml",
        help="a bundle for this cell file's hand (its model, actuators and loop rate)",
    )
    p.add_argument("--hand-model", default="mirror", help="hand.model with --actuators (mirror)")
    args = p.parse_args(argv)
    if args.actuators is not None or args.cell is not None:
        from raas.policy.hand_bundle import hand_bundle_from_args  # noqa: PLC0415 - no torch

        path = hand_bundle_from_args(args.dir, args.actuators, args.cell, args.hand_model, None)
        sys.stdout.write(f"hand: {path}\n")
        return 0
    made = make_examples(args.dir, args.only or EXAMPLES, parse_resolution(args.camera))
    for name, path in made.items():
        sys.stdout.write(f"{name}: {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
