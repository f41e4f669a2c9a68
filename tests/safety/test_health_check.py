"""The post-session health check (raas.safety.health).

On the real simulated rig in lockstep: a healthy rig passes every check; a hot rig fails
`temperatures` naming the hottest motor; a rig whose motion capture loses markers for seconds
fails `mocap_markers`; a black camera (the rig's fault knob) fails its camera check.
Unit tests feed the evaluators synthetic states for what the rig cannot do: a joint that does
not reach its range, a frozen camera, NaN markers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from raas_drivers.cameras import CameraFrame
from raas_drivers.hand import HandState
from raas_drivers.hand.config import (
    ACTUATOR_JOINT_INDEX,
    ACTUATOR_LIMITS,
    ACTUATOR_NAMES,
    EFFORT_LIMITS,
    default_idle_action,
)
from raas_drivers.mocap import MocapFrame
from raas_drivers.sim import RigConfig

from raas.config import sim_cell_config
from raas.core.loop import LoopResult
from raas.core.observation import Observation, SourceReading, Step
from raas.daemon import cell_up
from raas.safety import Cause, Reason, SafetyConfig, SafetyConfigError, Supervisor
from raas.safety.health import (
    CameraWatch,
    CheckResult,
    HealthCheck,
    HealthConfig,
    HealthReport,
    MarkerWatch,
    Reach,
    TemperatureWatch,
    judge_joints,
    supervisor_check,
)
from tests.conftest import require

PERIOD = 0.08
MARKERS = ("fftip", "thtip", "block:m0")
CHECKS = {"joints_home", "joints_range", "mocap_markers", "temperatures"}


# --------------------------------------------------------------------------- synthetic hand


class FakeCell:
    """A hand that follows its targets one cycle late (except `stuck` actuators, which stay
    where they started), a motion capture and one camera whose image follows the hand."""

    def __init__(
        self,
        stuck: tuple[int, ...] = (),
        frozen_camera: bool = False,
        nan_marker: int | None = None,
    ) -> None:
        self.pos = default_idle_action()
        self.stuck = stuck
        self.frozen_camera = frozen_camera
        self.nan_marker = nan_marker
        self.obs = Observation()
        for name in ("hand", "mocap", "cameras.left"):
            self.obs.sources[name] = SourceReading(name=name, deadline_ns=0, required=True)
        self.k = 0
        self.targets: list[np.ndarray] = []

    def observe(self) -> Observation:
        k = self.k
        t = k * 80_000_000
        joints = np.zeros(24)
        joints[list(ACTUATOR_JOINT_INDEX)] = self.pos
        h = self.obs.sources["hand"]
        h.sample, h.stale = HandState(k, t, positions=joints, temperatures=np.full(20, 30.0)), False
        vis = np.ones(len(MARKERS), dtype=bool)
        pos = np.ones((len(MARKERS), 3))
        if self.nan_marker is not None and k > 20:
            pos[self.nan_marker] = np.nan
        m = self.obs.sources["mocap"]
        m.sample, m.stale = MocapFrame(k, t, positions=pos, visible=vis), False
        if k > 0:  # a camera is read one cycle late: the frame of cycle k - 1
            level = 100 if self.frozen_camera else 40 + (7 * k) % 180
            c = self.obs.sources["cameras.left"]
            img = np.full((12, 16, 3), level, dtype=np.uint8)
            c.sample, c.stale = CameraFrame(k - 1, t - 80_000_000, "left", img), False
        return self.obs

    def apply(self, target: np.ndarray) -> None:
        self.targets.append(target.copy())
        keep = self.pos[list(self.stuck)].copy()
        self.pos = target.copy()
        self.pos[list(self.stuck)] = keep
        self.k += 1


def make_check(
    cfg: HealthConfig | None = None, cameras: tuple[str, ...] = ("left",)
) -> HealthCheck:
    return HealthCheck(
        cfg or HealthConfig(),
        ACTUATOR_LIMITS,
        default_idle_action(),
        ACTUATOR_JOINT_INDEX,
        MARKERS,
        cameras,
        PERIOD,
        actuator_names=ACTUATOR_NAMES,
    )


def drive(check: HealthCheck, cell: FakeCell, max_cycles: int = 1000) -> int:
    out = np.zeros(20)
    check.reset()
    n = 0
    while not check.done and n < max_cycles:
        assert check.decide(cell.observe(), out)
        cell.apply(out)
        n += 1
    return n


def by_name(report: HealthReport) -> dict[str, CheckResult]:
    return {c.name: c for c in report.checks}


# --------------------------------------------------------------------------- unit: the controller


def test_motion_visits_both_fractions_of_every_range_slowly_and_in_time() -> None:
    check = make_check()
    cell = FakeCell()
    cycles = drive(check, cell)
    assert check.done
    assert 10.0 <= cycles * PERIOD <= 20.0  # the whole check: 10-20 s of robot time
    targets = np.array(cell.targets)
    lo, hi = ACTUATOR_LIMITS[:, 0], ACTUATOR_LIMITS[:, 1]
    frac = (targets - lo) / (hi - lo)
    assert np.isclose(frac, 0.2, atol=1e-9).any(axis=0).all()
    assert np.isclose(frac, 0.8, atol=1e-9).any(axis=0).all()
    assert frac.min() >= 0.2 - 1e-9 and frac.max() <= 0.8 + 1e-9  # far from the soft margins
    steps = np.abs(np.diff(targets, axis=0)).max()
    assert steps <= 1.5 * PERIOD + 1e-9  # speed_rad_s, under the supervisor's 0.35 rad/cycle
    np.testing.assert_allclose(targets[-1], default_idle_action())  # ends at home
    report = check.report()
    assert report.ok, report.as_dict()
    assert {c.name for c in report.checks} == CHECKS | {"camera_left"}


def test_a_joint_that_cannot_reach_its_range_is_named_with_its_error() -> None:
    stuck = ACTUATOR_NAMES.index("A_MFJ2")
    check = make_check()
    drive(check, FakeCell(stuck=(stuck,)))
    checks = by_name(check.report())
    rng = checks["joints_range"]
    assert not rng.ok
    assert rng.data["failed"] == ["A_MFJ2"]
    assert "A_MFJ2 off by 0.471 rad at MF at 20 %" in rng.detail  # 0.3 of its 1.571 rad range
    assert checks["joints_home"].ok  # it is stuck at home
    assert not check.report().ok


def test_a_frozen_camera_fails_while_the_hand_moves() -> None:
    check = make_check()
    drive(check, FakeCell(frozen_camera=True))
    cam = by_name(check.report())["camera_left"]
    assert not cam.ok
    assert cam.detail.startswith("frozen:")
    assert cam.data["changed_pairs"] == 0 and cam.data["moving_pairs"] >= 5


def test_a_nan_marker_fails_mocap_naming_it() -> None:
    check = make_check()
    drive(check, FakeCell(nan_marker=1))
    mocap = by_name(check.report())["mocap_markers"]
    assert not mocap.ok
    assert mocap.detail.startswith("thtip missing")


def test_an_unfinished_check_fails_its_joint_checks() -> None:
    check = make_check()
    cell = FakeCell()
    out = np.zeros(20)
    for _ in range(30):
        check.decide(cell.observe(), out)
        cell.apply(out)
    checks = by_name(check.report())
    assert not checks["joints_range"].ok
    assert checks["joints_range"].detail.startswith("not finished")


# --------------------------------------------------------------------------- unit: evaluators


def test_camera_black_and_frozen_judged_from_frames() -> None:
    cfg = HealthConfig()
    img = np.zeros((48, 64, 3), dtype=np.uint8)
    black = CameraWatch("top", cfg.camera_stride)
    for k in range(20):
        img[:] = k % 3  # dark, changing
        black.update(img, k, np.full(20, 0.1 * k), cfg)
    r = black.result(cfg)
    assert not r.ok and r.detail.startswith("black: 20 of 20 frames")
    lit = CameraWatch("top", cfg.camera_stride)
    for k in range(20):
        img[:] = 100 + k
        lit.update(img, k, np.full(20, 0.1 * k), cfg)
        lit.update(img, k, np.full(20, 0.1 * k), cfg)  # the same capture read twice: once
    assert lit.result(cfg).ok and lit.frames == 20
    still = CameraWatch("top", cfg.camera_stride)  # the hand never moved: cannot judge
    for k in range(20):
        still.update(img, k, np.zeros(20), cfg)
    assert not still.result(cfg).ok and "cannot judge frozen" in still.result(cfg).detail
    assert CameraWatch("x", 1).result(cfg).detail == "no frames"


def test_markers_stale_frames_count_as_gaps() -> None:
    cfg = HealthConfig()
    w = MarkerWatch(MARKERS)
    frame = MocapFrame(0, 0, positions=np.ones((3, 3)), visible=np.ones(3, dtype=bool))
    for k in range(100):
        w.update(frame, stale=30 <= k < 60)  # 30 stale cycles = 2.4 s > 2 s
    r = w.result(cfg, PERIOD)
    assert not r.ok and "fftip missing 2.4 s in a row" in r.detail
    assert r.data["stale_frames"] == 30
    ok = MarkerWatch(MARKERS)
    for _ in range(10):
        ok.update(frame, stale=False)
    assert ok.result(cfg, PERIOD).ok


def test_temperatures_name_the_hottest() -> None:
    cfg = HealthConfig(temp_limit_c=60)
    w = TemperatureWatch(ACTUATOR_NAMES)
    t = np.full(20, 30.0)
    w.update(t)
    t[17] = 71.5
    w.update(t)
    t[17] = 40.0
    w.update(t)  # the maximum over the check counts, not the last reading
    r = w.result(cfg)
    assert not r.ok and r.detail.startswith("hottest A_THJ2 71.5 C, limit 60 C; 1 motor(s)")


def test_joint_judge_reports_worst_when_ok() -> None:
    idx = np.arange(20)
    home = default_idle_action()
    meas = home + 0.05
    r = judge_joints(
        [Reach("home", True, idx, home, meas)], ACTUATOR_NAMES, 0.15, home=True, expected=1
    )
    assert r.ok and "within 0.15 rad" in r.detail
    meas[3] = np.nan
    r = judge_joints(
        [Reach("home", True, idx, home, meas)], ACTUATOR_NAMES, 0.15, home=True, expected=1
    )
    assert not r.ok and "A_FFJ2 no reading at home" in r.detail


def test_config_refuses_typos_and_groups_that_miss_an_actuator() -> None:
    with pytest.raises(ValidationError):
        HealthConfig.model_validate({"tolerance": 0.1})
    with pytest.raises(ValidationError, match="more than once"):
        HealthConfig(groups=(("A_WRJ1",), ("-A_WRJ1",)))
    with pytest.raises(SafetyConfigError, match="leave out"):
        make_check(HealthConfig(groups=(("A_WRJ1", "A_WRJ0"),)))
    with pytest.raises(SafetyConfigError, match="unknown actuator"):
        make_check(HealthConfig(groups=(*HealthConfig().groups, ("A_XXJ9",))))


def test_report_has_the_heartbeat_health_shape() -> None:
    report = HealthReport.of(
        [CheckResult("a", True, "fine", {"x": 1}), CheckResult("b", False, "broken")]
    )
    d = report.as_dict()
    assert set(d) == {"ok", "at", "checks"} and d["ok"] is False
    assert d["checks"] == [
        {"name": "a", "ok": True, "detail": "fine"},
        {"name": "b", "ok": False, "detail": "broken"},
    ]
    assert report.failed == ["b"] and d["at"].endswith("+00:00")


# --------------------------------------------------------------------------- on the rig


class Temps:
    """A publisher keeping each actuator's highest measured temperature."""

    def __init__(self) -> None:
        self.max_c = np.full(20, -np.inf)

    def publish(self, step: Step) -> None:
        hand = step.obs.hand
        if hand is not None:
            np.maximum(self.max_c, hand.temperatures, out=self.max_c)


