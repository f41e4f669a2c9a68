"""A 16-actuator mirror hand with no trigger: the full loop, the safety layer, a policy bundle,
recording and the health check, all shaped by the hand's driver."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from raas_client.report.reader import RecordingFile

from raas.config import CellConfig, assemble_cell_config, hand_shape
from raas.core.observation import Observation
from raas.daemon import cell_up, run_cell, run_loop
from raas.policy import CellSpec, PolicyController, load_bundle
from raas.policy.errors import CellMismatchError
from raas.policy.hand_bundle import generic_shape, make_hand_bundle
from raas.recording.replay import replay_file
from raas.safety import SafetyState
from tests.daemon.cells import MIRROR16, write_cell

pytestmark = [pytest.mark.system]

FAST = "\n[rt]\nenabled = false\n[loop]\nrate_hz = 50.0\nwarmup_cycles = 0\nduration_s = 1.0\n"


class Wild:
    """Asks every actuator for 10 rad: the conditioning pipeline must keep it in the limits."""

    name = "wild"
    needs = frozenset({"hand"})

    def reset(self) -> None:
        pass

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        out[:] = 10.0
        return True


def cell(tmp_path: Path, extra: str = "") -> CellConfig:
    return assemble_cell_config(write_cell(tmp_path, MIRROR16 + FAST + extra), {}, {})


def test_full_loop_with_the_safety_layer_on_16_actuators(tmp_path: Path) -> None:
    cfg = cell(tmp_path)
    with cell_up(cfg) as c:
        assert c.hand.model == "leap-like" and len(c.hand.actuator_names) == 16
        assert [s.source.source_name for s in c.sources] == ["hand", "trigger"]
        assert "cell up (hand mirror 'leap-like' (16 actuators); trigger none" in c.banner()
        sup = c.supervisor
        np.testing.assert_allclose(
            sup.conditioner.upper, 1.0 - cfg.safety.conditioning.soft_margin_rad
        )
        loop = c.build_loop(Wild())
        assert run_loop(loop) == 0
        # a missed cycle on a loaded shared machine is timing, not what this test is about
        assert loop.result.cycles == 50
        assert sup.state is SafetyState.RUNNING
        assert loop.result.clipped > 0  # the pipeline intervened
        applied = loop.applied
        assert applied.shape == (16,)
        assert (applied <= sup.conditioner.upper + 1e-12).all()  # never past the soft limit
        st = loop.obs.hand
        assert st is not None and st.positions.shape == (16,)


def test_run_cell_with_a_16_actuator_bundle_and_recording(tmp_path: Path) -> None:
    cfg = cell(
        tmp_path,
        f'[recording]\nenabled = true\ndirectory = "{tmp_path / "rec"}"\n',
    )
    shape = hand_shape(cfg)
    bundle = make_hand_bundle(tmp_path / "b16", shape, control_period_s=0.02)
    runner = load_bundle(bundle, period_s=0.02, cell=CellSpec.from_config(cfg, shape))
    outcome = run_cell(cfg, controller=PolicyController(runner), out=io.StringIO())
    assert outcome.exit_code == 0
    assert outcome.stats["cycles"]["run"] == 50
    assert outcome.stats["cell"] == {
        "devices": {"hand": "mirror", "trigger": "none"},
        "hand_model": "leap-like",
        "actuators": 16,
    }
    (path,) = sorted((tmp_path / "rec").glob("*.mcap"))
    rf = RecordingFile(path)
    rf.scan_metadata()
    layout = rf.layout()
    assert len(layout["actuator_names"]) == 16 and layout["actuator_names"][0] == "joint_0"
    report = replay_file(path, bundle)  # against the recorded hand, not the Shadow default
    assert report.identical, report.format()


def test_a_20_actuator_bundle_is_refused_on_the_16_actuator_hand(tmp_path: Path) -> None:
    cfg = cell(tmp_path)
    shape = hand_shape(cfg)
    other = make_hand_bundle(
        tmp_path / "b20", generic_shape(20, "leap-like"), control_period_s=0.02
    )
    with pytest.raises(CellMismatchError) as info:
        load_bundle(other, period_s=0.02, cell=CellSpec.from_config(cfg, shape))
    assert info.value.field == "action.actuators"
    assert "joint_16" in str(info.value)
    shadow = make_hand_bundle(
        tmp_path / "shadow", generic_shape(16, "shadow-dexterous"), control_period_s=0.02
    )
    with pytest.raises(CellMismatchError) as info:
        load_bundle(shadow, period_s=0.02, cell=CellSpec.from_config(cfg, shape))
    assert info.value.field == "hand.model"
    assert "'shadow-dexterous'" in str(info.value) and "'leap-like' with 16 actuators" in str(
        info.value
    )


def test_health_check_moves_each_actuator_of_another_hand(tmp_path: Path) -> None:
    cfg = cell(tmp_path, "[health]\nsettle_s = 0.1\nhome_settle_s = 0.1\n")
    with cell_up(cfg) as c:
        check = c.health_check()
        assert len(check.segments or check._plan(check.home)) == 2 + 2 * 16  # one group each
        report = c.run_health_check(check.cfg)
    names = {r.name: r for r in report.checks}
    assert names["joints_home"].ok and names["joints_range"].ok, report.as_dict()
    assert names["mocap_markers"].ok and names["mocap_markers"].detail == (
        "no motion capture in this cell"
    )
    assert report.ok, report.as_dict()  # no mocap, no cameras: nothing else to judge
