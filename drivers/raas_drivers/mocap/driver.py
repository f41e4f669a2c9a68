"""The motion-capture contract."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from raas_drivers.lifecycle import Device
from raas_drivers.source import Sample


@dataclass(slots=True)
class MocapFrame(Sample):
    """One motion-capture frame.

    positions: (M, 3) marker positions in m, world frame; an occluded marker keeps its last
               position (frozen, as PhaseSpace reports it) and has visible False.
    visible:   (M,) bool
    """

    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    visible: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


class MocapDriver(Device, abc.ABC):
    """A Source of MocapFrame; `marker_names` fixes the row order of `positions`."""

    @property
    def source_name(self) -> str:
        return self.name

    @property
    @abc.abstractmethod
    def marker_names(self) -> tuple[str, ...]: ...

    @abc.abstractmethod
    def poll(self, cycle: int) -> MocapFrame | None: ...

    @abc.abstractmethod
    def fileno(self) -> int: ...