def run_rig(rig: dict[str, Any], publishers: list[Any] | None = None) -> tuple[HealthReport, str]:
    """The health check on a fresh lockstep rig (small frames, no cameras unless asked); the
    report and the supervisor's state and reason afterwards."""
    cfg = sim_cell_config(
        {
            "loop": {"rate_hz": 12.5},
            "rig": {
                "clock": "lockstep",
                "rate_hz": 12.5,
                "camera_width": 64,
                "camera_height": 48,
                "cameras": 0,
                **rig,
            },
            "rt": {"enabled": False},
        }
    )
    with cell_up(cfg) as cell:
        report = cell.run_health_check(publishers=publishers)
        sup = cell.supervisor
        return report, f"{sup.state.label} {sup.reason.value}"


@pytest.mark.system
@pytest.mark.slow
def test_healthy_rig_passes_every_check() -> None:
    report, end = run_rig({"cameras": 3})
    assert report.ok, report.as_dict()
    assert {c.name for c in report.checks} == CHECKS | {
        "camera_left",
        "camera_right",
        "camera_top",
        "supervisor",
    }
    assert end == "idle home_reached"  # ramped down to home after the check
    sup = by_name(report)["supervisor"]
    assert sup.data["interventions"] == "none"  # slow enough: conditioning never had to act


