"""The trigger of a cell without a trigger board: it pulses nothing and records the host time.

fire(k) stamps CLOCK_MONOTONIC; poll(k) returns that stamp as the TriggerAck of k at once (the
source "trigger" in recordings then says when each cycle started on the host). Cameras and
motion capture of such a cell run free and are stamped on arrival by their own drivers.
"""

from __future__ import annotations

import contextlib
import os
import time

from raas_drivers.errors import LifecycleTransitionError
from raas_drivers.trigger.driver import TriggerAck, TriggerDriver


class HostTrigger(TriggerDriver):
    def __init__(self, name: str = "trigger") -> None:
        super().__init__(name)
        self._fd = -1
        self._cycle = -1
        self._fired_ns = 0

    def _on_configure(self) -> None:
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def _on_shutdown(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def fileno(self) -> int:
        if self._fd < 0:
            raise LifecycleTransitionError(self.name, f"not configured ({self.state.value})")
        return self._fd

    def fire(self, cycle: int) -> int:
        self.require_active("fire")
        self._cycle, self._fired_ns = cycle, time.monotonic_ns()
        os.eventfd_write(self._fd, 1)
        return self._fired_ns

    def poll(self, cycle: int) -> TriggerAck | None:
        if self._fd >= 0:
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self._fd)
        if cycle != self._cycle:
            return None
        return TriggerAck(cycle=cycle, capture_ns=self._fired_ns)
