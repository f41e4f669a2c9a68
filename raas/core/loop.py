"""The control loop: the cycle contract of docs/architecture.md, one cycle at a time.

    prepare             at t_k - P, a controller that has prepare() warms up (realtime only;
                        LoopConfig.prepare may move it to just after the trigger, or off)
    t_k = t_0 + k T     sleep-then-spin until t_k (absolute grid, no drift)
    trigger             one trigger to every device, the hand's state request, then each
                        driver's settle() (clock fits) while they answer
    collect (needed)    the sources the controller reads, each until its own deadline; while
                        the loop sleeps here, what a controller's background_warmup() names runs
                        on a SCHED_IDLE helper thread (realtime only; background_warmup.py)
    decide              controller -> desired action; late, missing or non-finite -> fallback
                        (a controller with `rests_while_held` is not asked, nor warmed up,
                        while the supervisor ignores its actions: the hold is applied at once)
    condition           the supervisor (raas.safety): watchdogs, then the target of its state;
                        while RUNNING, the conditioning pipeline (finite, limits, rate, derate)
    apply               at t_k + L when a fixed phase is configured, else at once
    collect (rest)      sources only published (e.g. cameras for a state policy)
    publish             timing record, publishers, live status
A cycle that ends after t_{k+1} is an overrun: the slots it ran into are missed cycles, counted
and skipped, never caught up. The loop never waits for anything past its deadlines.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from raas_drivers.errors import DriverError
from raas_drivers.hand import HandDriver
from raas_drivers.source import Source
from raas_drivers.trigger import TriggerDriver

from raas.core.background_warmup import BackgroundWarmup
from raas.core.clock import Clock
from raas.core.collect import Collector
from raas.core.controller import Controller
from raas.core.fallback import Fallback, FallbackKind
from raas.core.grid import DeadlineGrid
from raas.core.observation import Observation, SourceReading, Step
from raas.core.rt import RtReport, freeze_heap, release_heap
from raas.core.status import StatusLine
from raas.core.timing import TimingLog, capacity_for
from raas.errors import DeviceLost, LoopStateError
from raas.safety import STAGE_NAMES, Cause, SafetyConfig, Supervisor, supervisor_for_hand

_MS = 1_000_000


class LoopConfig(BaseModel):
    """The loop's settings. Unknown fields are refused, so a typo names itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_hz: float = Field(default=12.5, gt=0, le=10_000, description="cycle rate")
    duration_s: float | None = Field(default=None, gt=0, description="measured run length")
    warmup_cycles: int = Field(default=25, ge=0, description="cycles before measuring")
    max_repeats: int = Field(default=3, ge=0, description="N: repeats before the idle action")
    decide_budget_ms: float | None = Field(
        default=None, gt=0, description="decide slower than this -> fallback (default T/2)"
    )
    apply_phase_ms: float | None = Field(
        default=None, ge=0, description="apply at t_k + L (fixed phase); None: as soon as ready"
    )
    prepare: Literal["before_trigger", "after_trigger", "off"] = Field(
        default="before_trigger",
        description="when the realtime loop calls the controller's prepare() (a policy's "
        "warm-up inferences): prepare_lead_ms before the trigger, right after the trigger "
        "while the devices answer (its time then delays collect), or never",
    )
    prepare_lead_ms: float = Field(
        default=3.0, gt=0, description="how long before the trigger (prepare = before_trigger)"
    )
    warm_during_collect: bool = Field(
        default=True,
        description="while the realtime loop waits for the devices' answers, run the "
        "warm-up its background_warmup() names (a policy's scratch inference) again and again on "
        "a SCHED_IDLE helper thread on the loop's CPU; the loop preempts it when answers come",
    )
    warm_during_lead: bool = Field(
        default=True,
        description="with prepare = before_trigger and warm_during_collect on, the same helper "
        "also runs that warm-up from prepare() until the trigger, so the inference's caches stay "
        "warm across the lead instead of cooling for prepare_lead_ms",
    )
    status_interval_s: float = Field(default=1.0, gt=0)

    @property
    def period_ns(self) -> int:
        return round(1e9 / self.rate_hz)

    @property
    def decide_budget_ns(self) -> int:
        if self.decide_budget_ms is not None:
            return round(self.decide_budget_ms * _MS)
        return self.period_ns // 2


class Publisher(Protocol):
    def publish(self, step: Step) -> None:
        """Hand the step on without blocking (copy what you keep)."""
        ...


@dataclass(slots=True)
class SourceSpec:
    source: Source
    deadline_ns: int
    required: bool = True


