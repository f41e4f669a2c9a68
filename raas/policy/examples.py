"""Example bundles, generated (never committed as binaries):

  dactyl   Dactyl-shaped state policy: 22 inputs (fingertips, object position, relative goal
           orientation), dense 1024 + ReLU, LSTM 512, 20 x 11 logits (discrete relative
           targets, EMA smoothing 0.3), trained period 80 ms.
  small    the same interface at toy size (dense 64, LSTM 32), continuous absolute targets:
           fast to load, used by tests and `make run`.
  vision   a small LSTM policy whose object pose comes from a vision model: the cell's 3
           camera images (1, 3, H, W) in, the block's pose (7) out.

The weights are random (seeded): these bundles exercise the pipeline and its timing; they do not
reorient the block. Policies are exported with torch.onnx.export, as a researcher would.

    python -m raas.policy.examples DIR [--camera 200x200]     (or: raasd bundles make DIR)
    python -m raas.policy.examples DIR --actuators 16 | --cell CELL.toml   (any hand:
        raas.policy.hand_bundle; the Shadow-hand examples above are then not made)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from raas_drivers.hand.config import ACTUATOR_NAMES

from raas.policy.keys import KEYS

EXAMPLES = ("dactyl", "small", "vision")

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


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """torch.onnx.export reports its progress on stdout and warns freely; keep ours clean."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


class LstmPolicy(torch.nn.Module):
    """normalised obs -> dense + ReLU -> one LSTM step -> head; the LSTM state is explicit."""

    def __init__(
        self, n_in: int, dense: int, hidden: int, n_out: int, logits_shape: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.logits_shape = logits_shape
        self.dense = torch.nn.Linear(n_in, dense)
        self.lstm = torch.nn.LSTM(dense, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, n_out)

    def forward(self, obs: Any, h: Any, c: Any) -> tuple[Any, Any, Any]:
        x = torch.relu(self.dense(obs)).unsqueeze(1)
        y, (h1, c1) = self.lstm(x, (h, c))
        return self.head(y[:, 0]).reshape(-1, *self.logits_shape), h1, c1


class VisionTowers(torch.nn.Module):
    """Three camera towers (strided conv, ReLU, global average), then a linear pose head."""

    def __init__(self) -> None:
        super().__init__()
        self.towers = torch.nn.ModuleList(
            torch.nn.Conv2d(3, 8, kernel_size=8, stride=8) for _ in range(3)
        )
        self.head = torch.nn.Linear(24, 7)
        with torch.no_grad():
            self.head.weight.mul_(0.01)
            self.head.bias.copy_(torch.tensor([*_CENTRE, 1.0, 0.0, 0.0, 0.0]))

    def forward(self, left: Any, right: Any, top: Any) -> Any:
        feats = [
            torch.relu(t(x)).mean(dim=(2, 3))
            for t, x in zip(self.towers, (left, right, top), strict=True)
        ]
        return self.head(torch.cat(feats, dim=1))


def export_lstm(
    path: Path,
    *,
    n_in: int,
    dense: int,
    hidden: int,
    n_out: int,
    logits_shape: tuple[int, ...],
    seed: int = 0,
    dynamic_batch: bool = False,
    external_data: bool = False,
    output_name: str = "action",
) -> None:
    """torch.onnx.export of a dense + LSTM policy with inputs obs, h, c and outputs
    <output_name>, h_out, c_out (shapes (B, n_in), (1, B, hidden) x2)."""
    torch.manual_seed(seed)
    model = LstmPolicy(n_in, dense, hidden, n_out, logits_shape).eval()
    args = (torch.zeros(1, n_in), torch.zeros(1, 1, hidden), torch.zeros(1, 1, hidden))
    kwargs: dict[str, Any] = {}
    if dynamic_batch:
        kwargs["dynamic_axes"] = {"obs": {0: "batch"}, "h": {1: "batch"}, "c": {1: "batch"}}
    with _quiet_export():
        torch.onnx.export(
            model,
            args,
            str(path),
            input_names=["obs", "h", "c"],
            output_names=[output_name, "h_out", "c_out"],
            external_data=external_data,
            verbose=False,
            **kwargs,
        )


def export_vision(path: Path, width: int, height: int, seed: int = 0) -> None:
    """Three camera towers (strided conv, ReLU, global average) -> pose (7)."""
    torch.manual_seed(seed)
    model = VisionTowers().eval()
    img = torch.zeros(1, 3, height, width)
    with _quiet_export():
        torch.onnx.export(
            model,
            (img, img, img),
            str(path),
            input_names=["left", "right", "top"],
            output_names=["pose"],
            external_data=False,
            verbose=False,
        )


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
