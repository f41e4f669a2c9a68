"""Cameras: offscreen frames of the configured shape, not black, at the Basler's 640x480 too."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from raas_drivers.sim import RigConfig

from tests.drivers.conftest import bring_up, start_rig, step

pytestmark = [pytest.mark.system]


@pytest.mark.parametrize(("width", "height"), [(200, 200), (640, 480)])
def test_frames_have_the_configured_shape_and_show_the_hand(width: int, height: int) -> None:
    cfg = RigConfig(clock="lockstep", cameras=3, camera_width=width, camera_height=height)
    with start_rig(cfg) as rig:
        cell = bring_up(rig)
        assert cell.devs.cameras is not None
        assert cell.devs.cameras.resolution == (width, height)
        assert cell.devs.cameras.camera_names == ("left", "right", "top")
        got = step(cell)
        images = [got[f"cameras.{c}"].image for c in ("left", "right", "top")]
        for img in images:
            assert img.shape == (height, width, 3) and img.dtype == np.uint8
            assert img.max() > 0 and img.std() > 10  # a scene, not a flat colour
        assert not np.array_equal(images[0], images[1])  # three viewpoints


def test_render_benchmark_reports_backend_and_cost() -> None:
    from raas_drivers.sim.render import backend_candidates

    errors = []
    for backend in backend_candidates():  # MUJOCO_GL if set, else egl then osmesa
        env = dict(os.environ, MUJOCO_GL=backend)
        env.setdefault("LP_NUM_THREADS", "1")
        out = subprocess.run(
            [sys.executable, "-m", "raas_drivers.sim.render", "--bench", "--frames", "2"],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        if out.returncode == 0:
            break
        errors.append(f"{backend}: {out.stderr[-300:]}")
    else:
        from tests.conftest import require

        require("offscreen GL", False, "; ".join(errors))
    report = json.loads(out.stdout)
    assert report["width"] == 200 and report["ms_per_frame_median"] > 0
    assert report["backend"] == backend
