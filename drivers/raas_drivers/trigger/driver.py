"""The trigger contract."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from raas_drivers.lifecycle import Device
from raas_drivers.source import Sample


@dataclass(slots=True)
class TriggerAck(Sample):
    """The board's answer to trigger k: capture_ns is the hardware time of the pulse."""


class TriggerDriver(Device, abc.ABC):
    """fire(k) pulses the camera and motion-capture sync lines for cycle k.

    It returns at once with the host time the trigger was sent; the board's own timestamp of the
    pulse comes back as a TriggerAck through poll(), like any other source."""

    @property
    def source_name(self) -> str:
        return self.name

    @abc.abstractmethod
    def fire(self, cycle: int) -> int:
        """Send the trigger for `cycle`; return the host time (ns) it was sent. Non-blocking."""

    @abc.abstractmethod
    def poll(self, cycle: int) -> TriggerAck | None: ...

    @abc.abstractmethod
    def fileno(self) -> int: ...