@pytest.mark.system
def test_hot_rig_fails_temperatures_naming_the_hottest_motor() -> None:
    temps = Temps()
    report, _ = run_rig({"motor_ambient_c": 65.0}, [temps])
    checks = by_name(report)
    t = checks["temperatures"]
    assert not t.ok and not report.ok
    hottest = ACTUATOR_NAMES[int(np.argmax(temps.max_c))]
    assert t.data["hottest"] == hottest
    assert t.detail.startswith(f"hottest {hottest} {temps.max_c.max():.1f} C, limit 60 C")
    # derated by the conditioning, the hand still moves: only the temperature check fails
    assert report.failed == ["temperatures"], report.as_dict()


@pytest.mark.system
def test_rig_losing_markers_for_seconds_fails_mocap() -> None:
    report, _ = run_rig(
        {"mocap_dropout_rate_hz": 1.0, "mocap_dropout_s": 4.0, "mocap_dropout_jitter_s": 0.5}
    )
    assert report.failed == ["mocap_markers"], report.as_dict()
    detail = by_name(report)["mocap_markers"].detail
    assert "missing" in detail and "s in a row" in detail


def _rig_fault(name: str) -> bool:
    faults = RigConfig.model_fields.get("faults")
    return faults is not None and name in getattr(faults.annotation, "model_fields", {})


