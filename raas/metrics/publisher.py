"""MetricsPublisher: the loop's side of the board. Called every cycle after apply; never blocks.

Every cycle it does a fixed handful of int64 stores into shared memory (counters, three
histogram buckets, three ring slots, per-source staleness, the supervisor's state and the
conditioning stages that intervened, from the Step) between two stores of the seqlock
counter. Slow things are spread out: one "slow task" at most per cycle, each task at
`slow_hz` -- one camera thumbnail (a strided copy of the shared-memory frame), one device's
`stats()`, the task goal -- so that no cycle pays for all of them.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
from raas_drivers.cameras import CameraFrame

from raas.core.fallback import FallbackKind
from raas.core.observation import Observation, SourceReading, Step
from raas.metrics.board import (
    LEASE_BYTES,
    LINK_NAME_BYTES,
    STATE_RUNNING,
    STATE_STOPPED,
    Board,
)
from raas.safety.conditioning import STAGE_NAMES, STAGES

if TYPE_CHECKING:
    from raas.core.loop import ControlLoop

#: Thumbnail pixels copied by one slow task (about 2 us).
BAND_PIXELS = 1024


class StatsDevice(Protocol):
    """What the publisher needs of a device: its name and cheap counters."""

    @property
    def name(self) -> str: ...

    def stats(self) -> dict[str, float]: ...


class MetricsPublisher:
    """Writes each cycle into a Board. Implements raas.core.loop.Publisher."""

    def __init__(
        self,
        board: Board,
        devices: Sequence[StatsDevice] = (),
        *,
        slow_hz: float = 2.0,
        url: str | None = None,
    ) -> None:
        if not board.writable:
            raise ValueError("MetricsPublisher needs a board opened for writing (Board.create)")
        self.board = board
        self.url = url  # the exporter's address, when one serves this board
        layout = board.layout
        self.devices = list(devices)
        at = board.index
        self._mv = board.ints_mv
        self._i_seq = at("seq")
        self._i_update = at("update_ns")
        self._i_state = at("state")
        self._i_cycle = at("cycle")
        self._i_cycles = at("cycles")
        self._i_missed = at("missed")
        self._i_fb_repeat = at("fallbacks_repeat")
        self._i_fb_idle = at("fallbacks_idle")
        self._i_episode = at("episode")
        self._i_late = at("lateness_ns")
        self._i_t2a = at("trigger_to_apply_ns")
        self._i_decide = at("decide_ns")
        self._i_late_sum = at("lateness_sum_ns")
        self._i_t2a_sum = at("trigger_to_apply_sum_ns")
        self._i_decide_sum = at("decide_sum_ns")
        self._i_phase0 = at("phase_trigger_ns")
        self._i_late_hist = at("lateness_hist")
        self._i_t2a_hist = at("trigger_to_apply_hist")
        self._i_decide_hist = at("decide_hist")
        self._i_ring_late = at("ring_lateness")
        self._i_ring_t2a = at("ring_trigger_to_apply")
        self._i_ring_decide = at("ring_decide")
        self._i_stale_total = at("stale_total")
        self._i_stale_now = at("stale_now")
        self._i_age = at("age_ns")
        self._i_safety = at("safety_state")
        # (flag, slot) of each conditioning stage's counter
        self._stages = [
            (int(stage), at(f"interventions_{name}"))
            for stage, name in zip(STAGES, STAGE_NAMES, strict=True)
        ]
        self._ring = layout.ring
        self._late_edges = list(layout.lateness_edges_ns)
        self._lat_edges = list(layout.latency_edges_ns)
        self._seq = 0
        self._cycles = 0
        # Per loop: the observation it fills, its readings mapped to board slots, last cycle.
        self._obs: Observation | None = None
        self._slots: list[tuple[int, SourceReading]] = []
        self._prev_cycle = -1
        self._holder: str | None = None
        self._loop: ControlLoop | None = None
        self._loop_base = [0, 0, 0]  # overruns, clipped, apply_late of earlier loops
        self._loop_seen = [0, 0, 0]
        # Slow tasks, one per `stride` cycles, in rotation.
        self._tasks: list[Callable[[Step], None]] = []
        for i, name in enumerate(layout.cameras):
            self._tasks += self._thumbnail_tasks(i, f"cameras.{name}")
        for dev in self.devices:
            self._tasks.append(self._stats_task(dev))
        self._tasks.append(self._goal_task)
        # Each task runs at slow_hz: one task every `stride` cycles on a fast loop, or `ops`
        # tasks a cycle on a loop slower than the tasks' total rate (a long period).
        per_s = slow_hz * len(self._tasks)
        self._stride = max(1, round(layout.rate_hz / per_s))
        self._ops = max(1, round(per_s / layout.rate_hz))
        self._task_i = 0
        self._link_slot: dict[tuple[str, str], int] = {}
        self._mv[self._i_state] = STATE_RUNNING

    # -- the loop's side ---------------------------------------------------------------------
    def attach(self, loop: ControlLoop) -> None:
        """Follow a loop's own counters (overruns, clipped, apply-late; after its warm-up).
        Called by Cell.build_loop for every loop built with this publisher."""
        if self._loop is not None:
            for j in range(3):
                self._loop_base[j] += self._loop_seen[j]
        self._loop_seen = [0, 0, 0]
        self._loop = loop
        mv = self._mv
        mv[self.board.index("loops")] += 1

    def publish(self, step: Step) -> None:
        mv = self._mv
        seq = self._seq + 1
        mv[self._i_seq] = seq  # odd: inside a cycle
        obs = step.obs
        if obs is not self._obs:
            self._bind(obs)
        k = obs.cycle
        n = self._cycles
        if self._prev_cycle >= 0 and k > self._prev_cycle + 1:
            mv[self._i_missed] += k - self._prev_cycle - 1
        self._prev_cycle = k
        mv[self._i_update] = time.monotonic_ns()
        mv[self._i_cycle] = k
        mv[self._i_cycles] = n + 1
        mv[self._i_episode] = obs.episode

        fb = step.fallback
        if fb is not FallbackKind.NONE:
            if fb is FallbackKind.REPEAT:
                mv[self._i_fb_repeat] += 1
            else:
                mv[self._i_fb_idle] += 1

        r = n % self._ring
        late = step.lateness_ns
        mv[self._i_late] = late
        mv[self._i_late_sum] += late
        mv[self._i_late_hist + bisect_left(self._late_edges, late)] += 1
        mv[self._i_ring_late + r] = late
        t2a = step.trigger_to_apply_ns
        mv[self._i_t2a] = t2a
        mv[self._i_t2a_sum] += t2a
        mv[self._i_t2a_hist + bisect_left(self._lat_edges, t2a)] += 1
        mv[self._i_ring_t2a + r] = t2a
        dec = step.decide_ns
        mv[self._i_decide] = dec
        mv[self._i_decide_sum] += dec
        mv[self._i_decide_hist + bisect_left(self._lat_edges, dec)] += 1
        mv[self._i_ring_decide + r] = dec
        ph = step.phases
        p = self._i_phase0
        mv[p] = ph.trigger
        mv[p + 1] = ph.collect
        mv[p + 2] = ph.decide
        mv[p + 3] = ph.condition
        mv[p + 4] = ph.apply
        # the publish phase is still running: the previous cycle's is the latest complete one
        mv[p + 5] = ph.publish

        i_tot, i_now, i_age = self._i_stale_total, self._i_stale_now, self._i_age
        for j, reading in self._slots:
            if reading.stale:
                mv[i_tot + j] += 1
                mv[i_now + j] = 1
            else:
                mv[i_now + j] = 0
            mv[i_age + j] = reading.age_ns

        mv[self._i_safety] = step.safety
        flags = step.interventions
        if flags:  # the stages the supervisor's conditioner counted this cycle
            for bit, slot in self._stages:
                if flags & bit:
                    mv[slot] += 1

        loop = self._loop
        if loop is not None:
            res = loop.result
            seen = self._loop_seen
            if res.overruns != seen[0] or res.clipped != seen[1] or res.apply_late != seen[2]:
                self._loop_counters(res.overruns, res.clipped, res.apply_late)

        holder = step.lease_holder
        if holder != self._holder:
            self._write_holder(holder)

        if n % self._stride == 0 and self._tasks:
            tasks = self._tasks
            for _ in range(self._ops):
                tasks[self._task_i](step)
                self._task_i = (self._task_i + 1) % len(tasks)

        self._cycles = n + 1
        self._seq = seq + 1
        mv[self._i_seq] = seq + 1  # even: consistent

    def close(self) -> None:
        """Mark the board STOPPED (the cell is going down); the exporter says so."""
        mv = self._mv
        mv[self._i_seq] = self._seq + 1
        mv[self._i_state] = STATE_STOPPED
        mv[self._i_update] = time.monotonic_ns()
        self._seq += 2
        mv[self._i_seq] = self._seq

    # -- rarely -------------------------------------------------------------------------------
    def _bind(self, obs: Observation) -> None:
        """A new loop's observation: map its readings to the board's source slots."""
        names = self.board.layout.sources
        self._slots = [
            (names.index(name), reading) for name, reading in obs.sources.items() if name in names
        ]
        self._obs = obs
        self._prev_cycle = -1

    def _loop_counters(self, overruns: int, clipped: int, apply_late: int) -> None:
        # A loop resets these when its warm-up ends: a drop starts a new base.
        now = [overruns, clipped, apply_late]
        for j, name in enumerate(("overruns", "clipped", "apply_late")):
            if now[j] < self._loop_seen[j]:
                self._loop_base[j] += self._loop_seen[j]
            self._loop_seen[j] = now[j]
            self._mv[self.board.index(name)] = self._loop_base[j] + now[j]

    def _write_holder(self, holder: str | None) -> None:
        raw = (holder or "").encode()[:LEASE_BYTES]
        buf = self.board.raw
        buf[:LEASE_BYTES] = 0
        buf[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        self._mv[self.board.index("lease_changes")] += 1
        self._holder = holder

    def _thumbnail_tasks(self, cam: int, source: str) -> list[Callable[[Step], None]]:
        """One task per band of at most BAND_PIXELS thumbnail pixels (a strided copy costs about
        2 ns a pixel). Bands may come from consecutive frames; the camera's thumbnail counter
        moves on when the last band is in."""
        board = self.board
        stride = board.layout.thumb_stride
        h, w = board.layout.thumb_shape
        rows = max(1, BAND_PIXELS // max(w, 1))
        pixel = np.dtype((np.void, 3))  # one 3-byte item per pixel: numpy's fast strided copy
        dst = board.thumbs[cam].view(pixel).reshape(h, w)
        i_seq = board.index("thumb_seq") + cam
        tasks: list[Callable[[Step], None]] = []
        for top in range(0, h, rows):
            bottom = min(h, top + rows)

            def task(step: Step, top: int = top, bottom: int = bottom) -> None:
                reading = step.obs.sources.get(source)
                frame = reading.sample if reading is not None else None
                if not isinstance(frame, CameraFrame):
                    return
                image = frame.image
                if (
                    image.ndim != 3
                    or image.shape[2] != 3
                    or image.dtype != np.uint8
                    or -(-image.shape[0] // stride) != h
                    or -(-image.shape[1] // stride) != w
                    or image.strides[2] != 1
                    or image.strides[1] != 3
                ):
                    return  # not the configured frame: skip, never raise
                src = image.view(pixel)[:, :, 0]
                np.copyto(dst[top:bottom], src[top * stride : bottom * stride : stride, ::stride])
                if bottom == h:
                    self._mv[i_seq] += 1

            tasks.append(task)
        return tasks

    def _stats_task(self, device: StatsDevice) -> Callable[[Step], None]:
        board = self.board
        i_count = board.index("link_count")
        i_errors = board.index("stats_errors")

        def task(step: Step) -> None:
            try:
                stats = device.stats()
            except Exception:  # a driver's counters must never stop the loop
                self._mv[i_errors] += 1
                return
            for key, value in stats.items():
                slot = self._link_slot.get((device.name, key))
                if slot is None:
                    slot = len(self._link_slot)
                    if slot >= board.layout.link_slots:
                        continue
                    self._link_slot[(device.name, key)] = slot
                    name = f"{device.name}\t{key}".encode()[:LINK_NAME_BYTES]
                    o = LEASE_BYTES + slot * LINK_NAME_BYTES
                    board.raw[o : o + LINK_NAME_BYTES] = 0
                    board.raw[o : o + len(name)] = np.frombuffer(name, dtype=np.uint8)
                    self._mv[i_count] = slot + 1
                board.floats[7 + slot] = value

        return task

    def _goal_task(self, step: Step) -> None:
        goal = step.obs.goal
        if goal.shape == (7,):
            self.board.floats[0:7] = goal
