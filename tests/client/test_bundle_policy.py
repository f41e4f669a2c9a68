"""`raas serve-policy BUNDLE`'s loader (raas_client.bundle_policy): the same bundle, run by the
robot's own runner (raas.policy.runner) and by the client's loader on the same observations,
gives the same actions (real onnxruntime on both sides); a model declaring `action.chunk` gives H
decoded rows and is refused by the robot's loop; a single-action model's chunk holds its action;
bundles the client cannot serve are refused naming the field. (Serving one over sockets:
tests/transport/test_policy_serve.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from raas_client import bundle_policy as bp
from raas_client.bundle_policy import BundlePolicy
from raas_client.errors import BundleError
from raas_client.session import Observation as ClientObservation
from raas_drivers.hand import HandState
from raas_drivers.mocap import MocapFrame

from raas.core.observation import Observation, SourceReading
from raas.policy import examples
from raas.policy.cell import BLOCK_MARKER_OFFSETS, FINGERTIP_MARKERS, CellSpec
from raas.policy.errors import ModelMismatchError
from raas.policy.pose import quat_from_matrix
from raas.policy.runner import load_bundle

CELL = CellSpec()


def hello(rate_hz: float = 12.5) -> dict[str, Any]:
    """What the simulated Shadow cell's `hello` says (the parts a bundle reads)."""
    nj, _na = len(CELL.joint_names), len(CELL.actuator_names)
    return {
        "rate_hz": rate_hz,
        "spaces": {
            "observation": {
                "hand_pos": {"shape": [nj], "names": list(CELL.joint_names)},
                "hand_vel": {"shape": [nj]},
                "mocap": {"shape": [len(CELL.marker_names), 3], "names": list(CELL.marker_names)},
            },
            "action": {
                "names": list(CELL.actuator_names),
                "low": CELL.actuator_limits[:, 0].tolist(),
                "high": CELL.actuator_limits[:, 1].tolist(),
                "idle": CELL.idle_action.tolist(),
                "hand_model": CELL.hand_model,
            },
        },
    }