@pytest.mark.system
def test_black_camera_fails_its_check() -> None:
    require("rig fault knob faults.camera_black_at_s", _rig_fault("camera_black_at_s"))
    report, _ = run_rig({"cameras": 1, "faults": {"camera_black_at_s": 0.0}})
    cam = by_name(report)["camera_left"]
    assert not cam.ok and cam.detail.startswith("black:"), cam.detail
    assert report.failed == ["camera_left"], report.as_dict()


def test_supervisor_check_names_what_stopped_the_motion() -> None:
    sup = Supervisor(
        ACTUATOR_LIMITS,
        EFFORT_LIMITS,
        default_idle_action(),
        ACTUATOR_JOINT_INDEX,
        SafetyConfig(),
        PERIOD,
    )
    loop = SimpleNamespace(supervisor=sup, result=LoopResult(), first_cycle=0)
    sup.arm(Cause.OPERATOR)
    ok = supervisor_check(loop)  # type: ignore[arg-type]
    assert ok.ok and ok.detail.startswith("ran to the end (armed)")
    sup.cycle_index = 40
    sup.hold(Cause.WATCHDOG, Reason.STALE_SENSOR, "mocap")
    stopped = supervisor_check(loop)  # type: ignore[arg-type]
    assert not stopped.ok
    assert stopped.detail == "motion stopped at cycle 40: hold stale_sensor (mocap)"
