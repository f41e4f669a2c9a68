"""The post-session health check: move the hand through its range and judge the cell.

`HealthCheck` is an ordinary Controller (name "health"), so its motion goes through the
supervisor and the conditioning pipeline like any other. It drives:

    home (settle)
    for each group of actuators:   the group to `low_fraction` of each range, settle,
                                   to `high_fraction`, settle  (the rest of the hand at home)
    home (settle)

A name in a group prefixed "-" moves the opposite way (to 1 - fraction): a finger bends at the
knuckle while its tip stays straight and then the other way round, so it clears a block lying
in the palm. Every actuator still visits both fractions of its range. Targets are ramped at
`speed_rad_s`, below the conditioning's rate limit. At the end of each settle the measured
position is compared with the target.

While it moves it watches every cycle: the motion capture (every marker seen, none invisible,
NaN or stale for longer than `max_marker_gap_s`), each camera (not black: mean intensity above
`black_mean_threshold`; not frozen: frames change while the hand moves) and the motor
temperatures (the hottest below `temp_limit_c`). Cameras are read one cycle late (they are not
in `needs`): a dead camera fails its own check instead of stopping the motion through the
supervisor's staleness watchdog.

`report()` gives the checks in the shape of the service heartbeat's `health` field:
joints_home, joints_range, mocap_markers, camera_<name>..., temperatures.
`run_health_check(build_loop, ...)` runs it on a brought-up cell (raas.daemon hands over what
it needs: its loop builder, hand, supervisor, mocap and cameras) and adds a `supervisor` check.
A hand whose actuators are not the Shadow hand's (a mirror or Dynamixel hand) moves one actuator
at a time unless [health] groups names its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from raas_drivers.cameras import CameraDriver, CameraFrame
from raas_drivers.hand import HandDriver, HandState
from raas_drivers.hand.config import ACTUATOR_NAMES
from raas_drivers.mocap import MocapDriver, MocapFrame

from raas.core.observation import Observation
from raas.safety.errors import SafetyConfigError, TransitionRefusedError
from raas.safety.reasons import Cause, Reason, SafetyState

if TYPE_CHECKING:
    from raas.core.loop import ControlLoop, LoopConfig, Publisher
    from raas.safety.supervisor import Supervisor

#: builds a ControlLoop on the cell: (controller, publishers=, loop_config=, arm_on_start=)
LoopBuilder = Callable[..., "ControlLoop"]

#: The default groups for the Shadow-type hand: wrist, each finger, thumb. "-": opposite way.
DEFAULT_GROUPS: tuple[tuple[str, ...], ...] = (
    ("A_WRJ1", "A_WRJ0"),
    ("A_FFJ3", "A_FFJ2", "-A_FFJ1"),
    ("A_MFJ3", "A_MFJ2", "-A_MFJ1"),
    ("A_RFJ3", "A_RFJ2", "-A_RFJ1"),
    ("A_LFJ4", "A_LFJ3", "A_LFJ2", "-A_LFJ1"),
    ("A_THJ4", "-A_THJ3", "A_THJ2", "-A_THJ1", "A_THJ0"),
)


class HealthConfig(BaseModel):
    """How the health check moves and what it accepts. Defaults suit the simulated Shadow-type
    hand at 12.5 Hz with the block lying in its palm (docs/safety.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low_fraction: float = Field(default=0.2, ge=0.05, le=0.45, description="first target")
    high_fraction: float = Field(default=0.8, ge=0.55, le=0.95, description="second target")
    groups: tuple[tuple[str, ...], ...] = Field(
        default=DEFAULT_GROUPS,
        description="actuators moved together; every actuator once; '-name' moves opposite",
    )
    speed_rad_s: float = Field(
        default=1.5, gt=0, le=4.0, description="target speed of the ramps between targets"
    )
    settle_s: float = Field(default=0.6, ge=0, le=10, description="hold at each range target")
    home_settle_s: float = Field(default=1.2, ge=0, le=10, description="hold at home")
    tolerance_rad: float = Field(
        default=0.15, gt=0, le=1.0, description="|measured - target| accepted after settling"
    )
    temp_limit_c: float = Field(
        default=60.0, description="hottest motor must stay below (the conditioning derates above)"
    )
    max_marker_gap_s: float = Field(
        default=2.0,
        gt=0,
        description="longest a marker may be invisible, NaN or stale (rig occlusions: ~1 s)",
    )
    min_marker_visible: float = Field(
        default=0.3, ge=0, le=1, description="fraction of cycles each marker must be seen in"
    )
    black_mean_threshold: float = Field(
        default=8.0, ge=0, le=255, description="a frame darker than this mean intensity is black"
    )
    black_max_fraction: float = Field(
        default=0.1, ge=0, le=1, description="fraction of a camera's frames allowed to be black"
    )
    motion_eps_rad: float = Field(
        default=0.02, gt=0, description="the hand moved between two frames: some joint by this"
    )
    frozen_max_frames: int = Field(
        default=5, ge=1, description="identical frames in a row while the hand moved -> frozen"
    )
    min_moving_frames: int = Field(
        default=5, ge=1, description="frames taken while the hand moved needed to judge frozen"
    )
    camera_stride: int = Field(
        default=4, ge=1, le=64, description="pixel subsampling for the black/frozen tests"
    )

    @model_validator(mode="after")
    def _groups_unique(self) -> HealthConfig:
        names = [n.lstrip("-") for g in self.groups for n in g]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"groups name {', '.join(dup)} more than once")
        return self


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: `data` holds the figures behind the detail (not sent in the heartbeat)."""

    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class HealthReport:
    ok: bool
    at: str  # iso8601, UTC
    checks: tuple[CheckResult, ...]

    @classmethod
    def of(cls, checks: Iterable[CheckResult], at: datetime | None = None) -> HealthReport:
        cs = tuple(checks)
        when = (at or datetime.now(UTC)).isoformat(timespec="seconds")
        return cls(ok=bool(cs) and all(c.ok for c in cs), at=when, checks=cs)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """The heartbeat's `health` field: {"ok", "at", "checks": [{"name", "ok", "detail"}]}."""
        return {"ok": self.ok, "at": self.at, "checks": [c.as_dict() for c in self.checks]}


