"""Names, limits and defaults of a Shadow-type hand (as in gymnasium-robotics' manipulate_block)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

#: The 20 actuators, in the order every action vector uses.
ACTUATOR_NAMES: tuple[str, ...] = (
    "A_WRJ1", "A_WRJ0",
    "A_FFJ3", "A_FFJ2", "A_FFJ1",
    "A_MFJ3", "A_MFJ2", "A_MFJ1",
    "A_RFJ3", "A_RFJ2", "A_RFJ1",
    "A_LFJ4", "A_LFJ3", "A_LFJ2", "A_LFJ1",
    "A_THJ4", "A_THJ3", "A_THJ2", "A_THJ1", "A_THJ0",
)  # fmt: skip

#: The 24 joints, in the order every joint-state vector uses.
JOINT_NAMES: tuple[str, ...] = (
    "WRJ1", "WRJ0",
    "FFJ3", "FFJ2", "FFJ1", "FFJ0",
    "MFJ3", "MFJ2", "MFJ1", "MFJ0",
    "RFJ3", "RFJ2", "RFJ1", "RFJ0",
    "LFJ4", "LFJ3", "LFJ2", "LFJ1", "LFJ0",
    "THJ4", "THJ3", "THJ2", "THJ1", "THJ0",
)  # fmt: skip

#: Actuator position ranges in rad (the MuJoCo model's ctrlrange), same order as ACTUATOR_NAMES.
ACTUATOR_LIMITS = np.array(
    [
        [-0.489, 0.14], [-0.698, 0.489],
        [-0.349, 0.349], [0.0, 1.571], [0.0, 1.571],
        [-0.349, 0.349], [0.0, 1.571], [0.0, 1.571],
        [-0.349, 0.349], [0.0, 1.571], [0.0, 1.571],
        [0.0, 0.785], [-0.349, 0.349], [0.0, 1.571], [0.0, 1.571],
        [-1.047, 1.047], [0.0, 1.222], [-0.209, 0.209], [-0.524, 0.524], [-1.571, 0.0],
    ],
    dtype=np.float64,
)  # fmt: skip

#: Each actuator drives one joint (the MuJoCo model's position actuators): the joint index of
#: each actuator, so `positions[ACTUATOR_JOINT_INDEX]` is the measured actuator position.
ACTUATOR_JOINT_INDEX: tuple[int, ...] = tuple(JOINT_NAMES.index(a[2:]) for a in ACTUATOR_NAMES)

#: Largest force each actuator can exert (the model's forcerange), same order as ACTUATOR_NAMES.
EFFORT_LIMITS = np.array(
    [
        4.785, 2.175,
        0.9, 0.9, 0.7245,
        0.9, 0.9, 0.7245,
        0.9, 0.9, 0.7245,
        0.9, 0.9, 0.9, 0.7245,
        2.3722, 1.45, 0.99, 0.99, 0.81,
    ],
    dtype=np.float64,
)  # fmt: skip


def default_idle_action() -> np.ndarray:
    """The declared idle action: every actuator at the middle of its range, clipped to it.

    Fingers half-way is the pose the hand holds when nobody commands it; a later safety layer may
    replace it by "hold the measured position"."""
    mid: np.ndarray = ACTUATOR_LIMITS.mean(axis=1)
    clipped: np.ndarray = np.clip(mid, ACTUATOR_LIMITS[:, 0], ACTUATOR_LIMITS[:, 1])
    return clipped


class HandConfig(BaseModel):
    """How the hand is driven. Unknown fields are refused so a typo names itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_deadline_ms: float = Field(
        default=2.0, gt=0, description="per-source deadline after the trigger for the hand state"
    )
    required: bool = Field(default=True, description="a stale hand state counts against the cycle")
