"""The example bundles (`python -m raas.policy.examples DIR`, what `raasd up` generates) are built
without torch, which is a test-only dependency, and load and run in the policy runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from raas.policy import CellSpec, load_bundle

pytestmark = [pytest.mark.slow]

#: Run the generator with `import torch` failing, as on a machine with the package alone.
_NO_TORCH = (
    "import sys; sys.modules['torch'] = None; "
    "from raas.policy.examples import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("examples")
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, str(out), "--camera", "64x48"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "dactyl:", str(out / "dactyl"), "small:", str(out / "small"), "vision:",
        str(out / "vision"),
    ]  # fmt: skip
    return out


def test_state_policies_load_and_carry_their_memory(generated: Path) -> None:
    for name, outputs in (("dactyl", 220), ("small", 20)):
        runner = load_bundle(generated / name, period_s=0.08)
        assert runner.action_output.size == outputs
        assert runner.needs == {"hand", "mocap"}
        runner.obs_input[:] = 0.5
        runner.policy.run()
        first = runner.action_output.copy()
        runner.policy.run()  # same input, the LSTM state moved on: another output
        assert np.isfinite(first).all()
        assert not np.allclose(first, runner.action_output)
        assert np.any(runner.policy.state("h") != 0.0)


def test_vision_bundle_reads_three_cameras(generated: Path) -> None:
    cell = CellSpec(camera_width=64, camera_height=48)
    runner = load_bundle(generated / "vision", period_s=0.08, cell=cell)
    # fingertips from motion capture, the block from the cameras
    assert runner.needs == {"hand", "mocap", "cameras.left", "cameras.right", "cameras.top"}
    assert runner.vision is not None
    for name in ("left", "right", "top"):
        assert runner.vision.session.inputs[name].shape == (1, 3, 48, 64)
        runner.vision.session.inputs[name][:] = 0.5
    runner.vision.session.run()
    pose = runner.vision.pose
    # the head starts at the block's resting pose: a usable (if untrained) estimate
    np.testing.assert_allclose(pose[:3], [1.0, 0.87, 0.17], atol=0.05)
    assert pose[3] > 0.9