# --------------------------------------------------------------------------- evaluators


@dataclass(slots=True)
class Reach:
    """One settled target: which actuators it judged, the target and what was measured."""

    label: str
    home: bool
    index: np.ndarray
    target: np.ndarray
    measured: np.ndarray


def judge_joints(
    reaches: Sequence[Reach], names: Sequence[str], tolerance: float, *, home: bool, expected: int
) -> CheckResult:
    """joints_home (home=True) or joints_range: every judged actuator within `tolerance`."""
    name = "joints_home" if home else "joints_range"
    mine = [r for r in reaches if r.home is home]
    if len(mine) < expected:
        return CheckResult(name, False, f"not finished: {len(mine)} of {expected} targets judged")
    worst_err, worst = 0.0, ""
    failed: dict[str, str] = {}
    for r in mine:
        err = np.abs(r.measured[r.index] - r.target[r.index])
        for i, e in zip(r.index, err, strict=True):
            n = names[i]
            if not math.isfinite(float(e)):
                failed.setdefault(n, f"{n} no reading at {r.label}")
                continue
            if e > worst_err:
                worst_err, worst = float(e), n
            if e > tolerance and n not in failed:
                failed[n] = f"{n} off by {e:.3f} rad at {r.label}"
    data = {"worst": worst, "worst_err_rad": round(worst_err, 4), "failed": sorted(failed)}
    if failed:
        return CheckResult(
            name,
            False,
            f"{len(failed)} actuator(s) beyond {tolerance:g} rad: " + "; ".join(failed.values()),
            data,
        )
    what = "home" if home else "each range target"
    n_act = len({int(i) for r in mine for i in r.index})
    return CheckResult(
        name,
        True,
        f"{n_act} actuators reached {what} within {tolerance:g} rad "
        f"(worst {worst or '-'} {worst_err:.3f} rad)",
        data,
    )


