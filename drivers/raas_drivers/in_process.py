"""A device that lives in the loop's own process (no link to read): its readiness is an eventfd.

The driver signals when a sample is ready (`_ready()`), and the loop's poll(2) wakes on
`fileno()`; `_drain()` clears the signal when the sample is taken. Used by the mirror hand and
the host trigger."""

from __future__ import annotations

import contextlib
import os

from raas_drivers.errors import LifecycleTransitionError
from raas_drivers.lifecycle import Device


class InProcessDevice(Device):
    """Mix in before the device's contract: configure opens the eventfd, shutdown closes it."""

    _fd: int = -1

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

    def _ready(self) -> None:
        os.eventfd_write(self._fd, 1)

    def _drain(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self._fd)
