"""From a cycle's Observation to the policy's input vector, and from its output to targets.

Everything is preallocated at load; a cycle writes into existing buffers."""

from __future__ import annotations

import numpy as np

from raas.core.observation import Observation
from raas.policy.cell import CellSpec
from raas.policy.manifest import ActionSpec, ObservationSpec
from raas.policy.pose import relative_rotation


class ObjectPose:
    """The block's pose for this cycle (written by the runner from mocap or vision)."""

    def __init__(self) -> None:
        self.position = np.zeros(3)
        self.orientation = np.array([1.0, 0.0, 0.0, 0.0])
        self.valid = False


class ObservationAssembler:
    """Writes the manifest's fields, normalised and clipped, into a float32 vector."""

    def __init__(self, spec: ObservationSpec, cell: CellSpec) -> None:
        self.spec = spec
        self.keys = [f.key for f in spec.fields]
        self.raw = np.zeros(spec.size)
        n = spec.size
        self.mean = np.zeros(n)
        self.inv_std = np.ones(n)
        self.lo = np.full(n, -np.inf)
        self.hi = np.full(n, np.inf)
        self.slices: list[slice] = []
        i = 0
        for f in spec.fields:
            s = slice(i, i + f.size)
            self.slices.append(s)
            self.mean[s] = f.mean
            self.inv_std[s] = 1.0 / np.asarray(f.std, dtype=np.float64)
            if f.clip is not None:
                self.lo[s], self.hi[s] = -f.clip, f.clip
            i += f.size
        self.fingertip_rows = cell.rows(cell.fingertip_markers)
        self._rel = np.zeros(4)

    def fill(
        self,
        obs: Observation,
        pose: ObjectPose,
        previous_action: np.ndarray,
        out: np.ndarray,
    ) -> str | None:
        """Fill `out` (any shape, flat size = spec.size). Returns None, or the name of the
        key that could not be computed this cycle (its source has never delivered)."""
        raw = self.raw
        for key, s in zip(self.keys, self.slices, strict=True):
            if key == "fingertip_positions":
                m = obs.mocap
                if m is None:
                    return key
                raw[s] = m.positions[self.fingertip_rows].reshape(-1)
            elif key == "object_position":
                if not pose.valid:
                    return key
                raw[s] = pose.position
            elif key == "object_orientation":
                if not pose.valid:
                    return key
                raw[s] = pose.orientation
            elif key == "goal_position":
                raw[s] = obs.goal[:3]
            elif key == "goal_orientation":
                raw[s] = obs.goal[3:7]
            elif key == "relative_goal_orientation":
                if not pose.valid:
                    return key
                raw[s] = relative_rotation(obs.goal[3:7], pose.orientation, self._rel)
            elif key in ("joint_positions", "joint_velocities"):
                h = obs.hand
                if h is None:
                    return key
                raw[s] = h.positions if key == "joint_positions" else h.velocities
            elif key == "previous_action":
                raw[s] = previous_action
        raw -= self.mean
        raw *= self.inv_std
        np.clip(raw, self.lo, self.hi, out=raw)
        out.reshape(-1)[:] = raw
        return None


class ActionDecoder:
    """ONNX output -> 20 position targets (rad), in the hand's actuator order."""

    def __init__(self, spec: ActionSpec, cell: CellSpec) -> None:
        self.spec = spec
        n = len(spec.actuators)
        self.index = np.array([cell.actuator_names.index(a) for a in spec.actuators])
        limits = cell.actuator_limits[self.index]
        self.mid = limits.mean(axis=1)
        self.half = (limits[:, 1] - limits[:, 0]) / 2.0
        self.lo, self.hi = limits[:, 0].copy(), limits[:, 1].copy()
        self.bins = spec.bins or 0
        self.bin_values = (
            np.linspace(-1.0, 1.0, self.bins) if spec.kind == "discrete" else np.zeros(0)
        )
        self.a = np.zeros(n)
        self.new = np.zeros(n)
        self.idle = cell.idle_action.copy()
        self.target = self.idle.copy()  # full 20-vector: actuators the policy omits stay idle
        self.smoothing = spec.smoothing

    def reset(self) -> None:
        self.target[:] = self.idle

    def decode(self, output: np.ndarray) -> None:
        """Update `self.target` from the model output (assumed finite)."""
        spec = self.spec
        if spec.kind == "discrete":
            logits = output.reshape(len(self.index), self.bins)
            np.take(self.bin_values, logits.argmax(axis=1), out=self.a)
        else:
            np.clip(output.reshape(-1), -1.0, 1.0, out=self.a)
        prev = self.target[self.index]
        if spec.mode == "absolute":
            np.multiply(self.a, self.half, out=self.new)
            self.new += self.mid
        else:
            np.multiply(self.a, self.half * spec.relative_step, out=self.new)
            self.new += prev
        np.clip(self.new, self.lo, self.hi, out=self.new)
        if self.smoothing > 0:
            self.new *= 1.0 - self.smoothing
            self.new += self.smoothing * prev
        self.target[self.index] = self.new