class MarkerWatch:
    """Per marker: cycles seen, the longest run unseen (invisible, NaN or a stale frame)."""

    def __init__(self, marker_names: Sequence[str]) -> None:
        self.names = tuple(marker_names)
        n = len(self.names)
        self.cycles = 0
        self.stale_frames = 0
        self.seen = np.zeros(n, dtype=np.int64)
        self.gap = np.zeros(n, dtype=np.int64)
        self.max_gap = np.zeros(n, dtype=np.int64)
        self.shape_error = ""
        self._ok = np.zeros(n, dtype=bool)

    def update(self, frame: MocapFrame | None, stale: bool) -> None:
        self.cycles += 1
        ok = self._ok
        if frame is None or stale:
            self.stale_frames += 1
            ok[:] = False
        elif frame.visible.shape != ok.shape or frame.positions.shape != (len(ok), 3):
            self.shape_error = (
                f"frame has {frame.visible.shape[0]} markers, expected {len(self.names)}"
            )
            ok[:] = False
        else:
            np.isfinite(frame.positions).all(axis=1, out=ok)
            ok &= frame.visible
        self.seen += ok
        self.gap += ~ok
        self.gap[ok] = 0
        np.maximum(self.max_gap, self.gap, out=self.max_gap)

    def result(self, cfg: HealthConfig, period_s: float) -> CheckResult:
        name = "mocap_markers"
        if self.cycles == 0:
            return CheckResult(name, False, "no cycles watched")
        problems: list[str] = []
        if self.shape_error:
            problems.append(self.shape_error)
        max_gap_cycles = cfg.max_marker_gap_s / period_s
        for i, m in enumerate(self.names):
            seen, gap = int(self.seen[i]), int(self.max_gap[i])
            if seen == 0:
                problems.append(f"{m} never seen")
            elif gap > max_gap_cycles:
                problems.append(f"{m} missing {gap * period_s:.1f} s in a row")
            elif seen / self.cycles < cfg.min_marker_visible:
                problems.append(f"{m} seen in only {100 * seen / self.cycles:.0f} % of cycles")
        longest = int(self.max_gap.max()) if len(self.names) else 0
        data = {
            "cycles": self.cycles,
            "stale_frames": self.stale_frames,
            "longest_gap_s": round(longest * period_s, 3),
            "seen_fraction": {
                m: round(int(s) / self.cycles, 3)
                for m, s in zip(self.names, self.seen, strict=True)
            },
        }
        if problems:
            return CheckResult(name, False, "; ".join(problems), data)
        return CheckResult(
            name,
            True,
            f"all {len(self.names)} markers seen; longest gap {longest * period_s:.2f} s "
            f"(limit {cfg.max_marker_gap_s:g} s), {self.stale_frames} stale frames "
            f"in {self.cycles} cycles",
            data,
        )


class CameraWatch:
    """One camera: frame brightness, and whether frames change while the hand moves."""

    def __init__(self, name: str, stride: int) -> None:
        self.name = name
        self.stride = stride
        self.frames = 0
        self.dark = 0
        self.mean_sum = 0.0
        self.moving_pairs = 0
        self.changed_pairs = 0
        self.same_run = 0  # identical frames in a row while the hand moved
        self.max_same_run = 0
        self._prev: np.ndarray | None = None
        self._prev_pose: np.ndarray | None = None
        self._last_capture = -1

    def update(
        self,
        image: np.ndarray,
        capture_ns: int,
        pose: np.ndarray | None,
        cfg: HealthConfig,
    ) -> None:
        """A fresh frame (once per capture) and the hand's measured pose when it was taken."""
        if capture_ns == self._last_capture:
            return
        self._last_capture = capture_ns
        small = image[:: self.stride, :: self.stride]
        self.frames += 1
        mean = float(small.mean()) if small.size else 0.0
        self.mean_sum += mean
        if mean < cfg.black_mean_threshold:
            self.dark += 1
        prev, prev_pose = self._prev, self._prev_pose
        moved = (
            pose is not None
            and prev_pose is not None
            and float(np.abs(pose - prev_pose).max()) > cfg.motion_eps_rad
        )
        if moved and prev is not None and prev.shape == small.shape:
            self.moving_pairs += 1
            if np.array_equal(prev, small):
                self.same_run += 1
                self.max_same_run = max(self.max_same_run, self.same_run)
            else:
                self.changed_pairs += 1
                self.same_run = 0
        if prev is None or prev.shape != small.shape:
            self._prev = np.array(small, copy=True)
        else:
            np.copyto(prev, small)
        self._prev_pose = None if pose is None else np.array(pose, copy=True)

    def result(self, cfg: HealthConfig) -> CheckResult:
        name = f"camera_{self.name}"
        data = {
            "frames": self.frames,
            "dark_frames": self.dark,
            "mean_intensity": round(self.mean_sum / self.frames, 2) if self.frames else 0.0,
            "moving_pairs": self.moving_pairs,
            "changed_pairs": self.changed_pairs,
            "longest_frozen": self.max_same_run,
        }
        if self.frames == 0:
            return CheckResult(name, False, "no frames", data)
        mean = data["mean_intensity"]
        problems = []
        if self.dark > cfg.black_max_fraction * self.frames:
            problems.append(
                f"black: {self.dark} of {self.frames} frames below mean intensity "
                f"{cfg.black_mean_threshold:g} (mean {mean})"
            )
        if self.moving_pairs < cfg.min_moving_frames:
            problems.append(
                f"cannot judge frozen: {self.moving_pairs} frame pairs while the hand moved "
                f"(need {cfg.min_moving_frames})"
            )
        elif self.max_same_run >= cfg.frozen_max_frames:
            problems.append(
                f"frozen: {self.max_same_run} identical frames in a row while the hand moved "
                f"({self.changed_pairs} of {self.moving_pairs} changed)"
            )
        if problems:
            return CheckResult(name, False, "; ".join(problems), data)
        return CheckResult(
            name,
            True,
            f"{self.frames} frames, mean intensity {mean}; {self.changed_pairs} of "
            f"{self.moving_pairs} changed while the hand moved",
            data,
        )


