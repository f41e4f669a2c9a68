"""The camera contract. One driver owns the cell's cameras; each camera is its own Source."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from raas_drivers.lifecycle import Device
from raas_drivers.source import Sample, Source

#: The cell's cameras, as on the Dactyl rig: about 50 cm from the hand.
CAMERA_NAMES: tuple[str, ...] = ("left", "right", "top")


@dataclass(slots=True)
class CameraFrame(Sample):
    """One frame: `image` is (H, W, 3) uint8 RGB. It may be a view of a shared buffer that the
    next frame overwrites: copy it to keep it.

    triggered: True when the trigger of `cycle` started the exposure (the trigger board's line, a
               software trigger, the simulated renderer); False for a free-running camera (a UVC
               webcam) whose frame is only the newest one that arrived in the cycle's window,
               stamped on arrival
    frame_id:  the camera's own frame counter (Basler block id), -1 when it has none
    device_ns: the camera's own timestamp in ns of its clock (None when it has none);
               `capture_ns` is that stamp mapped to the host clock, or the host arrival time.
               Declared as h/clock declares Sample.device_ns (keyword-only, default None): once
               Sample has it, this line is redundant
    """

    camera: str = ""
    image: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), dtype=np.uint8))
    triggered: bool = True
    frame_id: int = -1
    device_ns: int | None = field(default=None, kw_only=True)


class CameraDriver(Device, abc.ABC):
    """Frames are taken on the trigger board's pulse; `sources()` gives one Source per camera."""

    @property
    @abc.abstractmethod
    def camera_names(self) -> tuple[str, ...]: ...

    @property
    @abc.abstractmethod
    def resolution(self) -> tuple[int, int]:
        """(width, height) in pixels."""

    @abc.abstractmethod
    def sources(self) -> Sequence[Source]: ...
