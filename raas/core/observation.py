"""What one cycle saw and did. Preallocated once and updated in place every cycle."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from raas_drivers.cameras import CameraFrame
from raas_drivers.hand import HandState
from raas_drivers.mocap import MocapFrame
from raas_drivers.source import Sample

from raas.core.fallback import FallbackKind


@dataclass(slots=True)
class SourceReading:
    """The latest sample of one source and whether it belongs to this cycle.

    stale:     no sample for this cycle by the source's deadline; `sample` is an older one
    late:      stale, but the source's answer to an earlier cycle arrived after that cycle's
               deadline and is `sample` now: the source is alive and slow (a busy machine), not
               silent; the stale-sensor watchdog counts only silent cycles
    age_ns:    trigger time of this cycle minus the capture time of `sample` (0 when fresh
               and captured at the trigger)
    capture_ns: the sample's capture time on the loop's clock (the device stamp mapped to it)
    device_ns: the sample's capture time on the device's own clock (-1: no device clock)
    """

    name: str
    deadline_ns: int
    required: bool
    sample: Sample | None = None
    capture_ns: int = -1
    device_ns: int = -1
    arrival_ns: int = -1
    stale: bool = True
    late: bool = False
    age_ns: int = 0
    stale_cycles: int = 0  # total cycles this source was stale
    late_cycles: int = 0  # of those, cycles that picked up a late answer (see `late`)
    consecutive_stale: int = 0
    max_age_ns: int = 0  # largest age seen while stale


@dataclass(slots=True)
class Observation:
    """Cycle index, trigger time and every source's reading, with staleness flags."""

    cycle: int = -1
    t_k_ns: int = 0  # the grid time of the cycle
    trigger_ns: int = 0  # when the trigger was sent
    #: the loop runs on simulated time (LockstepClock): wall-clock budgets do not apply, so that
    #: a lockstep run's actions and results do not depend on how busy the machine is
    lockstep: bool = False
    sources: dict[str, SourceReading] = field(default_factory=dict)
    # Task slots, written by a controller that runs a task (e.g. block reorientation) so that the
    # goal and episode boundaries travel with the cycle to publishers, the recorder and replay.
    episode: int = 0  # episode index within the run; a change means the policy was reset
    goal: np.ndarray = field(default_factory=lambda: np.zeros(7))  # x y z (m), qw qx qy qz

    @property
    def hand(self) -> HandState | None:
        r = self.sources.get("hand")
        return r.sample if r is not None and isinstance(r.sample, HandState) else None

    @property
    def mocap(self) -> MocapFrame | None:
        r = self.sources.get("mocap")
        return r.sample if r is not None and isinstance(r.sample, MocapFrame) else None

    def camera(self, name: str) -> CameraFrame | None:
        r = self.sources.get(f"cameras.{name}")
        return r.sample if r is not None and isinstance(r.sample, CameraFrame) else None

    @property
    def any_required_stale(self) -> bool:
        return any(r.stale for r in self.sources.values() if r.required)


@dataclass(slots=True)
class PhaseTimes:
    """Durations of the cycle's phases in ns (stopwatch clock)."""

    trigger: int = 0
    collect: int = 0
    decide: int = 0
    condition: int = 0
    apply: int = 0
    publish: int = 0


@dataclass(slots=True)
class Step:
    """Everything a cycle produced, handed to publishers. Buffers are reused: copy to keep."""

    obs: Observation
    desired: np.ndarray
    applied: np.ndarray
    fallback: FallbackKind = FallbackKind.NONE
    lateness_ns: int = 0
    trigger_to_apply_ns: int = 0
    apply_ns: int = 0
    decide_ns: int = 0
    phases: PhaseTimes = field(default_factory=PhaseTimes)
    lease_holder: str | None = None
    safety: int = 0  # raas.safety.SafetyState of the cycle (after its condition phase)
    interventions: int = 0  # raas.safety.Stage flags: the conditioning stages that changed it
