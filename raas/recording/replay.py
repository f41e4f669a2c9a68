"""Re-run a recording's observations through a policy bundle, offline, and compare its actions.

The recorded observations are rebuilt as the loop's own Observation objects (every source's
reading with its staleness, age and sample, the goal and the episode) and fed in cycle order to
a PolicyController, exactly as the loop fed them; an episode change resets the policy as it did
live. A cycle is compared when the loop used the policy's action (fallback "none"): the recorded
desired action is then exactly what decide() wrote, so with the same bundle the replay gives
bit-identical actions. Floats survive the file exactly (shortest round-trip repr in JSON).
Camera images come back from the file: PNG frames are exact, JPEG frames are not (record with
`camera_format = "png"` to replay a vision policy exactly).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from raas_client.report import format as fmt
from raas_client.report.reader import RecordingFile
from raas_drivers.cameras import CameraFrame
from raas_drivers.hand import HandState
from raas_drivers.mocap import MocapFrame
from raas_drivers.trigger import TriggerAck

from raas.config import CellConfig
from raas.core.controller import Controller
from raas.core.observation import Observation, SourceReading
from raas.policy import CellSpec, PolicyController, load_bundle
from raas.recording.errors import ReplayMismatchedBundle, ReplayNothingToReplay
from raas.recording.layout import RecordLayout

#: Cycles held back while reading, so a camera frame written after its cycle still joins it.
LOOKAHEAD = 256


@dataclass
class RecordedCycle:
    obs: dict[str, Any]
    action: dict[str, Any] | None = None
    frames: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)  # camera: (ns, img)


def _decode_image(msg: dict[str, Any]) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(msg["data"]))) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _floats(values: list[float | None]) -> np.ndarray:
    return np.array(values, dtype=np.float64)  # null (a non-finite value) comes back as NaN


def recorded_cycles(rf: RecordingFile, with_images: bool = True) -> Iterator[RecordedCycle]:
    """The recording's cycles in order, each with its action and its fresh camera frames."""
    pending: dict[int, RecordedCycle] = {}
    order: deque[int] = deque()
    topics = [fmt.TOPIC_OBSERVATION, fmt.TOPIC_ACTION]
    prefix = fmt.CAMERA_TOPIC_PREFIX if with_images else None
    for m in rf.messages(topics, prefix=prefix):
        if m.topic == fmt.TOPIC_OBSERVATION:
            c = int(m.data["cycle"])
            pending[c] = RecordedCycle(m.data)
            order.append(c)
        elif m.topic == fmt.TOPIC_ACTION:
            entry = pending.get(int(m.data["cycle"]))
            if entry is not None:
                entry.action = m.data
        else:
            entry = pending.get(m.sequence)
            if entry is not None:
                cam = m.topic.removeprefix(fmt.CAMERA_TOPIC_PREFIX)
                ts = m.data.get("timestamp", {})
                entry.frames[cam] = (
                    int(ts.get("sec", 0)) * 10**9 + int(ts.get("nsec", 0)),
                    _decode_image(m.data),
                )
        while len(order) > LOOKAHEAD:
            yield pending.pop(order.popleft())
    while order:
        yield pending.pop(order.popleft())


class ObservationRebuilder:
    """Fills one Observation per recorded cycle, as the loop's collect phase left it."""

    def __init__(self, layout: RecordLayout) -> None:
        self.layout = layout
        self.obs = Observation()
        for s in layout.sources:
            self.obs.sources[s.name] = SourceReading(s.name, s.deadline_ns, s.required)
        self._frames: dict[str, CameraFrame] = {}

    def fill(self, rc: RecordedCycle) -> Observation:
        d = rc.obs
        obs = self.obs
        obs.cycle = int(d["cycle"])
        obs.t_k_ns = int(d["t_k_ns"])
        obs.trigger_ns = int(d["trigger_ns"])
        obs.episode = int(d["episode"])
        obs.goal = _floats(d["goal"])
        for cam, (ns, img) in rc.frames.items():
            self._frames[cam] = CameraFrame(cycle=obs.cycle, capture_ns=ns, camera=cam, image=img)
        for name, src in d["sources"].items():
            r = obs.sources.get(name)
            if r is None:
                continue
            r.capture_ns = int(src["capture_ns"])
            r.arrival_ns = int(src["arrival_ns"])
            device_ns = src.get("device_ns")  # files written before it was recorded lack it
            r.device_ns = -1 if device_ns is None else int(device_ns)
            r.stale = bool(src["stale"])
            r.age_ns = int(src["age_ns"])
            r.sample = self._sample(name, src, d)
        return obs

    def _sample(self, name: str, src: dict[str, Any], d: dict[str, Any]) -> Any:
        cycle, capture = int(src["sample_cycle"]), int(src["capture_ns"])
        dev = src.get("device_ns")
        device_ns = None if dev is None else int(dev)
        if name == "hand":
            h = d.get("hand")
            if h is None:
                return None
            return HandState(
                cycle=cycle,
                capture_ns=capture,
                device_ns=device_ns,
                positions=_floats(h["positions"]),
                velocities=_floats(h["velocities"]),
                efforts=_floats(h["efforts"]),
                temperatures=_floats(h["temperatures"]),
                applied_seq=int(h["applied_seq"]),
            )
        if name == "mocap":
            m = d.get("mocap")
            if m is None:
                return None
            pos = _floats([x for row in m["positions"] for x in row]).reshape(-1, 3)
            return MocapFrame(
                cycle=cycle,
                capture_ns=capture,
                device_ns=device_ns,
                positions=pos,
                visible=np.array(m["visible"], dtype=bool),
            )
        if name.startswith("cameras."):
            return self._frames.get(name.removeprefix("cameras."))
        if capture < 0:
            return None
        return TriggerAck(cycle=cycle, capture_ns=capture, device_ns=device_ns)


