"""From a cycle's Observation to the policy's input vector, and from its output to targets.

Everything is preallocated at load; a cycle writes into existing buffers."""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from raas.core.observation import Observation
from raas.policy.cell import CellSpec
from raas.policy.manifest import ActionSpec, ObservationSpec


def _clip_ufunc() -> Any:
    """The ufunc np.clip ends in, without np.clip's three Python layers around it."""
    for name in ("numpy._core.umath", "numpy.core.umath"):
        try:
            return importlib.import_module(name).clip
        except (ImportError, AttributeError):  # pragma: no cover - another numpy layout
            continue
    return np.clip  # pragma: no cover


_clip: Any = _clip_ufunc()


def _relative_goal(goal: list[float], current: list[float], out: np.ndarray) -> None:
    """pose.relative_rotation(goal[3:7], current, out) in Python floats: the same products,
    the norm as a sum of squares (np.linalg.norm's BLAS dot may round its last bit apart)."""
    aw, ax, ay, az = goal[3:7]
    bw, bx, by, bz = current
    bx, by, bz = -bx, -by, -bz
    w = aw * bw - ax * bx - ay * by - az * bz
    x = aw * bx + ax * bw + ay * bz - az * by
    y = aw * by - ax * bz + ay * bw + az * bx
    z = aw * bz + ax * by - ay * bx + az * bw
    n = math.sqrt(w * w + x * x + y * y + z * z)
    if n > 0:
        w, x, y, z = w / n, x / n, y / n, z / n
    if w < 0:
        w, x, y, z = -w, -x, -y, -z
    out[0], out[1], out[2], out[3] = w, x, y, z


class ObjectPose:
    """The block's pose for this cycle (written by the runner from mocap or vision)."""

    def __init__(self) -> None:
        self.position = np.zeros(3)
        self.orientation = np.array([1.0, 0.0, 0.0, 0.0])
        self.valid = False


#: How the assembler writes each key (a field's plan step): an int per source kind, checked in
#: order of how often bundles read them.
_TIPS, _OBJ_POS, _OBJ_ORI, _REL_GOAL, _GOAL_POS, _GOAL_ORI, _JOINT_POS, _JOINT_VEL, _PREV = range(9)
_KIND = {
    "fingertip_positions": _TIPS,
    "object_position": _OBJ_POS,
    "object_orientation": _OBJ_ORI,
    "relative_goal_orientation": _REL_GOAL,
    "goal_position": _GOAL_POS,
    "goal_orientation": _GOAL_ORI,
    "joint_positions": _JOINT_POS,
    "joint_velocities": _JOINT_VEL,
    "previous_action": _PREV,
}


