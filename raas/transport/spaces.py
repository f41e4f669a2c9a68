"""What a client sees of a cycle: the observation arrays (named, fixed shapes, announced in the
hello reply) and the action space. One place turns an Observation into those arrays.

The arrays live in ONE preallocated block (protocol 2): the observation's arrays first (layout
`obs`, what a remote stepper receives), then `desired` and `applied` (layout `stream`, a stream
step): filling the arrays fills the block, which goes on the wire as one frame, every cycle,
without an allocation. The layouts are announced in hello's `spaces.layouts`."""

from __future__ import annotations

from typing import Any

import numpy as np
from raas_client.wire import Layout
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
        obs: list[tuple[str, str, tuple[int, ...]]] = [
            ("hand_pos", "f8", (nj,)),
            ("hand_vel", "f8", (nj,)),
            ("hand_effort", "f8", (na,)),
            ("mocap", "f8", (nm, 3)),
            ("mocap_visible", "b1", (nm,)),
            ("goal", "f8", (7,)),
        ]
        loop: list[tuple[str, str, tuple[int, ...]]] = [
            ("desired", "f8", (na,)),
            ("applied", "f8", (na,)),
        ]
        #: The block layouts of protocol 2: `obs` is a prefix of `stream` (same offsets).
        self.layouts: dict[str, Layout] = {
            "obs": Layout.of("obs", obs),
            "stream": Layout.of("stream", obs + loop),
            "step": Layout.of("step", [("action", "f8", (na,))]),
        }
        self.block, views = self.layouts["stream"].allocate()
        #: The observation block (a view: sent as one frame to the remote stepper).
        self.obs_block = self.block[: self.layouts["obs"].size]
        self.arrays: dict[str, np.ndarray] = {name: views[name] for name, _, _ in obs}
        #: The stream step's two more arrays, filled by the StreamPublisher.
        self.desired = views["desired"]
        self.applied = views["applied"]
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
            "layouts": {name: layout.spec() for name, layout in self.layouts.items()},
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
