"""Built-in controllers. Until the ONNX runtime lands, a scripted finger gait drives the hand."""

from __future__ import annotations

import numpy as np

from raas.controllers.scripted import FingerGait, HoldIdle
from raas.core.controller import Controller
from raas.errors import UnknownControllerError

CONTROLLERS = ("gait", "idle")


def make_controller(
    name: str,
    period_s: float,
    *,
    limits: np.ndarray | None = None,
    actuator_names: tuple[str, ...] | None = None,
    idle: np.ndarray | None = None,
) -> Controller:
    """A built-in controller for a hand with these limits, actuator names and idle pose
    (default: the Shadow hand's)."""
    if name == "gait":
        if limits is None or actuator_names is None:
            return FingerGait(period_s)
        return FingerGait(period_s, limits=limits, actuator_names=actuator_names)
    if name == "idle":
        return HoldIdle(idle)
    raise UnknownControllerError(
        "controller", f"unknown controller {name!r}; choose one of {', '.join(CONTROLLERS)}"
    )


__all__ = ["CONTROLLERS", "FingerGait", "HoldIdle", "make_controller"]
