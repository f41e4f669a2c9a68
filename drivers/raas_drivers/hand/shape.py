"""A hand's shape: what it is and which actuators and joints it has, without the driver.

The composition reads it from a hand registration (`DriverSpec.hand_shape`) before the cell comes
up, e.g. to check a policy bundle against the hand, and from a built driver (`HandShape.of`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raas_drivers.hand.config import (
    ACTUATOR_JOINT_INDEX,
    ACTUATOR_LIMITS,
    ACTUATOR_NAMES,
    EFFORT_LIMITS,
    JOINT_NAMES,
)
from raas_drivers.hand.driver import HandDriver

SHADOW_MODEL = "shadow-dexterous"


@dataclass(frozen=True, slots=True)
class HandShape:
    """model: as policy bundles name it (`hand.model`); limits (n, 2) rad; effort_limits (n,);
    actuator_joint_index: the joint each actuator drives."""

    model: str
    actuator_names: tuple[str, ...]
    joint_names: tuple[str, ...]
    limits: np.ndarray
    effort_limits: np.ndarray
    actuator_joint_index: tuple[int, ...]

    @property
    def n_actuators(self) -> int:
        return len(self.actuator_names)

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def idle_action(self) -> np.ndarray:
        """Every actuator at the middle of its range (the default idle pose)."""
        mid: np.ndarray = self.limits.mean(axis=1)
        return mid

    @classmethod
    def of(cls, hand: HandDriver) -> HandShape:
        return cls(
            model=hand.model,
            actuator_names=tuple(hand.actuator_names),
            joint_names=tuple(hand.joint_names),
            limits=np.array(hand.limits, dtype=np.float64),
            effort_limits=np.array(hand.effort_limits, dtype=np.float64),
            actuator_joint_index=tuple(int(i) for i in hand.actuator_joint_index),
        )

    @classmethod
    def shadow(cls) -> HandShape:
        """The 20-actuator, 24-joint Shadow-type hand (the simulated rig's and the serial
        firmware bridge's)."""
        return cls(
            model=SHADOW_MODEL,
            actuator_names=ACTUATOR_NAMES,
            joint_names=JOINT_NAMES,
            limits=ACTUATOR_LIMITS.copy(),
            effort_limits=EFFORT_LIMITS.copy(),
            actuator_joint_index=ACTUATOR_JOINT_INDEX,
        )
