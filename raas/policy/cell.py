"""What the cell offers a policy: the hand (model, actuators and their limits, joints), mocap
marker layout, cameras, control period. Bundles are validated against it at load.

The hand comes from the hand's driver (`CellSpec.of(HandShape, ...)`); the default is the
Shadow-type hand of the simulated cell."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from raas_drivers.cameras import CAMERA_NAMES
from raas_drivers.hand.config import ACTUATOR_LIMITS, ACTUATOR_NAMES, JOINT_NAMES
from raas_drivers.hand.shape import SHADOW_MODEL, HandShape

from raas.config import CellConfig
from raas.errors import ConfigError

#: Motion-capture rows of the simulated cell (raas_drivers.sim.world.MARKER_NAMES): 5 fingertip
#: markers, then the block's 8 corner LEDs.
FINGERTIP_MARKERS: tuple[str, ...] = ("fftip", "mftip", "rftip", "lftip", "thtip")
#: Block LED positions in the block frame (m): its 8 corners, 1 mm inside the 25 mm half-size
#: (the same as raas_drivers.sim.world.BLOCK_MARKER_OFFSETS; a test keeps them equal).
BLOCK_MARKER_OFFSETS: tuple[tuple[float, float, float], ...] = tuple(
    (sx * 0.024, sy * 0.024, sz * 0.024) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)
)


def _block_names() -> tuple[str, ...]:
    return tuple(f"block:m{i}" for i in range(len(BLOCK_MARKER_OFFSETS)))


@dataclass(frozen=True, slots=True)
class CellSpec:
    actuator_names: tuple[str, ...] = ACTUATOR_NAMES
    actuator_limits: np.ndarray = field(default_factory=ACTUATOR_LIMITS.copy)
    joint_names: tuple[str, ...] = JOINT_NAMES
    marker_names: tuple[str, ...] = FINGERTIP_MARKERS + _block_names()
    fingertip_markers: tuple[str, ...] = FINGERTIP_MARKERS
    block_markers: tuple[str, ...] = _block_names()
    block_marker_offsets: np.ndarray = field(
        default_factory=lambda: np.array(BLOCK_MARKER_OFFSETS, dtype=np.float64)
    )
    cameras: tuple[str, ...] = CAMERA_NAMES
    camera_width: int = 200
    camera_height: int = 200
    #: what the hand is, as a manifest's `hand.model` names it
    hand_model: str = SHADOW_MODEL

    @property
    def idle_action(self) -> np.ndarray:
        mid: np.ndarray = self.actuator_limits.mean(axis=1)
        return mid

    def rows(self, names: tuple[str, ...]) -> np.ndarray:
        return np.array([self.marker_names.index(n) for n in names], dtype=np.intp)

    @classmethod
    def from_config(cls, cfg: CellConfig, hand: HandShape | None = None) -> CellSpec:
        """The cell a cell file describes: `hand` (raas.daemon.hand_shape; default the Shadow
        hand), the cell file's cameras (at the simulated rig's resolution: the only one known
        before the cameras are up)."""
        rig = cfg.rig
        cameras = tuple(cfg.cameras) if cfg.hand is not None else CAMERA_NAMES[: rig.cameras]
        shape = hand if hand is not None else HandShape.shadow()
        return cls(
            actuator_names=shape.actuator_names,
            actuator_limits=np.array(shape.limits, dtype=np.float64),
            joint_names=shape.joint_names,
            cameras=cameras,
            camera_width=rig.camera_width,
            camera_height=rig.camera_height,
            hand_model=shape.model,
        )


def marker_rows(available: Sequence[str], wanted: Sequence[str], who: str) -> np.ndarray:
    """The rows of `wanted` in the cell's motion-capture frame, found by name (a cell file's
    [mocap.markers] may list its rows in any order). Raises ConfigError naming mocap.markers and
    the rows that are not there."""
    have = list(available)
    missing = [n for n in wanted if n not in have]
    if missing:
        rows = ", ".join(have) if have else "none (the cell has no [mocap])"
        raise ConfigError(
            "mocap.markers",
            f"{who} needs the motion-capture rows {', '.join(wanted)}; missing "
            f"{', '.join(missing)}. This cell's rows: {rows} (docs/hardware.md)",
        )
    return np.array([have.index(n) for n in wanted], dtype=np.intp)
