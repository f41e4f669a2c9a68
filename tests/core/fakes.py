"""In-process fake devices on a FakeClock, for unit tests of the loop alone.

They answer after a configurable latency in fake time; a schedule can withhold samples to make a
source stale, and a hand can be told to die. The real devices are tested in tests/drivers/."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from raas_drivers.errors import DeviceLostError, TargetShapeError
from raas_drivers.hand import HandDriver, HandState
from raas_drivers.hand.config import default_idle_action
from raas_drivers.mocap import MocapDriver, MocapFrame
from raas_drivers.trigger import TriggerAck, TriggerDriver

from raas.core.clock import FakeClock
from raas.core.observation import Observation

_R, _W = os.pipe()  # a real fd the collector can hand to select (never used by FakeClock)


class FakeHand(HandDriver):
    def __init__(self, clock: FakeClock, latency_ns: int = 100_000) -> None:
        super().__init__("hand")
        self.clock = clock
        self.latency_ns = latency_ns
        self.requested: dict[int, int] = {}
        self.applied: list[tuple[int, int, np.ndarray]] = []  # (cycle, time, targets)
        self.dead = False

    @property
    def idle_action(self) -> np.ndarray:
        return default_idle_action()

    def request_state(self, cycle: int) -> None:
        self.requested[cycle] = self.clock.now_ns()

    def poll(self, cycle: int) -> HandState | None:
        if self.dead:
            raise DeviceLostError(self.name, "link closed")
        t = self.requested.get(cycle)
        if t is None or self.clock.now_ns() < t + self.latency_ns:
            return None
        return HandState(cycle=cycle, capture_ns=t)

    def fileno(self) -> int:
        return _R

    def apply(self, targets: np.ndarray, cycle: int) -> np.ndarray:
        if targets.shape != (20,) or not np.isfinite(targets).all():
            raise TargetShapeError(self.name, "bad targets")
        self.applied.append((cycle, self.clock.now_ns(), targets.copy()))
        return targets.copy()


class FakeTrigger(TriggerDriver):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__("trigger")
        self.clock = clock
        self.fired: list[tuple[int, int]] = []

    def fire(self, cycle: int) -> int:
        t = self.clock.now_ns()
        self.fired.append((cycle, t))
        return t

    def poll(self, cycle: int) -> TriggerAck | None:
        return TriggerAck(cycle=cycle, capture_ns=self.clock.now_ns())

    def fileno(self) -> int:
        return _R


class FakeMocap(MocapDriver):
    """Answers `latency_ns` after the trigger unless `drop(cycle)` says the frame is lost."""

    def __init__(
        self, clock: FakeClock, trigger: FakeTrigger, latency_ns: int = 300_000,
        drop: Callable[[int], bool] = lambda k: False,
    ) -> None:  # fmt: skip
        super().__init__("mocap")
        self.clock = clock
        self.trigger = trigger
        self.latency_ns = latency_ns
        self.drop = drop

    @property
    def marker_names(self) -> tuple[str, ...]:
        return ("m0",)

    def poll(self, cycle: int) -> MocapFrame | None:
        if self.drop(cycle):
            return None
        fired = dict(self.trigger.fired)
        t = fired.get(cycle)
        if t is None or self.clock.now_ns() < t + self.latency_ns:
            return None
        return MocapFrame(cycle=cycle, capture_ns=t, positions=np.zeros((1, 3)))

    def fileno(self) -> int:
        return _R


class ScriptedController:
    """Returns `value` each cycle; `behaviour(cycle, clock)` may advance the fake clock (a slow
    decide) or return False (no action) or "nan"."""

    name = "scripted-test"

    def __init__(
        self, clock: FakeClock, behaviour: Callable[[int, FakeClock], object] | None = None,
        needs: frozenset[str] = frozenset({"hand"}),
    ) -> None:  # fmt: skip
        self.clock = clock
        self.behaviour = behaviour
        self.needs = needs
        self.seen: list[Observation] = []
        self.stale_seen: list[dict[str, bool]] = []

    def reset(self) -> None:
        pass

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        self.stale_seen.append({n: r.stale for n, r in obs.sources.items()})
        out[:] = 0.2 + 0.001 * (obs.cycle % 100)
        if self.behaviour is not None:
            r = self.behaviour(obs.cycle, self.clock)
            if r is False:
                return False
            if r == "nan":
                out[3] = np.nan
        return True
