"""One cycle as a fixed-size binary record: packed in the loop, unpacked by the recorder.

Beside the desired and applied action, each record carries the supervisor's state of the cycle
(raas.safety.SafetyState) and the conditioning stages that changed the action (Stage flags);
the action message names them ("running", ["rate", "derate"]).

The loop process fills one preallocated numpy record per cycle (field views are bound once, so a
cycle costs a few dozen element copies and no Python objects) and sends its bytes. The recorder
turns the same bytes back into the JSON messages of the file format
(raas_client.report.format). The layout (names and sizes) is fixed when the cell comes up and
travels to the recorder once, as JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from raas_client.report.format import FALLBACK_NAMES, PHASES
from raas_drivers.hand import HandState
from raas_drivers.mocap import MocapFrame

from raas.core.observation import Observation, SourceReading, Step
from raas.safety.conditioning import STAGE_NAMES, STAGES
from raas.safety.reasons import SafetyState

TAG_CYCLE = ord("C")
LEASE_BYTES = 64


@dataclass(frozen=True, slots=True)
class SourceInfo:
    name: str
    deadline_ns: int
    required: bool


@dataclass(frozen=True, slots=True)
class RecordLayout:
    """What a cycle record holds: the cell's sources, actuators, joints and markers."""

    sources: tuple[SourceInfo, ...]
    actuator_names: tuple[str, ...]
    joint_names: tuple[str, ...]
    marker_names: tuple[str, ...]
    limits: tuple[tuple[float, float], ...]

    @property
    def camera_sources(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sources if s.name.startswith("cameras."))

    def dtype(self) -> np.dtype[Any]:
        s = len(self.sources)
        a = len(self.actuator_names)
        j = len(self.joint_names)
        m = len(self.marker_names)
        return np.dtype(
            [
                ("tag", "u1"),
                ("cycle", "<i8"),
                ("t_k", "<i8"),
                ("trigger", "<i8"),
                ("episode", "<i8"),
                ("goal", "<f8", (7,)),
                ("fallback", "<i8"),
                ("lateness", "<i8"),
                ("trigger_to_apply", "<i8"),
                ("apply_ns", "<i8"),
                ("decide_ns", "<i8"),
                ("phases", "<i8", (len(PHASES),)),
                ("dropped_before", "<i8"),
                ("desired", "<f8", (a,)),
                ("applied", "<f8", (a,)),
                ("safety", "u1"),
                ("interventions", "u1"),
                ("has_lease", "u1"),
                ("lease", f"S{LEASE_BYTES}"),
                ("src_capture", "<i8", (s,)),
                ("src_arrival", "<i8", (s,)),
                ("src_device", "<i8", (s,)),
                ("src_stale", "u1", (s,)),
                ("src_age", "<i8", (s,)),
                ("src_sample_cycle", "<i8", (s,)),
                ("has_hand", "u1"),
                ("hand_pos", "<f8", (j,)),
                ("hand_vel", "<f8", (j,)),
                ("hand_eff", "<f8", (a,)),
                ("hand_temp", "<f8", (a,)),
                ("hand_seq", "<i8"),
                ("has_mocap", "u1"),
                ("mocap_pos", "<f8", (m, 3)),
                ("mocap_vis", "u1", (m,)),
            ]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "sources": [
                {"name": s.name, "deadline_ns": s.deadline_ns, "required": s.required}
                for s in self.sources
            ],
            "actuator_names": list(self.actuator_names),
            "joint_names": list(self.joint_names),
            "marker_names": list(self.marker_names),
            "limits": [list(lim) for lim in self.limits],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordLayout:
        return cls(
            sources=tuple(
                SourceInfo(str(s["name"]), int(s["deadline_ns"]), bool(s["required"]))
                for s in data["sources"]
            ),
            actuator_names=tuple(data["actuator_names"]),
            joint_names=tuple(data["joint_names"]),
            marker_names=tuple(data["marker_names"]),
            limits=tuple((float(lo), float(hi)) for lo, hi in data["limits"]),
        )


class StepPacker:
    """Packs a Step into one preallocated record. `pack()` allocates nothing per cycle (the lease
    holder's bytes only when the holder changes)."""

    def __init__(self, layout: RecordLayout) -> None:
        self.layout = layout
        self.buf = np.zeros(1, dtype=layout.dtype())
        self.bytes: memoryview = self.buf.view(np.uint8).reshape(-1).data
        b = self.buf
        b["tag"][0] = TAG_CYCLE
        # Scalars as 1-element views, arrays as row views: bound once.
        self._cycle, self._t_k, self._trigger = b["cycle"], b["t_k"], b["trigger"]
        self._episode, self._goal = b["episode"], b["goal"][0]
        self._fallback, self._lateness = b["fallback"], b["lateness"]
        self._t2a, self._apply, self._decide = b["trigger_to_apply"], b["apply_ns"], b["decide_ns"]
        self._phases, self._dropped = b["phases"][0], b["dropped_before"]
        self._desired, self._applied = b["desired"][0], b["applied"][0]
        self._safety, self._interventions = b["safety"], b["interventions"]
        self._has_lease, self._lease = b["has_lease"], b["lease"]
        self._cap, self._arr = b["src_capture"][0], b["src_arrival"][0]
        self._dev = b["src_device"][0]
        self._stale, self._age, self._scyc = (
            b["src_stale"][0],
            b["src_age"][0],
            b["src_sample_cycle"][0],
        )
        self._has_hand, self._hpos, self._hvel = b["has_hand"], b["hand_pos"][0], b["hand_vel"][0]
        self._heff, self._htemp, self._hseq = b["hand_eff"][0], b["hand_temp"][0], b["hand_seq"]
        self._has_mocap, self._mpos, self._mvis = (
            b["has_mocap"],
            b["mocap_pos"][0],
            b["mocap_vis"][0],
        )
        self._readings: list[SourceReading | None] | None = None
        self._readings_of: Observation | None = None
        self._hand_reading: SourceReading | None = None
        self._mocap_reading: SourceReading | None = None
        self._lease_of: str | None = None

    def _bind(self, obs: Observation) -> list[SourceReading | None]:
        readings = [obs.sources.get(s.name) for s in self.layout.sources]
        self._readings = readings
        self._readings_of = obs
        self._hand_reading = obs.sources.get("hand")
        self._mocap_reading = obs.sources.get("mocap")
        return readings

    def pack(self, step: Step, dropped_before: int) -> memoryview:
        obs = step.obs
        readings = self._readings if self._readings_of is obs else None
        if readings is None:
            readings = self._bind(obs)
        self._cycle[0] = obs.cycle
        self._t_k[0] = obs.t_k_ns
        self._trigger[0] = obs.trigger_ns
        self._episode[0] = obs.episode
        self._goal[:] = obs.goal
        self._fallback[0] = int(step.fallback)
        self._lateness[0] = step.lateness_ns
        self._t2a[0] = step.trigger_to_apply_ns
        self._apply[0] = step.apply_ns
        self._decide[0] = step.decide_ns
        ph = step.phases
        p = self._phases
        p[0], p[1], p[2] = ph.trigger, ph.collect, ph.decide
        p[3], p[4], p[5] = ph.condition, ph.apply, ph.publish
        self._dropped[0] = dropped_before
        self._desired[:] = step.desired
        self._applied[:] = step.applied
        self._safety[0] = step.safety
        self._interventions[0] = step.interventions
        holder = step.lease_holder
        if holder is not self._lease_of:
            self._lease_of = holder
            self._has_lease[0] = holder is not None
            self._lease[0] = (holder or "").encode()[:LEASE_BYTES]
        for i, r in enumerate(readings):
            if r is None:
                continue
            self._cap[i] = r.capture_ns
            self._arr[i] = r.arrival_ns
            self._dev[i] = r.device_ns
            self._stale[i] = r.stale
            self._age[i] = r.age_ns
            s = r.sample
            self._scyc[i] = s.cycle if s is not None else -1
        self._pack_hand()
        self._pack_mocap()
        return self.bytes

    def _pack_hand(self) -> None:
        r = self._hand_reading
        hs = r.sample if r is not None else None
        if not isinstance(hs, HandState):
            self._has_hand[0] = 0
            return
        try:
            self._hpos[:] = hs.positions
            self._hvel[:] = hs.velocities
            self._heff[:] = hs.efforts
            self._htemp[:] = hs.temperatures
        except ValueError:  # a hand of another shape than the layout's: not recorded
            self._has_hand[0] = 0
            return
        self._hseq[0] = hs.applied_seq
        self._has_hand[0] = 1

    def _pack_mocap(self) -> None:
        r = self._mocap_reading
        mf = r.sample if r is not None else None
        if not isinstance(mf, MocapFrame):
            self._has_mocap[0] = 0
            return
        try:
            self._mpos[:] = mf.positions
            self._mvis[:] = mf.visible
        except ValueError:
            self._has_mocap[0] = 0
            return
        self._has_mocap[0] = 1


def _device_ns(ns: int) -> int | None:
    """A source's device stamp for the file: null when the device has no clock of its own."""
    return None if ns < 0 else ns


def _floats(a: np.ndarray) -> list[float]:
    out: list[float] = a.tolist()
    return out


def _finite_or_none(values: list[float]) -> list[float | None]:
    """JSON has no NaN/inf: they are written as null (the JSON parser Foxglove uses refuses
    them). Used only when a value is not finite, which a recorded observation rarely has."""
    return [v if math.isfinite(v) else None for v in values]


def _json_floats(a: np.ndarray) -> list[float] | list[float | None]:
    values = _floats(a)
    if np.isfinite(a).all():
        return values
    return _finite_or_none(values)


def _safety_label(state: int) -> str:
    try:
        return SafetyState(state).label
    except ValueError:
        return str(state)


def _stage_names(flags: int) -> list[str]:
    return [name for stage, name in zip(STAGES, STAGE_NAMES, strict=True) if flags & stage]


class RecordDecoder:
    """Turns record bytes back into the file's three per-cycle messages (recorder side)."""

    def __init__(self, layout: RecordLayout) -> None:
        self.layout = layout
        self.dtype = layout.dtype()
        self.size = self.dtype.itemsize
        self.names = [s.name for s in layout.sources]
        self.lower = np.array([lo for lo, _ in layout.limits])
        self.upper = np.array([hi for _, hi in layout.limits])

    def decode(self, data: bytes | memoryview) -> np.void:
        rec: np.void = np.frombuffer(data, dtype=self.dtype, count=1)[0]
        return rec

    def messages(self, rec: np.void) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        cycle = int(rec["cycle"])
        sources = {
            name: {
                "capture_ns": int(rec["src_capture"][i]),
                "arrival_ns": int(rec["src_arrival"][i]),
                "device_ns": _device_ns(int(rec["src_device"][i])),
                "stale": bool(rec["src_stale"][i]),
                "age_ns": int(rec["src_age"][i]),
                "sample_cycle": int(rec["src_sample_cycle"][i]),
            }
            for i, name in enumerate(self.names)
        }
        hand = (
            {
                "positions": _json_floats(rec["hand_pos"]),
                "velocities": _json_floats(rec["hand_vel"]),
                "efforts": _json_floats(rec["hand_eff"]),
                "temperatures": _json_floats(rec["hand_temp"]),
                "applied_seq": int(rec["hand_seq"]),
            }
            if rec["has_hand"]
            else None
        )
        mocap = (
            {
                "positions": [_json_floats(row) for row in rec["mocap_pos"]],
                "visible": [bool(v) for v in rec["mocap_vis"]],
            }
            if rec["has_mocap"]
            else None
        )
        observation = {
            "cycle": cycle,
            "t_k_ns": int(rec["t_k"]),
            "trigger_ns": int(rec["trigger"]),
            "episode": int(rec["episode"]),
            "goal": _json_floats(rec["goal"]),
            "sources": sources,
            "hand": hand,
            "mocap": mocap,
        }
        desired = rec["desired"]
        fb = int(rec["fallback"])
        action = {
            "cycle": cycle,
            "desired": _json_floats(desired),
            "applied": _json_floats(rec["applied"]),
            "fallback": FALLBACK_NAMES[fb] if 0 <= fb < len(FALLBACK_NAMES) else str(fb),
            "clipped": bool(((desired < self.lower) | (desired > self.upper)).any()),
            "lease_holder": rec["lease"].decode(errors="replace") if rec["has_lease"] else None,
            "safety": _safety_label(int(rec["safety"])),
            "interventions": _stage_names(int(rec["interventions"])),
        }
        phases = rec["phases"]
        timing = {
            "cycle": cycle,
            "lateness_ns": int(rec["lateness"]),
            "trigger_to_apply_ns": int(rec["trigger_to_apply"]),
            "apply_ns": int(rec["apply_ns"]),
            "decide_ns": int(rec["decide_ns"]),
            "phases_ns": {p: int(phases[i]) for i, p in enumerate(PHASES)},
            "dropped_before": int(rec["dropped_before"]),
        }
        return observation, action, timing