@dataclass
class ReplayReport:
    actuator_names: tuple[str, ...]
    atol: float
    cycles: int = 0  # recorded cycles replayed
    compared: int = 0  # cycles whose recorded action was the policy's (no fallback)
    skipped_fallback: int = 0
    skipped_task: int = 0  # cycles between episodes, whose action the task chose (idle)
    differing: int = 0
    no_action: int = 0  # compared cycles where the replayed policy gave no action
    first_differing_cycle: int | None = None
    gaps: int = 0  # places where cycle indices jump (missed or dropped cycles)
    truncated: bool = False
    recorded_bundle: str = ""
    replayed_bundle: str = ""
    max_abs_diff: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def identical(self) -> bool:
        return self.compared > 0 and self.differing == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "cycles": self.cycles,
            "compared": self.compared,
            "skipped_fallback": self.skipped_fallback,
            "skipped_task": self.skipped_task,
            "differing": self.differing,
            "no_action": self.no_action,
            "first_differing_cycle": self.first_differing_cycle,
            "gaps": self.gaps,
            "truncated": self.truncated,
            "atol": self.atol,
            "recorded_bundle": self.recorded_bundle,
            "replayed_bundle": self.replayed_bundle,
            "identical": self.identical,
            "max_abs_diff": dict(
                zip(self.actuator_names, (float(x) for x in self.max_abs_diff), strict=True)
            ),
        }

    def format(self) -> str:
        lines = [
            f"replayed {self.cycles} cycles; compared {self.compared} "
            f"(skipped {self.skipped_fallback} where the loop used a fallback"
            + (
                f", {self.skipped_task} between episodes, where the task held the idle action)"
                if self.skipped_task
                else ")"
            ),
        ]
        if self.recorded_bundle and self.replayed_bundle:
            same = "same" if self.recorded_bundle == self.replayed_bundle else "DIFFERENT"
            lines.append(
                f"bundle: recorded {self.recorded_bundle[:12]}, replayed "
                f"{self.replayed_bundle[:12]} ({same})"
            )
        if self.gaps:
            lines.append(f"warning: {self.gaps} gaps in the cycle indices (missed or dropped "
                         "cycles): a recurrent policy may diverge after one")  # fmt: skip
        if self.truncated:
            lines.append("warning: the recording is truncated (its writer was stopped)")
        if self.identical:
            lines.append(f"IDENTICAL: every compared action within {self.atol:g} rad")
            return "\n".join(lines)
        if self.compared == 0:
            lines.append("nothing compared: the loop never used the policy's action")
            return "\n".join(lines)
        lines.append(
            f"DIFFERENT: {self.differing} of {self.compared} cycles differ by more than "
            f"{self.atol:g} rad (the replayed policy gave no action in {self.no_action}); first at "
            f"cycle {self.first_differing_cycle}"
        )
        lines.append("max |replayed - recorded| per actuator (rad):")
        for name, v in zip(self.actuator_names, self.max_abs_diff, strict=True):
            if v > self.atol:
                lines.append(f"  {name:<8} {v:.6g}")
        return "\n".join(lines)


def task_cycles(rf: RecordingFile) -> Callable[[int], bool]:
    """Which recorded cycles' actions the evaluation task chose, not the policy: from the cycle
    whose decide ended an episode (its `episode_end` event) until the one that started the next
    (`episode_start`). The task holds the idle action there (raas/task/evaluation.py). An event
    carries the last cycle recorded before it, so the cycle that emitted it is the next one.
    A recording without episode events (`raasd run`, remote step): none."""
    ended: list[tuple[int, int]] = []  # [first, last) cycles between an end and a start
    end_at: int | None = None
    for m in rf.messages([fmt.TOPIC_EVENTS]):
        kind, after = m.data.get("kind"), int(m.data.get("cycle", -1))
        if kind == "episode_end" and end_at is None:
            end_at = after + 1
        elif kind == "episode_start" and end_at is not None:
            ended.append((end_at, after + 1))
            end_at = None
    if end_at is not None:  # the last episode's end: the task's idle action to the end
        ended.append((end_at, 2**62))
    return lambda cycle: any(first <= cycle < last for first, last in ended)


