"""Shared pieces of the recording tests: a recorded lockstep run, synthetic steps."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from raas_drivers.hand import ACTUATOR_NAMES, JOINT_NAMES, HandState
from raas_drivers.hand.config import ACTUATOR_LIMITS
from raas_drivers.mocap import MocapFrame

from raas.config import CellConfig, sim_cell_config
from raas.core.controller import Controller
from raas.core.observation import Observation, SourceReading, Step
from raas.daemon import RunOutcome, run_cell
from raas.recording.layout import RecordLayout, SourceInfo

MARKERS = ("m0", "m1", "m2")


def cell_config(directory: Path, **over: Any) -> CellConfig:
    """A lockstep cell at 12.5 Hz, no RT, recording into `directory`."""
    rate = over.pop("rate_hz", 12.5)
    data: dict[str, Any] = {
        "loop": {"rate_hz": rate, "duration_s": over.pop("duration_s", 2.0), "warmup_cycles": 5},
        "rig": {
            "clock": over.pop("clock", "lockstep"),
            "rate_hz": rate,
            "seed": 3,
            "cameras": over.pop("cameras", 0),
            "camera_width": 64,
            "camera_height": 48,
        },
        "rt": {"enabled": False},
        "recording": {"enabled": True, "directory": str(directory), **over.pop("recording", {})},
    }
    assert not over, over
    return sim_cell_config(data)


def record(cfg: CellConfig, controller: Controller | None = None) -> tuple[RunOutcome, Path]:
    """Run the cell with recording on; return the outcome and the one file it wrote."""
    outcome = run_cell(cfg, controller=controller, out=io.StringIO())
    files = sorted(Path(cfg.recording.directory).glob("*.mcap"))
    assert len(files) == 1, files
    return outcome, files[0]


def synthetic_layout() -> RecordLayout:
    return RecordLayout(
        sources=(SourceInfo("hand", 2_000_000, True), SourceInfo("mocap", 5_000_000, True)),
        actuator_names=ACTUATOR_NAMES,
        joint_names=JOINT_NAMES,
        marker_names=MARKERS,
        limits=tuple((float(lo), float(hi)) for lo, hi in ACTUATOR_LIMITS),
    )


class SyntheticSteps:
    """Steps as the loop hands them over (one reused Observation), without a cell."""

    def __init__(self, period_ns: int = 1_000_000) -> None:
        self.period_ns = period_ns
        self.obs = Observation()
        self.obs.sources["hand"] = SourceReading("hand", 2_000_000, True)
        self.obs.sources["mocap"] = SourceReading("mocap", 5_000_000, True)
        n = len(ACTUATOR_NAMES)
        self.step = Step(obs=self.obs, desired=np.zeros(n), applied=np.zeros(n))
        self.rng = np.random.default_rng(0)

    def next(self, k: int) -> Step:
        t = 10**9 + k * self.period_ns
        obs = self.obs
        obs.cycle, obs.t_k_ns, obs.trigger_ns = k, t, t + 1000
        hand = obs.sources["hand"]
        hand.sample = HandState(
            cycle=k, capture_ns=t + 5000, positions=self.rng.normal(size=len(JOINT_NAMES))
        )
        hand.capture_ns, hand.arrival_ns, hand.stale = t + 5000, t + 9000, False
        mocap = obs.sources["mocap"]
        mocap.sample = MocapFrame(
            cycle=k,
            capture_ns=t,
            positions=self.rng.normal(size=(len(MARKERS), 3)),
            visible=np.ones(len(MARKERS), dtype=bool),
        )
        mocap.stale = k % 7 == 0
        self.step.desired[:] = self.rng.normal(size=self.step.desired.size) * 0.1
        self.step.applied[:] = self.step.desired
        self.step.lateness_ns = 1000 + k % 13
        return self.step
