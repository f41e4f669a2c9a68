"""The trigger of a cell without a trigger board: it pulses nothing and records the host time.

fire(k) stamps CLOCK_MONOTONIC; poll(k) returns that stamp as the TriggerAck of k at once (the
source "trigger" in recordings then says when each cycle started on the host). Cameras and
motion capture of such a cell run free and are stamped on arrival by their own drivers.
"""

from __future__ import annotations

import time

from raas_drivers.in_process import InProcessDevice
from raas_drivers.trigger.driver import TriggerAck, TriggerDriver


class HostTrigger(InProcessDevice, TriggerDriver):
    def __init__(self, name: str = "trigger") -> None:
        super().__init__(name)
        self._cycle = -1
        self._fired_ns = 0

    def fire(self, cycle: int) -> int:
        self.require_active("fire")
        self._cycle, self._fired_ns = cycle, time.monotonic_ns()
        self._ready()
        return self._fired_ns

    def poll(self, cycle: int) -> TriggerAck | None:
        self._drain()
        if cycle != self._cycle:
            return None
        return TriggerAck(cycle=cycle, capture_ns=self._fired_ns)