def observations(n: int, seed: int = 0) -> list[tuple[Observation, ClientObservation]]:
    """n consecutive cycles of a moving hand and block, as the loop and as a remote client see
    them (one block marker occluded now and then)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        pos = rng.normal(scale=0.3, size=len(CELL.joint_names))
        vel = rng.normal(size=len(CELL.joint_names))
        angle = 0.2 * k
        rot = np.array(
            [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
        )
        centre = np.array([1.0, 0.87, 0.17]) + rng.normal(scale=0.01, size=3)
        block = centre + np.asarray(BLOCK_MARKER_OFFSETS) @ rot.T
        tips = np.array([1.0, 0.87, 0.2]) + rng.normal(scale=0.03, size=(5, 3))
        markers = np.vstack([tips, block])
        visible = np.ones(len(markers), dtype=bool)
        if k % 3 == 1:
            visible[5 + k % 8] = False
        goal = np.zeros(7)
        goal[:3] = [1.0, 0.87, 0.17]
        goal[3:] = quat_from_matrix(rot.T, np.zeros(4))
        obs = Observation()
        obs.cycle = k
        obs.goal[:] = goal
        hand = obs.sources["hand"] = SourceReading("hand", 2_000_000, True)
        hand.sample = HandState(cycle=k, capture_ns=0, positions=pos, velocities=vel)
        mocap = obs.sources["mocap"] = SourceReading("mocap", 5_000_000, True)
        mocap.sample = MocapFrame(cycle=k, capture_ns=0, positions=markers, visible=visible)
        arrays = {
            "hand_pos": pos.copy(),
            "hand_vel": vel.copy(),
            "mocap": markers.copy(),
            "mocap_visible": visible.copy(),
            "goal": goal.copy(),
        }
        out.append((obs, ClientObservation(cycle=k, episode=0, arrays=arrays)))
    return out


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {
        "small": examples.make_small(root / "small"),
        "dactyl": examples.make_dactyl(root / "d"),
    }


def test_the_cell_constants_are_the_robots() -> None:
    assert bp.FINGERTIP_MARKERS == FINGERTIP_MARKERS
    assert CELL.block_markers == bp.BLOCK_MARKERS
    assert np.array_equal(bp.BLOCK_MARKER_OFFSETS, np.asarray(BLOCK_MARKER_OFFSETS))


@pytest.mark.parametrize("name", ["small", "dactyl"])
def test_the_client_runs_a_bundle_as_the_robot_does(bundles: dict[str, Path], name: str) -> None:
    """Row 0 of each chunk (called every cycle) is the robot's own runner's action: the same
    features (fingertips, the block's pose fitted from its LEDs, the relative goal, joints),
    recurrent state, discrete or continuous, relative or absolute decoding and smoothing."""
    runner = load_bundle(bundles[name], period_s=0.08, budget_ms=1000, measure_runs=3)
    policy = BundlePolicy(bundles[name], 4)
    policy.bind(hello())
    robot_out = np.zeros(len(CELL.actuator_names))
    for obs, cobs in observations(12):
        assert runner.act(obs, robot_out)
        chunk = policy(cobs)
        assert chunk.shape == (4, 20)
        np.testing.assert_allclose(chunk[0], robot_out, rtol=1e-5, atol=1e-6)
        # one action per model call: held for the chunk (no made-up later actions)
        assert (chunk == chunk[0]).all()
    assert policy.calls == 12


def test_a_new_episode_resets_state_and_previous_action(bundles: dict[str, Path]) -> None:
    policy = BundlePolicy(bundles["dactyl"], 2)
    policy.bind(hello())
    seq = observations(3)
    first = [policy(c) for _, c in seq]
    for _, c in seq:
        c.episode = 1
    again = [policy(c) for _, c in seq]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_allclose(a, b)


def _chunk_bundle(root: Path, h: int) -> Path:
    """A model whose output holds H actions (1, H, 20): relative continuous targets."""
    d = root / f"chunk{h}"
    d.mkdir()
    examples.export_lstm(
        d / "model.onnx", n_in=22, dense=16, hidden=8, n_out=20 * h, logits_shape=(h, 20)
    )
    manifest = {
        "format": 1,
        "name": f"chunk-{h}",
        "control_period_s": 0.08,
        "observation": {"input": "obs", "fields": examples._state_fields()},
        "action": {
            "output": "action",
            "actuators": list(CELL.actuator_names),
            "kind": "continuous",
            "mode": "relative",
            "relative_step": 0.5,
            "chunk": h,
        },
        "state": [
            {"input": "h", "output": "h_out", "shape": [1, 1, 8]},
            {"input": "c", "output": "c_out", "shape": [1, 1, 8]},
        ],
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def test_a_chunk_model_gives_h_decoded_rows(tmp_path: Path) -> None:
    d = _chunk_bundle(tmp_path, 6)
    policy = BundlePolicy(d)
    assert policy.horizon == policy.model_rows == 6
    policy.bind(hello())
    _, cobs = observations(1)[0]
    chunk = policy(cobs)
    # the raw rows, through onnxruntime here, decoded in order: each relative row moves from the
    # row before it (the first from the idle action)
    import onnxruntime as ort

    s = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {
        "obs": policy._obs,
        "h": np.zeros((1, 1, 8), np.float32),
        "c": np.zeros((1, 1, 8), np.float32),
    }
    raw = np.asarray(s.run(["action"], feeds)[0], dtype=np.float64).reshape(6, 20)
    lo, hi = CELL.actuator_limits[:, 0], CELL.actuator_limits[:, 1]
    target = CELL.idle_action.copy()
    for i in range(6):
        target = np.clip(target + np.clip(raw[i], -1, 1) * (hi - lo) / 2 * 0.5, lo, hi)
        np.testing.assert_allclose(chunk[i], target, rtol=1e-6, atol=1e-9)
    assert not np.allclose(chunk[0], chunk[-1])  # rows differ: not a held action
    # --chunk must agree with the model's
    with pytest.raises(BundleError) as exc:
        BundlePolicy(d, 8)
    assert exc.value.field == "action.chunk"
    # the robot's own loop refuses a chunk model, naming the field
    with pytest.raises(ModelMismatchError, match="serve-policy") as exc2:
        load_bundle(d, period_s=0.08, budget_ms=1000, measure_runs=3)
    assert exc2.value.field == "action.chunk"


def test_bundles_the_client_cannot_serve_are_refused_naming_the_field(
    tmp_path: Path, bundles: dict[str, Path]
) -> None:
    vision = examples.make_vision(tmp_path / "vision", 32, 32)
    with pytest.raises(BundleError) as exc:
        BundlePolicy(vision)
    assert exc.value.field == "vision" and "images" in exc.value.message
    with pytest.raises(BundleError) as exc:
        BundlePolicy(tmp_path / "nowhere")
    assert exc.value.field == "bundle"
    policy = BundlePolicy(bundles["small"])
    other = hello()
    other["spaces"]["action"]["hand_model"] = "allegro"
    with pytest.raises(BundleError) as exc:
        policy.bind(other)
    assert exc.value.field == "hand.model"
    with pytest.raises(BundleError) as exc:
        policy.bind(hello(rate_hz=50))
    assert exc.value.field == "control_period_s" and "80 ms" in exc.value.message
    no_block = hello()
    no_block["spaces"]["observation"]["mocap"]["names"] = list(FINGERTIP_MARKERS)
    with pytest.raises(BundleError, match="block:m0") as exc:
        policy.bind(no_block)
    assert exc.value.field == "observation.fields"


def test_serve_policy_cli_names_what_is_wrong_with_a_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from raas_client.cli import main

    base = ["serve-policy", "--robot", "tcp://127.0.0.1:1", "--server-key", "plain", "--lease", "x"]
    vision = examples.make_vision(tmp_path / "vision", 32, 32)
    assert main([*base, str(vision)]) == 1
    assert "raas serve-policy: vision: " in capsys.readouterr().err
    chunked = _chunk_bundle(tmp_path, 4)
    assert main([*base, str(chunked), "--chunk", "8"]) == 1
    assert "raas serve-policy: action.chunk: " in capsys.readouterr().err
