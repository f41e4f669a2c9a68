"""The hands a bundle can be checked against without a robot, by model name.

`cell_for_hand(model)` is the one place that turns a hand model name (what a manifest's hand and
`raasd policy check --hand` name) into the CellSpec a bundle is validated against: its actuator
names and ranges, joints, and the cell's markers and cameras. Today it knows the built-in
Shadow Dexterous Hand; another hand shape is added here."""

from __future__ import annotations

from raas_drivers.cameras import CAMERA_NAMES
from raas_drivers.hand.driver import HandDriver

from raas.policy.cell import CellSpec
from raas.policy.errors import CellMismatchError

#: The built-in hand: the Shadow Dexterous Hand of the simulated cell (HandDriver's defaults).
DEFAULT_HAND = HandDriver.model


def known_hands() -> tuple[str, ...]:
    return (DEFAULT_HAND,)


def cell_for_hand(
    model: str = DEFAULT_HAND,
    *,
    cameras: int = len(CAMERA_NAMES),
    camera_width: int = 200,
    camera_height: int = 200,
) -> CellSpec:
    """The cell a bundle is checked against: the hand `model` with the given cameras."""
    if model not in known_hands():
        raise CellMismatchError(
            "hand", f"unknown hand model {model!r}; known: {', '.join(known_hands())}"
        )
    return CellSpec(
        cameras=CAMERA_NAMES[:cameras], camera_width=camera_width, camera_height=camera_height
    )