def replay(
    rf: RecordingFile, controller: Controller, *, atol: float = 0.0, replayed_bundle: str = ""
) -> ReplayReport:
    """Feed every recorded cycle to `controller` and compare with the recorded desired action."""
    layout = RecordLayout.from_json(rf.layout())
    n = len(layout.actuator_names)
    report = ReplayReport(layout.actuator_names, atol, replayed_bundle=replayed_bundle)
    report.recorded_bundle = rf.metadata.get(fmt.META_SESSION, {}).get("bundle_sha256", "")
    report.max_abs_diff = np.zeros(n)
    rebuild = ObservationRebuilder(layout)
    bind = getattr(controller, "bind_markers", None)
    if callable(bind):  # the recorded cell's mocap rows, by name, as the loop binds them
        bind(layout.marker_names)
    out = np.zeros(n)
    last = None
    by_task = task_cycles(rf)
    controller.reset()
    for rc in recorded_cycles(rf):
        obs = rebuild.fill(rc)
        if last is not None and obs.cycle != last + 1:
            report.gaps += 1
        last = obs.cycle
        report.cycles += 1
        out[:] = np.nan
        ok = controller.decide(obs, out)
        act = rc.action
        if act is None:
            continue
        if act["fallback"] != "none":
            report.skipped_fallback += 1
            continue
        if by_task(obs.cycle):  # between episodes: the task's idle action, not the policy's
            report.skipped_task += 1
            continue
        recorded = _floats(act["desired"])
        if recorded.shape != out.shape:
            raise ReplayMismatchedBundle(
                f"the recording has {recorded.size} actuators, the bundle writes {out.size}"
            )
        report.compared += 1
        if not ok:
            report.no_action += 1
            diff = np.full(n, np.inf)
        else:
            diff = np.abs(out - recorded)
            diff[np.isnan(diff)] = np.inf
        np.maximum(report.max_abs_diff, diff, out=report.max_abs_diff)
        if (diff > atol).any():
            report.differing += 1
            if report.first_differing_cycle is None:
                report.first_differing_cycle = obs.cycle
    report.truncated = rf.truncated
    if report.cycles == 0:
        raise ReplayNothingToReplay(f"{rf.path} holds no cycles")
    return report


def recorded_period_s(rf: RecordingFile) -> float:
    """The loop period the recording was made at (from its configuration)."""
    meta = rf.metadata.get(fmt.META_SESSION, {})
    if "rate_hz" in meta:
        return 1.0 / float(meta["rate_hz"])
    cfg = json.loads(rf.metadata.get(fmt.META_CONFIG, {}).get("cell_config", "{}"))
    return 1.0 / float(cfg.get("loop", {}).get("rate_hz", 12.5))


def _recorded_hand(rf: RecordingFile, cell: CellSpec) -> CellSpec:
    """The hand the recording was made with (its layout's actuators, joints and limits, its
    metadata's hand model), so a bundle replays against that hand, whatever its shape."""
    layout = rf.layout()
    names = layout.get("actuator_names")
    limits = layout.get("limits")
    if not names or not limits or len(names) != len(limits):
        return cell
    model = rf.metadata.get(fmt.META_SESSION, {}).get("hand_model", cell.hand_model)
    return dataclasses.replace(
        cell,
        actuator_names=tuple(names),
        actuator_limits=np.array(limits, dtype=np.float64),
        joint_names=tuple(layout.get("joint_names") or cell.joint_names),
        hand_model=model,
    )


def replay_file(path: Path, bundle: Path, *, atol: float = 0.0) -> ReplayReport:
    """Load `bundle` for the recording's cell and period, then replay."""
    rf = RecordingFile(path)
    rf.scan_metadata()
    cell = CellSpec()
    raw = rf.metadata.get(fmt.META_CONFIG, {}).get("cell_config")
    if raw is not None:
        try:
            cell = CellSpec.from_config(CellConfig.model_validate_json(raw))
        except ValueError:
            cell = CellSpec()  # a configuration of another raas version: the default cell
    cell = _recorded_hand(rf, cell)
    # Offline, time does not matter: a budget no inference misses, so no cycle is refused.
    runner = load_bundle(bundle, period_s=recorded_period_s(rf), budget_ms=1e6, cell=cell)
    return replay(rf, PolicyController(runner), atol=atol, replayed_bundle=runner.bundle_hash)
