"""Lockstep: the same seed gives byte-identical observations (and actions), run after run."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from raas_drivers.cameras import CameraFrame
from raas_drivers.hand import HandState
from raas_drivers.mocap import MocapFrame

from raas.config import sim_cell_config
from raas.core.observation import Step
from raas.daemon import run_cell

pytestmark = [pytest.mark.system]


class DigestPublisher:
    """Hashes every byte a cycle observed and decided (no wall-clock timing)."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.cycles = 0
        self.camera_frames = 0

    def publish(self, step: Step) -> None:
        obs = step.obs
        h = self.h
        h.update(np.int64([obs.cycle, obs.t_k_ns]).tobytes())
        for name, r in obs.sources.items():
            if name == "trigger":
                continue
            h.update(name.encode())
            h.update(np.int64([r.capture_ns, int(r.stale)]).tobytes())
            s = r.sample
            if isinstance(s, HandState):
                for a in (s.positions, s.velocities, s.efforts, s.temperatures):
                    h.update(np.ascontiguousarray(a).tobytes())
            elif isinstance(s, MocapFrame):
                h.update(np.ascontiguousarray(s.positions).tobytes())
                h.update(np.ascontiguousarray(s.visible).tobytes())
            elif isinstance(s, CameraFrame):
                h.update(np.ascontiguousarray(s.image).tobytes())
                self.camera_frames += 1
        h.update(step.desired.tobytes())
        h.update(step.applied.tobytes())
        self.cycles += 1


def _run(seed: int, cameras: int = 0, duration: float = 4.0) -> DigestPublisher:
    cfg = sim_cell_config(
        {
            "loop": {"rate_hz": 12.5, "duration_s": duration, "warmup_cycles": 0},
            "rig": {"clock": "lockstep", "rate_hz": 12.5, "seed": seed, "cameras": cameras},
            "rt": {"enabled": False},
        }
    )
    pub = DigestPublisher()
    outcome = run_cell(cfg, publishers=[pub], out=io.StringIO())
    assert outcome.exit_code == 0
    assert outcome.stats["cycles"]["missed"] == 0
    return pub


def test_same_seed_same_bytes() -> None:
    a, b = _run(seed=7), _run(seed=7)
    assert a.cycles == b.cycles == 50
    assert a.h.hexdigest() == b.h.hexdigest()


def test_other_seed_other_bytes() -> None:
    assert _run(seed=1, duration=1.0).h.hexdigest() != _run(seed=2, duration=1.0).h.hexdigest()


@pytest.mark.slow
def test_same_seed_same_bytes_with_cameras() -> None:
    a, b = _run(seed=3, cameras=3, duration=1.0), _run(seed=3, cameras=3, duration=1.0)
    assert a.camera_frames == b.camera_frames == 3 * 12  # round(1.0 s * 12.5 Hz) cycles
    assert a.h.hexdigest() == b.h.hexdigest()