class ObservationAssembler:
    """Writes the manifest's fields, normalised and clipped, into a float32 vector.

    The plan is fixed at load: per field, its kind, its key and a view of its slice of the raw
    vector, so a cycle does no lookups by name and allocates nothing; the normalisation is four
    ufuncs, the last one writing the model's input (float32) directly."""

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
        self.plan = [
            (_KIND[k], k, self.raw[s]) for k, s in zip(self.keys, self.slices, strict=True)
        ]
        self.fingertip_rows = cell.rows(cell.fingertip_markers)
        self._out: np.ndarray | None = None  # the last `out` and its flat view
        self._out_flat = self.raw

    @property
    def fingertip_rows(self) -> np.ndarray:
        return self._tip_rows

    @fingertip_rows.setter
    def fingertip_rows(self, rows: np.ndarray) -> None:
        """The fingertip markers' rows in the motion-capture frame (bind_markers sets them)."""
        self._tip_rows = np.asarray(rows, dtype=np.intp)
        # (x, y, z) of each row, as flat indices into a C-ordered (M, 3) frame
        self._tip_flat = (self._tip_rows[:, None] * 3 + np.arange(3)).reshape(-1)

    def fill(
        self,
        obs: Observation,
        pose: ObjectPose,
        previous_action: np.ndarray,
        out: np.ndarray,
    ) -> str | None:
        """Fill `out` (any shape, flat size = spec.size). Returns None, or the name of the
        key that could not be computed this cycle (its source has never delivered)."""
        for kind, key, dst in self.plan:
            if kind == _TIPS:
                m = obs.mocap
                if m is None:
                    return key
                p = m.positions
                if p.dtype == np.float64 and p.flags.c_contiguous and p.shape[1:] == (3,):
                    np.take(p, self._tip_flat, out=dst)
                else:
                    dst[:] = p[self._tip_rows].reshape(-1)
            elif kind == _OBJ_POS:
                if not pose.valid:
                    return key
                np.copyto(dst, pose.position)
            elif kind == _REL_GOAL:
                if not pose.valid:
                    return key
                _relative_goal(obs.goal.tolist(), pose.orientation.tolist(), dst)
            elif kind == _OBJ_ORI:
                if not pose.valid:
                    return key
                np.copyto(dst, pose.orientation)
            elif kind == _GOAL_POS:
                dst[:] = obs.goal[:3]
            elif kind == _GOAL_ORI:
                dst[:] = obs.goal[3:7]
            elif kind == _PREV:
                dst[:] = previous_action
            else:
                h = obs.hand
                if h is None:
                    return key
                dst[:] = h.positions if kind == _JOINT_POS else h.velocities
        raw = self.raw
        np.subtract(raw, self.mean, out=raw)
        np.multiply(raw, self.inv_std, out=raw)
        if out is not self._out:
            self._out = out
            flat = out.reshape(-1)
            self._out_flat = flat if np.shares_memory(flat, out) else raw
        if self._out_flat is raw:  # an `out` that cannot be written through a flat view
            _clip(raw, self.lo, self.hi, out=raw)
            out.reshape(-1)[:] = raw
        else:  # the clip writes the model's input
            _clip(raw, self.lo, self.hi, out=self._out_flat)
        return None


class ActionDecoder:
    """ONNX output -> 20 position targets (rad), in the hand's actuator order.

    decode() runs every cycle: its constants (the step per bin, the smoothing's weights), the
    views it reads and writes and the argmax's indices are fixed at load, and a policy that
    drives every actuator in the hand's order works on `target` itself, not on a gathered copy."""

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
        self._discrete = spec.kind == "discrete"
        self._absolute = spec.mode == "absolute"
        self._step = self.half * spec.relative_step  # relative mode: the step of a = 1
        self._keep = 1.0 - self.smoothing
        self._argmax = np.zeros(n, dtype=np.intp)
        self._prev = np.zeros(n)  # the previous targets of the policy's actuators
        self._smooth = np.zeros(n)
        # every actuator, in the hand's order: read and write `target` in place
        self._in_order = n == len(self.target) and bool((self.index == np.arange(n)).all())
        self._output: np.ndarray | None = None  # the last output and its decoding view
        self._view: np.ndarray = self.a

    def reset(self) -> None:
        self.target[:] = self.idle

    def decode(self, output: np.ndarray) -> None:
        """Update `self.target` from the model output (assumed finite)."""
        view = self._view
        if output is not self._output:
            view = (
                output.reshape(len(self.index), self.bins) if self._discrete else output.reshape(-1)
            )
            if np.shares_memory(view, output):  # a view stays valid for later outputs
                self._output, self._view = output, view
        a, new = self.a, self.new
        if self._discrete:
            view.argmax(axis=1, out=self._argmax)
            np.take(self.bin_values, self._argmax, out=a)
        else:
            _clip(view, -1.0, 1.0, out=a)
        if self._in_order:
            prev = self.target
        else:
            prev = self._prev
            np.take(self.target, self.index, out=prev)
        if self._absolute:
            np.multiply(a, self.half, out=new)
            np.add(new, self.mid, out=new)
        else:
            np.multiply(a, self._step, out=new)
            np.add(new, prev, out=new)
        _clip(new, self.lo, self.hi, out=new)
        if self.smoothing > 0:
            np.multiply(new, self._keep, out=new)
            np.multiply(prev, self.smoothing, out=self._smooth)
            np.add(new, self._smooth, out=new)
        if self._in_order:
            np.copyto(self.target, new)
        else:
            self.target[self.index] = new