class TemperatureWatch:
    def __init__(self, actuator_names: Sequence[str]) -> None:
        self.names = tuple(actuator_names)
        self.max_c = np.full(len(self.names), -np.inf)
        self.readings = 0
        self.unreadable = 0

    def update(self, temperatures: np.ndarray) -> None:
        self.readings += 1
        if not np.isfinite(temperatures).all():
            self.unreadable += 1
        np.fmax(self.max_c, temperatures, out=self.max_c)

    def result(self, cfg: HealthConfig) -> CheckResult:
        name = "temperatures"
        if self.readings == 0 or not np.isfinite(self.max_c).any():
            return CheckResult(name, False, "no temperature readings")
        i = int(np.nanargmax(self.max_c))
        hottest, t = self.names[i], float(self.max_c[i])
        hot = [n for n, c in zip(self.names, self.max_c, strict=True) if c >= cfg.temp_limit_c]
        data = {"hottest": hottest, "max_c": round(t, 2), "over_limit": hot}
        if hot:
            return CheckResult(
                name,
                False,
                f"hottest {hottest} {t:.1f} C, limit {cfg.temp_limit_c:g} C; "
                f"{len(hot)} motor(s) at or over it: {_some(hot)}",
                data,
            )
        if self.unreadable:
            return CheckResult(
                name, False, f"{self.unreadable} readings with NaN temperatures", data
            )
        return CheckResult(
            name, True, f"hottest {hottest} {t:.1f} C (limit {cfg.temp_limit_c:g} C)", data
        )


# --------------------------------------------------------------------------- the controller


@dataclass(frozen=True, slots=True)
class Segment:
    """Ramp to `target` over `move` cycles, hold it `settle` cycles, then judge `index`."""

    label: str
    home: bool
    target: np.ndarray
    index: np.ndarray
    move: int
    settle: int


def _some(names: Sequence[str], n: int = 5) -> str:
    more = len(names) - n
    return ", ".join(names[:n]) + (f" and {more} more" if more > 0 else "")


def _group_name(names: Sequence[str]) -> str:
    """ "FF" for A_FFJ3, A_FFJ2, A_FFJ1; the names themselves when they share no prefix."""
    short = [n.removeprefix("A_") for n in names]
    common = short[0] if short else ""
    for n in short[1:]:
        while not n.startswith(common):
            common = common[:-1]
    common = common.rstrip("J")
    return common if common else "+".join(short)