@dataclass(slots=True)
class LoopResult:
    cycles: int = 0  # measured cycles run (after warm-up)
    warmup_cycles: int = 0
    missed: int = 0  # grid slots skipped because a cycle overran or woke too late
    overruns: int = 0  # cycles that ended after the next cycle's start
    fallbacks_repeat: int = 0
    fallbacks_idle: int = 0
    apply_late: int = 0  # fixed-phase apply could not be met
    clipped: int = 0  # cycles whose desired action the conditioning pipeline changed
    interventions: dict[str, int] = field(default_factory=dict)  # cycles changed, per stage
    safety_state: str = ""  # the supervisor's state and reason when the loop ended
    safety_reason: str = ""
    rested: int = 0  # cycles whose controller was not asked: the supervisor held (rests_while_held)
    stop_reason: str = ""
    lost_device: str | None = None
    wall_s: float = 0.0
    grid_s: float = 0.0  # time on the loop's clock (sim time in lockstep)
    stale: dict[str, int] = field(default_factory=dict)
    late: dict[str, int] = field(default_factory=dict)  # stale cycles that took a late answer
    max_age_us: dict[str, float] = field(default_factory=dict)


class ControlLoop:
    def __init__(
        self,
        config: LoopConfig,
        clock: Clock,
        hand: HandDriver,
        trigger: TriggerDriver,
        sources: Sequence[SourceSpec],
        controller: Controller,
        publishers: Sequence[Publisher] = (),
        rt_report: RtReport | None = None,
        status: StatusLine | None = None,
        on_cycle: Callable[[Step], None] | None = None,
        supervisor: Supervisor | None = None,
        arm_on_start: bool = True,
    ) -> None:
        self.config = config
        self.clock = clock
        self.hand = hand
        self.trigger = trigger
        self.controller = controller
        self.publishers = list(publishers)
        self.rt_report = rt_report
        self.status = status
        self.on_cycle = on_cycle
        self.state = "IDLE"
        self._stop_reason: str | None = None
        n_act = len(hand.actuator_names)
        self.desired = np.zeros(n_act)
        self.target = np.zeros(n_act)
        self.applied = np.zeros(n_act)
        self.lower = np.array(hand.limits[:, 0], dtype=np.float64)
        self.upper = np.array(hand.limits[:, 1], dtype=np.float64)
        self.fallback = Fallback(hand.idle_action, config.max_repeats)
        #: Decides what reaches the motors; owned by the cell when loops run in segments.
        self.supervisor = (
            supervisor
            if supervisor is not None
            else supervisor_for_hand(hand, SafetyConfig(), config.period_ns / 1e9)
        )
        #: Arm the supervisor when the loop starts (a local run); a remote session arms it itself.
        self.arm_on_start = arm_on_start

        first: list[tuple[Source, SourceReading]] = []
        rest: list[tuple[Source, SourceReading]] = []
        self.obs = Observation()
        for spec in sources:
            name = spec.source.source_name
            reading = SourceReading(name=name, deadline_ns=spec.deadline_ns, required=spec.required)
            self.obs.sources[name] = reading
            (first if name in controller.needs or name == hand.source_name else rest).append(
                (spec.source, reading)
            )
        self.readings = [r for _, r in first] + [r for _, r in rest]
        self.collect_first = Collector(clock, first)
        self.collect_rest = Collector(clock, rest)
        duration = config.duration_s
        self.log = TimingLog(capacity_for(config.rate_hz, duration))
        self.result = LoopResult()
        self._ran = False
        #: the warm-up helper of the last run (None: its controller has no background_warmup)
        self.background: BackgroundWarmup | None = None
        self._done = 0
        #: Index of the first cycle. A later loop on the same devices (e.g. the next segment of
        #: `raasd robot`) continues their cycle numbering: devices match samples by cycle.
        self.first_cycle = 0
        self._counts0: dict[str, int] = {}

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current cycle (safe from a signal handler)."""
        if self._stop_reason is None:
            self._stop_reason = reason

    def run(self) -> LoopResult:
        if self._ran:
            raise LoopStateError("a ControlLoop runs once; build a new one")
        self._ran = True
        cfg = self.config
        clock = self.clock
        period = cfg.period_ns
        budget = cfg.decide_budget_ns
        apply_phase = None if cfg.apply_phase_ms is None else round(cfg.apply_phase_ms * _MS)
        target_cycles = (
            None if cfg.duration_s is None else max(1, round(cfg.duration_s * cfg.rate_hz))
        )
        res = self.result
        obs = self.obs
        step = Step(obs=obs, desired=self.desired, applied=self.applied)
        phases = step.phases
        sw = clock.stopwatch_ns
        desired, target = self.desired, self.target
        fallback = self.fallback
        controller = self.controller
        hand, trigger = self.hand, self.trigger
        warmup = cfg.warmup_cycles
        status = self.status
        sup = self.supervisor
        sup.needs = frozenset(controller.needs)
        readings = self.readings
        slipped = False
        # A controller may warm up just before the trigger (a policy: one inference on scratch
        # buffers). Only on a real clock: in lockstep the caches do not go cold between cycles.
        prepare: Callable[[], None] | None = getattr(controller, "prepare", None)
        if not clock.realtime or cfg.prepare == "off":
            prepare = None
        before = prepare if cfg.prepare == "before_trigger" else None
        after = prepare if cfg.prepare == "after_trigger" else None
        lead = round(cfg.prepare_lead_ms * _MS)
        if lead >= period:
            before = None
        warm_what: Callable[[], Callable[[], object] | None] | None = getattr(
            controller, "background_warmup", None
        )
        if not clock.realtime or not cfg.warm_during_collect:
            warm_what = None
        background = BackgroundWarmup() if warm_what is not None else None
        # The helper also fills the lead between prepare() and the trigger: the warm-ups then
        # end at the trigger, not prepare_lead_ms before it (docs/performance.md).
        warm_lead = before is not None and background is not None and cfg.warm_during_lead
        self.background = background
        # A controller that only acts through the supervisor (a policy) is not asked at all while
        # the supervisor ignores its actions (hold, fault, idle, ramp-down): a slow policy's
        # inference and warm-ups must not stretch the cycles that keep commanding the hold.
        rests = bool(getattr(controller, "rests_while_held", False))
        # Wall-clock budgets judge a realtime loop only: in lockstep, simulated time stands still
        # while decide runs, and a stall of the machine must not change what the run does.
        obs.lockstep = not clock.realtime
        judged = clock.realtime
        self.controller.reset()
        if self.arm_on_start:
            sup.arm(Cause.POLICY)
        if warmup == 0:
            self._end_warmup()

        # Start the grid two periods out so the first cycle is not already late.
        k = self.first_cycle
        grid = DeadlineGrid(clock.now_ns() + 2 * period - k * period, period)
        wall_start = time.monotonic()
        done = 0  # cycles run, warm-up included
        self.state = "RUNNING"
        try:
            while self._stop_reason is None:
                t_k = grid.t(k)
                resting = rests and not sup.active
                if before is not None and not resting and clock.now_ns() < t_k - lead:
                    clock.sleep_until(t_k - lead)
                    before()
                    if warm_lead:
                        assert warm_what is not None and background is not None
                        leading = warm_what()
                        if leading is not None:
                            background.begin(leading)
                            clock.sleep_until(t_k)
                            background.end()
                clock.sleep_until(t_k)
                now = clock.now_ns()
                if now >= t_k + period:  # woke a whole slot late: skip to the current slot
                    k2 = grid.index_at(now)
                    if done >= warmup:
                        res.missed += k2 - k
                    k = k2
                    t_k = grid.t(k)
                    slipped = True

                # 1. trigger
                s0 = sw()
                trig_ns = clock.now_ns()
                trigger.fire(k)
                hand.request_state(k)
                trigger.settle()  # spare-time work (clock fits) once every device was asked
                hand.settle()
                obs.t_k_ns = t_k
                obs.trigger_ns = trig_ns
                s1 = sw()
                phases.trigger = s1 - s0

                # 2. collect what the controller reads (a sample that arrived while the
                # controller prepared is taken whatever its deadline)
                if after is not None and not resting:
                    after()
                warming = warm_what() if warm_what is not None and not resting else None
                if warming is not None:
                    assert background is not None
                    background.begin(warming)
                self.collect_first.collect(obs, k, trig_ns)
                if warming is not None:
                    assert background is not None
                    background.end()
                s2 = sw()
                phases.collect = s2 - s1

                # 3. decide (the supervisor measures first: a stop the controller requests
                # holds the pose of this cycle)
                sup.begin(k, obs.hand)
                if resting:  # the supervisor applies its hold target; nobody decides
                    desired[:] = sup.hold_target
                    if done >= warmup:
                        res.rested += 1
                    s3 = sw()
                    step.decide_ns = s3 - s2
                    kind = FallbackKind.NONE
                else:
                    ok = controller.decide(obs, desired)
                    s3 = sw()
                    step.decide_ns = s3 - s2
                    # Non-finite values are the conditioning pipeline's to reject (and count).
                    if ok and (
                        not judged
                        or step.decide_ns <= budget
                        or getattr(controller, "planned", False)
                    ):
                        kind = FallbackKind.NONE
                    else:
                        kind = fallback.choose(desired)
                step.fallback = kind
                phases.decide = s3 - s2

                # 4. condition: the supervisor's watchdogs, then the target of its state
                flags = sup.cycle(
                    readings,
                    desired,
                    kind is FallbackKind.NONE,
                    kind is not FallbackKind.NONE and fallback.exhausted,
                    slipped,
                    target,
                )
                slipped = False
                step.safety = int(sup.state)
                step.interventions = flags
                if flags:
                    res.clipped += 1
                s4 = sw()
                phases.condition = s4 - s3

                # 5. apply
                if apply_phase is not None:
                    at = t_k + apply_phase
                    if clock.now_ns() > at:
                        res.apply_late += 1
                    else:
                        clock.sleep_until(at)
                applied = hand.apply(target, k)
                apply_ns = clock.now_ns()
                self.applied[:] = applied
                fallback.record_applied(applied, kind)
                step.apply_ns = apply_ns
                step.trigger_to_apply_ns = apply_ns - trig_ns
                step.lateness_ns = trig_ns - t_k
                s5 = sw()
                phases.apply = s5 - s4

                # 6. collect the rest, publish
                self.collect_rest.collect(obs, k, trig_ns)
                for pub in self.publishers:
                    pub.publish(step)
                if self.on_cycle is not None:
                    self.on_cycle(step)
                phases.publish = sw() - s5

                done += 1
                self._done = done
                if done > warmup:
                    self.log.record(step)
                    res.cycles += 1
                elif done == warmup:
                    self._end_warmup()
                if status is not None:
                    now = clock.now_ns()
                    if status.due(now):
                        status.show(
                            now,
                            self.log,
                            res.missed,
                            fallback.total,
                            sum(r.stale_cycles for r in obs.sources.values()),
                            sup.status_label(),
                        )
                if target_cycles is not None and res.cycles >= target_cycles:
                    self._stop_reason = "duration"
                    break

                # Overrun: the slots this cycle ran into are missed, never caught up.
                end = clock.now_ns()
                if end >= t_k + period:
                    nxt = grid.index_at(end) + 1
                    if done > warmup:
                        res.overruns += 1
                        res.missed += nxt - (k + 1)
                    k = nxt
                    slipped = True
                else:
                    k += 1
        except DriverError as exc:
            device = exc.device
            res.lost_device = device
            self._stop_reason = f"device lost: {device}"
            self.supervisor.device_lost(device)
            self._go_safe()
            raise DeviceLost(device, str(exc)) from exc
        finally:
            if background is not None:
                background.close()
            self._finish(wall_start, grid, k)
        return res

    def _end_warmup(self) -> None:
        # Warm-up counted nothing; reset the counters that ran during it, freeze the heap.
        self.fallback.repeats = 0
        self.fallback.idles = 0
        self.result.clipped = 0
        self._counts0 = dict(self.supervisor.conditioner.counts)
        self.result.apply_late = 0
        for r in self.obs.sources.values():
            r.stale_cycles = 0
            r.late_cycles = 0
            r.max_age_ns = 0
        if self.rt_report is not None and self.rt_report.requested:
            freeze_heap(self.rt_report)

    def _go_safe(self) -> None:
        """Best effort: send the supervisor's hold target (where the hand was measured). The
        hand's firmware watchdog holds it there anyway once commands stop."""
        with contextlib.suppress(DriverError):
            self.hand.apply(self.supervisor.hold_target, -1)

    def _finish(self, wall_start: float, grid: DeadlineGrid, k: int) -> None:
        res = self.result
        res.stop_reason = self._stop_reason or "stopped"
        res.warmup_cycles = min(self.config.warmup_cycles, self._done)
        res.fallbacks_repeat = self.fallback.repeats
        res.fallbacks_idle = self.fallback.idles
        counts = self.supervisor.conditioner.counts
        res.interventions = {
            name: counts[name] - self._counts0.get(name, 0) for name in STAGE_NAMES
        }
        res.safety_state = self.supervisor.state.label
        res.safety_reason = self.supervisor.reason.value
        res.wall_s = time.monotonic() - wall_start
        res.grid_s = max(0.0, (self.clock.now_ns() - grid.t(self.first_cycle)) / 1e9)
        for name, r in self.obs.sources.items():
            res.stale[name] = r.stale_cycles
            res.late[name] = r.late_cycles
            res.max_age_us[name] = r.max_age_ns / 1e3
        self.state = "STOPPED"
        if self.rt_report is not None and self.rt_report.gc_frozen:
            release_heap()
        if self.status is not None:
            self.status.close()
