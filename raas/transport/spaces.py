"""What a client sees of a cycle: the observation arrays (named, fixed shapes, announced in the
hello reply) and the action space. One place turns an Observation into those arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
from raas_drivers.hand import HandDriver

from raas.core.observation import Observation


class ObservationPacker:
    """Preallocated arrays filled from an Observation every cycle (copies: the loop reuses its
    buffers, and a stale source keeps its last value with its flag set)."""

    def __init__(self, hand: HandDriver, markers: tuple[str, ...]) -> None:
        nj, na, nm = len(hand.joint_names), len(hand.actuator_names), len(markers)
        self.joints = tuple(hand.joint_names)
        self.hand_model = hand.model
        self.markers = markers
        self.arrays: dict[str, np.ndarray] = {
            "hand_pos": np.zeros(nj),
            "hand_vel": np.zeros(nj),
            "hand_effort": np.zeros(na),
            "mocap": np.zeros((nm, 3)),
            "mocap_visible": np.zeros(nm, dtype=np.bool_),
            "goal": np.zeros(7),
        }
        self.action_low = np.array(hand.limits[:, 0], dtype=np.float64)
        self.action_high = np.array(hand.limits[:, 1], dtype=np.float64)
        self.actuators = tuple(hand.actuator_names)
        self.idle = np.array(hand.idle_action, dtype=np.float64)

    def fill(self, obs: Observation) -> dict[str, np.ndarray]:
        a = self.arrays
        h = obs.hand
        if h is not None:
            a["hand_pos"][:] = h.positions
            a["hand_vel"][:] = h.velocities
            a["hand_effort"][:] = h.efforts
        m = obs.mocap
        if m is not None and m.positions.shape == a["mocap"].shape:
            a["mocap"][:] = m.positions
            a["mocap_visible"][:] = m.visible
        a["goal"][:] = obs.goal
        return a

    def spec(self) -> dict[str, Any]:
        """The observation and action spaces as the hello reply announces them."""
        inf = float("inf")
        obs: dict[str, Any] = {}
        for name, arr in self.arrays.items():
            low, high = (0, 1) if arr.dtype == np.bool_ else (-inf, inf)
            obs[name] = {
                "shape": list(arr.shape),
                "dtype": arr.dtype.str[1:],
                "low": low,
                "high": high,
            }
        obs["hand_pos"]["names"] = list(self.joints)
        obs["mocap"]["names"] = list(self.markers)
        return {
            "observation": obs,
            "action": {
                "shape": [len(self.actuators)],
                "dtype": "f8",
                "low": self.action_low.tolist(),
                "high": self.action_high.tolist(),
                "names": list(self.actuators),
                "hand_model": self.hand_model,
                "idle": self.idle.tolist(),
                "meaning": "absolute joint position targets (rad), clipped to the limits",
            },
        }