class HealthCheck:
    """A Controller that moves the hand through its range and judges the cell (module doc)."""

    name = "health"

    def __init__(
        self,
        cfg: HealthConfig,
        limits: np.ndarray,
        home: np.ndarray,
        joint_index: Iterable[int],
        marker_names: Sequence[str],
        camera_names: Sequence[str],
        period_s: float,
        *,
        actuator_names: Sequence[str] = ACTUATOR_NAMES,
        hand_source: str = "hand",
        mocap_source: str = "mocap",
        camera_prefix: str = "cameras.",
        on_segment: Callable[[int, int, str], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.limits = np.asarray(limits, dtype=np.float64)
        n = self.limits.shape[0]
        self.home = np.asarray(home, dtype=np.float64).copy()
        self.joint_index = np.array(list(joint_index), dtype=np.intp)
        self.actuator_names = tuple(actuator_names)
        if len(self.actuator_names) != n or self.home.shape != (n,) or len(self.joint_index) != n:
            raise SafetyConfigError(
                f"health check: {n} limits but {len(self.actuator_names)} names, home "
                f"{self.home.shape}, {len(self.joint_index)} joint indices"
            )
        self.period_s = period_s
        self.hand_source = hand_source
        self.mocap_source = mocap_source
        self.camera_sources = {c: f"{camera_prefix}{c}" for c in camera_names}
        self.needs: frozenset[str] = frozenset({hand_source, mocap_source})
        self.on_segment = on_segment
        self._groups = self._resolve_groups(cfg.groups)
        self.markers = MarkerWatch(marker_names)
        self.cameras = {c: CameraWatch(c, cfg.camera_stride) for c in camera_names}
        self.temperatures = TemperatureWatch(self.actuator_names)
        self.reaches: list[Reach] = []
        self.segments: list[Segment] = []
        self.done = False
        self._seg = 0
        self._c = 0
        self._start = self.home.copy()
        self._measured = np.full(n, np.nan)
        self._poses = np.full((8, n), np.nan)  # the measured pose by cycle % 8, for cameras
        self._pose_cycle = np.full(8, -1, dtype=np.int64)
        self._started = False

    @classmethod
    def for_devices(
        cls,
        cfg: HealthConfig,
        hand: HandDriver,
        supervisor: Supervisor,
        devices: Iterable[object],
        period_s: float,
        on_segment: Callable[[int, int, str], None] | None = None,
    ) -> HealthCheck:
        """A health check for a brought-up cell: its hand, its supervisor's home, every marker
        and camera among `devices`. A hand that is not the Shadow type gets one group per
        actuator unless `cfg.groups` names its actuators."""
        markers: Sequence[str] = ()
        cameras: list[str] = []
        mocap_source = "mocap"
        for d in devices:
            if isinstance(d, MocapDriver):
                markers, mocap_source = d.marker_names, d.source_name
            elif isinstance(d, CameraDriver):
                cameras += [s.source_name.removeprefix("cameras.") for s in d.sources()]
        names = tuple(hand.actuator_names)
        listed = {n.lstrip("-") for g in cfg.groups for n in g}
        if cfg.groups == DEFAULT_GROUPS and not listed <= set(names):
            cfg = cfg.model_copy(update={"groups": tuple((n,) for n in names)})
        return cls(
            cfg,
            hand.limits,
            supervisor.home,
            supervisor.joint_index,
            markers,
            cameras,
            period_s,
            actuator_names=names,
            hand_source=hand.source_name,
            mocap_source=mocap_source,
            on_segment=on_segment,
        )

    # ------------------------------------------------------------------ plan
    def _resolve_groups(
        self, groups: Sequence[Sequence[str]]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(index, inverted) per group; every actuator exactly once."""
        out = []
        covered: set[str] = set()
        for g in groups:
            idx, inv = [], []
            for raw in g:
                nm = raw.lstrip("-")
                if nm not in self.actuator_names:
                    raise SafetyConfigError(f"health check: unknown actuator {nm!r} in groups")
                idx.append(self.actuator_names.index(nm))
                inv.append(raw.startswith("-"))
                covered.add(nm)
            out.append((np.array(idx, dtype=np.intp), np.array(inv, dtype=bool)))
        missing = [a for a in self.actuator_names if a not in covered]
        if missing:
            raise SafetyConfigError(f"health check: groups leave out {', '.join(missing)}")
        return out

    def _plan(self, start: np.ndarray) -> list[Segment]:
        cfg = self.cfg
        lo, hi = self.limits[:, 0], self.limits[:, 1]
        step = cfg.speed_rad_s * self.period_s
        everyone = np.arange(len(self.home), dtype=np.intp)

        def cycles(s: float) -> int:
            return max(1, math.ceil(s / self.period_s - 1e-9))

        segs: list[Segment] = []
        prev = start

        def add(
            label: str, home: bool, target: np.ndarray, index: np.ndarray, settle: float
        ) -> None:
            nonlocal prev
            gap = np.abs(target - prev)
            dist = float(np.nanmax(gap)) if np.isfinite(gap).any() else 0.0
            move = max(1, math.ceil(dist / step - 1e-9))
            segs.append(Segment(label, home, target, index, move, cycles(settle)))
            prev = target

        add("home", True, self.home.copy(), everyone, cfg.home_settle_s)
        for idx, inv in self._groups:
            for frac in (cfg.low_fraction, cfg.high_fraction):
                f = np.where(inv, 1.0 - frac, frac)
                target = self.home.copy()
                target[idx] = lo[idx] + f * (hi[idx] - lo[idx])
                label = (
                    f"{_group_name([self.actuator_names[i] for i in idx])} at {100 * frac:.0f} %"
                )
                add(label, False, target, idx, cfg.settle_s)
        add("home (end)", True, self.home.copy(), everyone, cfg.home_settle_s)
        return segs

    @property
    def planned_s(self) -> float:
        """Robot time the check takes (from home; a start far from home adds its ramp)."""
        segs = self.segments or self._plan(self.home)
        return (sum(s.move + s.settle for s in segs) + 1) * self.period_s

    @property
    def progress(self) -> tuple[int, int]:
        return min(self._seg, len(self.segments)), len(self.segments)

    # ------------------------------------------------------------------ Controller
    def reset(self) -> None:
        """Start over (forgets what was judged)."""
        n = len(self.home)
        self.markers = MarkerWatch(self.markers.names)
        self.cameras = {c: CameraWatch(c, self.cfg.camera_stride) for c in self.cameras}
        self.temperatures = TemperatureWatch(self.actuator_names)
        self.reaches = []
        self.segments = []
        self.done = False
        self._seg = self._c = 0
        self._measured = np.full(n, np.nan)
        self._pose_cycle[:] = -1
        self._started = False

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        self._watch(obs)
        if not self._started:
            start = self._measured if np.isfinite(self._measured).all() else self.home
            self._start = np.clip(start, self.limits[:, 0], self.limits[:, 1])
            self.segments = self._plan(self._start)
            self._started = True
            self._announce()
        if self.done:
            out[:] = self.home
            return True
        seg = self.segments[self._seg]
        if self._c == seg.move + seg.settle:  # settled: judge, then the next segment
            self.reaches.append(
                Reach(seg.label, seg.home, seg.index, seg.target, self._measured.copy())
            )
            self._start = seg.target
            self._seg += 1
            self._c = 0
            if self._seg == len(self.segments):
                self.done = True
                out[:] = self.home
                return True
            self._announce()
            seg = self.segments[self._seg]
        if self._c < seg.move:
            a = (self._c + 1) / seg.move
            np.subtract(seg.target, self._start, out=out)
            out *= a
            out += self._start
        else:
            out[:] = seg.target
        self._c += 1
        return True

    def _announce(self) -> None:
        if self.on_segment is not None and self._seg < len(self.segments):
            self.on_segment(self._seg, len(self.segments), self.segments[self._seg].label)

    def _watch(self, obs: Observation) -> None:
        r = obs.sources.get(self.hand_source)
        hand = r.sample if r is not None and isinstance(r.sample, HandState) else None
        if hand is not None:
            np.take(hand.positions, self.joint_index, out=self._measured)
            if not r.stale:  # type: ignore[union-attr]
                slot = hand.cycle % len(self._pose_cycle)
                self._poses[slot] = self._measured
                self._pose_cycle[slot] = hand.cycle
                self.temperatures.update(hand.temperatures)
        m = obs.sources.get(self.mocap_source)
        frame = m.sample if m is not None and isinstance(m.sample, MocapFrame) else None
        self.markers.update(frame, m is None or m.stale)
        for cam, source in self.camera_sources.items():
            c = obs.sources.get(source)
            if c is None or c.stale or not isinstance(c.sample, CameraFrame):
                continue
            f = c.sample
            slot = f.cycle % len(self._pose_cycle)
            pose = self._poses[slot] if self._pose_cycle[slot] == f.cycle else None
            self.cameras[cam].update(f.image, f.capture_ns, pose, self.cfg)

    # ------------------------------------------------------------------ report
    def checks(self) -> list[CheckResult]:
        cfg = self.cfg
        segs = self.segments or self._plan(self.home)
        n_home = sum(1 for s in segs if s.home)
        out = [
            judge_joints(
                self.reaches,
                self.actuator_names,
                cfg.tolerance_rad,
                home=True,
                expected=n_home,
            ),
            judge_joints(
                self.reaches,
                self.actuator_names,
                cfg.tolerance_rad,
                home=False,
                expected=len(segs) - n_home,
            ),
            self.markers.result(cfg, self.period_s),
        ]
        out += [w.result(cfg) for w in self.cameras.values()]
        out.append(self.temperatures.result(cfg))
        return out

    def report(self, extra: Iterable[CheckResult] = ()) -> HealthReport:
        return HealthReport.of([*self.checks(), *extra])


# --------------------------------------------------------------------------- running it


def supervisor_check(loop: ControlLoop) -> CheckResult:
    """Whether the supervisor let the check run to its end (a watchdog stop voids the motion)."""
    sup = loop.supervisor
    res = loop.result
    counts = ", ".join(f"{k} {v}" for k, v in res.interventions.items() if v) or "none"
    stopped = [
        t
        for t in sup.history
        if t.after in (SafetyState.HOLD, SafetyState.FAULT) and t.cycle >= loop.first_cycle
    ]
    data = {"state": sup.state.label, "reason": sup.reason.value, "interventions": counts}
    if stopped:
        t = stopped[0]
        what = f"{t.after.label} {t.reason.value}" + (f" ({t.detail})" if t.detail else "")
        return CheckResult("supervisor", False, f"motion stopped at cycle {t.cycle}: {what}", data)
    return CheckResult(
        "supervisor",
        True,
        f"ran to the end ({sup.state.label}); conditioning intervened: {counts}",
        data,
    )


def health_loop(
    build_loop: LoopBuilder,
    loop_config: LoopConfig,
    check: HealthCheck,
    *,
    publishers: list[Publisher] | None = None,
) -> ControlLoop:
    """A loop (from the cell's `build_loop`) with `check` as controller, armed by the operator.
    It stops when the check is done and the supervisor ramped down to IDLE at home, or when the
    supervisor stops the motion (HOLD, FAULT). Raises TransitionRefusedError when a fault is
    latched."""
    lc = loop_config.model_copy(update={"duration_s": None, "warmup_cycles": 0})
    loop = build_loop(check, publishers=publishers, loop_config=lc, arm_on_start=False)
    sup = loop.supervisor

    def on_cycle(_step: object) -> None:
        st = sup.state
        if st in (SafetyState.HOLD, SafetyState.FAULT):
            loop.request_stop(f"supervisor {st.label}")
        elif check.done:
            if st in (SafetyState.ARMED, SafetyState.RUNNING):
                sup.ramp_down(Cause.OPERATOR, Reason.RUN_DONE, "health check done")
            elif st is SafetyState.IDLE:
                loop.request_stop("health check done")

    loop.on_cycle = on_cycle
    sup.arm(Cause.OPERATOR)
    return loop


def run_health_check(
    build_loop: LoopBuilder,
    loop_config: LoopConfig,
    check: HealthCheck,
    *,
    publishers: list[Publisher] | None = None,
) -> HealthReport:
    """Run a health check (HealthCheck.for_devices) on a brought-up cell and return its report.

    A latched fault gives a failing report without moving. DeviceLost propagates (the caller
    exits 3, as the daemon does)."""
    try:
        loop = health_loop(build_loop, loop_config, check, publishers=publishers)
    except TransitionRefusedError as exc:
        return HealthReport.of([CheckResult("supervisor", False, f"not run: {exc}")])
    loop.run()
    return check.report([supervisor_check(loop)])
