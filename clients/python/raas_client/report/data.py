"""What a report shows, gathered in one streaming pass over a recording.

Timing figures are kept for every cycle (a few integers each); the per-actuator series for the
joint plots are thinned to at most MAX_ROWS evenly spaced cycles, so a 10-minute 1 kHz recording
fits in memory."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raas_client.report import format as fmt
from raas_client.report.reader import RecordingFile

MAX_ROWS = 20_000
#: Actuators shown against their joints: the wrist, one joint per finger, the thumb.
SHOWN_ACTUATORS = ("A_WRJ0", "A_FFJ3", "A_MFJ2", "A_RFJ1", "A_LFJ2", "A_THJ1")
SUCCESS_EVENTS = ("success", "goal_reached")
SAFETY_PREFIXES = ("safety", "estop", "e-stop", "limit")


def _joint_columns(actuator: str, joints: list[str]) -> list[int]:
    """The joint(s) an actuator drives: A_XXJn -> XXJn; a finger's J1 tendon drives J1 + J0."""
    name = actuator.removeprefix("A_")
    if name not in joints:
        return []
    cols = [joints.index(name)]
    if name[:2] in ("FF", "MF", "RF", "LF") and name.endswith("J1"):
        j0 = name[:-1] + "0"
        if j0 in joints:
            cols.append(joints.index(j0))
    return cols


class Thinned:
    """Evenly spaced rows of a long series, at most `cap` (the stride doubles when full)."""

    def __init__(self, cap: int = MAX_ROWS) -> None:
        self.cap = cap
        self.stride = 1
        self.rows: list[tuple[float, ...]] = []
        self._n = 0

    def add(self, row_fn: Any) -> None:
        if self._n % self.stride == 0:
            self.rows.append(row_fn())
            if len(self.rows) >= self.cap:
                self.rows = self.rows[::2]
                self.stride *= 2
        self._n += 1

    def array(self) -> np.ndarray:
        return np.array(self.rows, dtype=np.float64) if self.rows else np.zeros((0, 0))


@dataclass
class ReportData:
    path: Path
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    layout: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False
    truncation_reason: str = ""
    # per cycle
    cycle: list[int] = field(default_factory=list)
    t_s: list[float] = field(default_factory=list)
    lateness_ns: list[int] = field(default_factory=list)
    trigger_to_apply_ns: list[int] = field(default_factory=list)
    phases_ns: dict[str, list[int]] = field(default_factory=lambda: {p: [] for p in fmt.PHASES})
    dropped_before: int = 0
    fallback: list[int] = field(default_factory=list)  # 0 none, 1 repeat, 2 idle
    clipped: list[bool] = field(default_factory=list)
    episode: list[int] = field(default_factory=list)
    goal_changed: list[bool] = field(default_factory=list)
    stale: dict[str, list[bool]] = field(default_factory=dict)
    age_ms: dict[str, list[float]] = field(default_factory=dict)
    # thinned: t, desired[k], applied[k], position[k] for the shown actuators
    shown: list[str] = field(default_factory=list)
    joints: Thinned = field(default_factory=Thinned)
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    #: the `data` of each `chunk` event (a policy server's session), in order
    chunks: list[dict[str, Any]] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=dict)

    @property
    def cycles(self) -> int:
        return len(self.cycle)

    @property
    def gaps(self) -> int:
        c = np.asarray(self.cycle)
        return int(np.count_nonzero(np.diff(c) != 1)) if c.size > 1 else 0

    @property
    def period_s(self) -> float:
        """The loop period: the recording's rate, else the median trigger spacing."""
        rate = self.metadata.get(fmt.META_SESSION, {}).get("rate_hz")
        if rate:
            return 1.0 / float(rate)
        if len(self.t_s) > 1:
            return float(np.median(np.diff(self.t_s)))
        return float("nan")

    @property
    def missing_cycles(self) -> int:
        """Cycle indices absent between the first and the last (missed or dropped)."""
        if not self.cycle:
            return 0
        return max(0, self.cycle[-1] - self.cycle[0] + 1 - len(self.cycle))


