"""A recorded session replays to identical actions with the same bundle, and a replay with
another bundle says where the actions differ."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from raas_client.report import format as fmt
from raas_client.report.reader import RecordingFile
from recording_helpers import cell_config, record

from raas.core.observation import Observation
from raas.policy import CellSpec, PolicyController, load_bundle
from raas.policy.examples import make_small
from raas.recording.replay import replay_file

pytestmark = [pytest.mark.system, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


class EpisodicTask:
    """Stands in for a task: a new goal every 10 cycles, a new episode every 25, so the
    recording carries goal changes and policy resets that the replay must reproduce."""

    def __init__(self, policy: PolicyController) -> None:
        self.policy = policy
        self.runner = policy.runner  # as EvaluationController: the tap reads its bundle hash
        self.name = "episodic-test-task"
        self.needs = policy.needs

    def reset(self) -> None:
        self.policy.reset()

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        obs.episode = obs.cycle // 25
        g = obs.cycle // 10
        obs.goal[:] = (0.0, 0.0, 0.05 * (g % 3), np.cos(g), 0.0, 0.0, np.sin(g))
        return self.policy.decide(obs, out)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("replay")
    bundle = make_small(tmp / "small")
    other = tmp / "other"
    shutil.copytree(bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["action"]["smoothing"] = 0.25  # same network, different actions
    (other / "manifest.json").write_text(json.dumps(manifest))

    cfg = cell_config(tmp / "rec", duration_s=5.0)
    runner = load_bundle(bundle, period_s=cfg.loop.period_ns / 1e9, cell=CellSpec.from_config(cfg))
    outcome, path = record(cfg, EpisodicTask(PolicyController(runner)))
    assert outcome.exit_code == 0
    session = RecordingFile(path).scan_metadata()[fmt.META_SESSION]
    assert session["bundle_sha256"] == runner.bundle_hash  # noted by the tap from the loop
    assert session["controller"] == "episodic-test-task"
    return path, bundle, other


def test_same_bundle_replays_to_identical_actions(recorded: tuple[Path, Path, Path]) -> None:
    path, bundle, _ = recorded
    rf = RecordingFile(path)
    episodes = {m.data["episode"] for m in rf.messages([fmt.TOPIC_OBSERVATION])}
    assert len(episodes) >= 2  # the replay crosses episode boundaries (policy resets)

    report = replay_file(path, bundle)
    assert report.cycles == 5 + 62  # warm-up + round(5 s * 12.5 Hz)
    assert report.compared > 50
    assert report.differing == 0 and report.no_action == 0
    assert report.first_differing_cycle is None
    assert not report.max_abs_diff.any()  # bit-identical, not merely close
    assert report.identical


def test_other_bundle_differences_are_reported(recorded: tuple[Path, Path, Path]) -> None:
    path, _, other = recorded
    report = replay_file(path, other)
    assert not report.identical
    assert report.differing > 0
    assert report.first_differing_cycle is not None
    assert report.max_abs_diff.max() > 0
    text = report.format()
    assert "DIFFERENT" in text and f"cycle {report.first_differing_cycle}" in text


def test_raasd_replay_command(recorded: tuple[Path, Path, Path], tmp_path: Path) -> None:
    path, bundle, other = recorded

    def raasd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "raas.cli", "replay", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
            check=False,
        )

    same = raasd(str(path), "--bundle", str(bundle), "--json", str(tmp_path / "r.json"))
    assert same.returncode == 0, same.stderr
    assert "IDENTICAL" in same.stdout
    assert json.loads((tmp_path / "r.json").read_text())["identical"] is True
    diff = raasd(str(path), "--bundle", str(other))
    assert diff.returncode == 1
    assert "first at cycle" in diff.stdout
    bad = raasd(str(tmp_path / "r.json"), "--bundle", str(bundle))
    assert bad.returncode == 2
    assert "not a readable raas recording" in bad.stderr
