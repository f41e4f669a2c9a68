"""Built-in controllers. Until the ONNX runtime lands, a scripted finger gait drives the hand."""

from __future__ import annotations

from raas.controllers.scripted import FingerGait, HoldIdle
from raas.core.controller import Controller
from raas.errors import UnknownControllerError

CONTROLLERS = ("gait", "idle")


def make_controller(name: str, period_s: float) -> Controller:
    if name == "gait":
        return FingerGait(period_s)
    if name == "idle":
        return HoldIdle()
    raise UnknownControllerError(
        "controller", f"unknown controller {name!r}; choose one of {', '.join(CONTROLLERS)}"
    )


__all__ = ["CONTROLLERS", "FingerGait", "HoldIdle", "make_controller"]