def load(path: Path) -> ReportData:
    rf = RecordingFile(path)
    d = ReportData(Path(path))
    layout: dict[str, Any] = {}
    cols: list[tuple[int, list[int]]] = []
    t0: int | None = None
    last_goal: list[Any] | None = None
    last_episode: int | None = None
    pending_act: dict[int, dict[str, Any]] = {}
    pending_obs: dict[int, dict[str, Any]] = {}

    def t_of(ns: int) -> float:
        return 0.0 if t0 is None else (ns - t0) / 1e9

    def join(c: int) -> None:
        obs, act = pending_obs.get(c), pending_act.get(c)
        if obs is None or act is None:
            return
        del pending_obs[c], pending_act[c]
        hand = obs.get("hand")
        if hand is None or not cols:
            return
        pos = hand["positions"]
        des, app = act["desired"], act["applied"]

        def row() -> tuple[float, ...]:
            vals: list[float] = [t_of(obs["trigger_ns"])]
            for a, jc in cols:
                vals += [_f(des[a]), _f(app[a]), sum(_f(pos[j]) for j in jc) if jc else np.nan]
            return tuple(vals)

        d.joints.add(row)

    for m in rf.messages():
        data = m.data
        if m.topic == fmt.TOPIC_OBSERVATION:
            if not layout:
                layout = rf.layout() if fmt.META_LAYOUT in rf.metadata else {}
                d.layout = layout
                act_names = list(layout.get("actuator_names", []))
                joints = list(layout.get("joint_names", []))
                d.shown = [a for a in SHOWN_ACTUATORS if a in act_names]
                cols = [(act_names.index(a), _joint_columns(a, joints)) for a in d.shown]
            if t0 is None:
                t0 = int(data["trigger_ns"])
            c = int(data["cycle"])
            d.cycle.append(c)
            d.t_s.append(t_of(int(data["trigger_ns"])))
            ep = int(data.get("episode", 0))
            goal = data.get("goal")
            d.episode.append(ep)
            d.goal_changed.append(
                last_goal is not None and goal != last_goal and ep == last_episode
            )
            last_goal, last_episode = goal, ep
            for name, s in data.get("sources", {}).items():
                d.stale.setdefault(name, []).append(bool(s["stale"]))
                d.age_ms.setdefault(name, []).append(int(s["age_ns"]) / 1e6)
            pending_obs[c] = data
            join(c)
        elif m.topic == fmt.TOPIC_ACTION:
            fb = data.get("fallback", "none")
            d.fallback.append(fmt.FALLBACK_NAMES.index(fb) if fb in fmt.FALLBACK_NAMES else 0)
            d.clipped.append(bool(data.get("clipped", False)))
            c = int(data["cycle"])
            pending_act[c] = data
            join(c)
        elif m.topic == fmt.TOPIC_TIMING:
            d.lateness_ns.append(int(data["lateness_ns"]))
            d.trigger_to_apply_ns.append(int(data["trigger_to_apply_ns"]))
            for p in fmt.PHASES:
                d.phases_ns[p].append(int(data["phases_ns"].get(p, 0)))
            d.dropped_before = max(d.dropped_before, int(data.get("dropped_before", 0)))
        elif m.topic == fmt.TOPIC_EVENTS:
            if data.get("kind") == "chunk":  # one per chunk: plotted, not listed
                d.chunks.append(dict(data.get("data") or {}))
                continue
            d.events.append((_event_time(d, data), data))
        elif m.topic.startswith(fmt.CAMERA_TOPIC_PREFIX):
            cam = m.topic.removeprefix(fmt.CAMERA_TOPIC_PREFIX)
            d.frames[cam] = d.frames.get(cam, 0) + 1
    d.metadata = rf.metadata
    if not d.layout and fmt.META_LAYOUT in rf.metadata:
        d.layout = {k: json.loads(v) for k, v in rf.metadata[fmt.META_LAYOUT].items()}
    d.truncated = rf.truncated
    d.truncation_reason = rf.truncation_reason
    return d


def _event_time(d: ReportData, event: dict[str, Any]) -> float:
    """An event's time: the time of the cycle it follows (events carry the last cycle)."""
    c = int(event.get("cycle", -1))
    if c < 0 or not d.cycle:
        return 0.0 if c < 0 else d.t_s[-1] if d.t_s else 0.0
    if d.cycle[-1] == c:
        return d.t_s[-1]
    i = int(np.searchsorted(np.asarray(d.cycle), c))
    return d.t_s[min(i, len(d.t_s) - 1)]


def _f(v: float | None) -> float:
    return float("nan") if v is None else float(v)
