"""Quaternions (w, x, y, z) and the block's pose from its motion-capture markers.

Small, allocation-free where it runs every cycle."""

from __future__ import annotations

import math

import numpy as np


def quat_conj(q: np.ndarray, out: np.ndarray) -> np.ndarray:
    out[0] = q[0]
    out[1:] = -q[1:]
    return out


def quat_mul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = float(a[0]), float(a[1]), float(a[2]), float(a[3])
    bw, bx, by, bz = float(b[0]), float(b[1]), float(b[2]), float(b[3])
    out[0] = aw * bw - ax * bx - ay * by - az * bz
    out[1] = aw * bx + ax * bw + ay * bz - az * by
    out[2] = aw * by - ax * bz + ay * bw + az * bx
    out[3] = aw * bz + ax * by - ay * bx + az * bw
    return out


def canonical(q: np.ndarray) -> np.ndarray:
    """Unit length, w >= 0 (q and -q are the same rotation), in place."""
    n = float(np.linalg.norm(q))
    if n > 0:
        q /= n
    if q[0] < 0:
        q *= -1.0
    return q


def relative_rotation(goal: np.ndarray, current: np.ndarray, out: np.ndarray) -> np.ndarray:
    """goal * conj(current): the rotation that takes `current` to `goal`, canonical."""
    c = np.empty(4)
    quat_conj(current, c)
    quat_mul(goal, c, out)
    return canonical(out)


def rotation_angle(q: np.ndarray) -> float:
    """Angle (rad, in [0, pi]) of the rotation a quaternion stands for."""
    n = float(np.linalg.norm(q))
    w = abs(float(q[0])) / n if n > 0 else 1.0
    return 2.0 * math.acos(min(1.0, w))


def orientation_error(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (rad) of the rotation between two orientations."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    dot = abs(float(a @ b)) / (na * nb) if na > 0 and nb > 0 else 1.0
    return 2.0 * math.acos(min(1.0, dot))


def quat_from_matrix(m: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) -> canonical quaternion (Shepperd's method)."""
    r = m.tolist()
    tr = r[0][0] + r[1][1] + r[2][2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        out[0] = 0.25 * s
        out[1] = (r[2][1] - r[1][2]) / s
        out[2] = (r[0][2] - r[2][0]) / s
        out[3] = (r[1][0] - r[0][1]) / s
    elif r[0][0] > r[1][1] and r[0][0] > r[2][2]:
        s = math.sqrt(1.0 + r[0][0] - r[1][1] - r[2][2]) * 2
        out[0] = (r[2][1] - r[1][2]) / s
        out[1] = 0.25 * s
        out[2] = (r[0][1] + r[1][0]) / s
        out[3] = (r[0][2] + r[2][0]) / s
    elif r[1][1] > r[2][2]:
        s = math.sqrt(1.0 + r[1][1] - r[0][0] - r[2][2]) * 2
        out[0] = (r[0][2] - r[2][0]) / s
        out[1] = (r[0][1] + r[1][0]) / s
        out[2] = 0.25 * s
        out[3] = (r[1][2] + r[2][1]) / s
    else:
        s = math.sqrt(1.0 + r[2][2] - r[0][0] - r[1][1]) * 2
        out[0] = (r[1][0] - r[0][1]) / s
        out[1] = (r[0][2] + r[2][0]) / s
        out[2] = (r[1][2] + r[2][1]) / s
        out[3] = 0.25 * s
    return canonical(out)


def random_quaternion(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random rotation (Shoemake), canonical."""
    u1, u2, u3 = rng.random(3)
    a, b = math.sqrt(1 - u1), math.sqrt(u1)
    q = np.array(
        [
            b * math.cos(2 * math.pi * u3),
            a * math.sin(2 * math.pi * u2),
            a * math.cos(2 * math.pi * u2),
            b * math.sin(2 * math.pi * u3),
        ]
    )
    return canonical(q)


class MarkerPose:
    """The block's pose from its LED markers by least-squares rigid fit (Kabsch).

    Uses the visible markers when at least 3 are visible; otherwise all of them (occluded
    markers report their last position, so the fit is the last pose seen, roughly). The
    all-visible case (the usual one) is precomputed down to one 3x3 product and one SVD."""

    def __init__(self, offsets: np.ndarray) -> None:
        self.offsets = np.asarray(offsets, dtype=np.float64)  # (M, 3) in the block frame
        self.position = np.zeros(3)
        self.orientation = np.array([1.0, 0.0, 0.0, 0.0])
        self._qc = self.offsets.mean(axis=0)
        self._qcT = np.ascontiguousarray((self.offsets - self._qc).T)  # (3, M), rows sum to 0
        self._h = np.zeros((3, 3))
        self._pc = np.zeros(3)
        self._r = np.zeros((3, 3))

    def update(self, positions: np.ndarray, visible: np.ndarray) -> None:
        """`positions` (M, 3) world frame, `visible` (M,) bool, rows as `offsets`."""
        n_visible = int(np.count_nonzero(visible))
        if n_visible == len(visible) or n_visible < 3:
            # centred offsets sum to zero, so Qc^T (P - pc) = Qc^T P
            np.matmul(self._qcT, positions, out=self._h)
            np.mean(positions, axis=0, out=self._pc)
            qc = self._qc
        else:
            p, q = positions[visible], self.offsets[visible]
            qc = q.mean(axis=0)
            self._pc[:] = p.mean(axis=0)
            np.matmul((q - qc).T, p - self._pc, out=self._h)
        u, _, vt = np.linalg.svd(self._h)
        r = self._r
        np.matmul(vt.T, u.T, out=r)
        a = r.ravel().tolist()
        det = (
            a[0] * (a[4] * a[8] - a[5] * a[7])
            - a[1] * (a[3] * a[8] - a[5] * a[6])
            + a[2] * (a[3] * a[7] - a[4] * a[6])
        )
        if det < 0:  # a reflection: flip the axis of the smallest singular value
            vt[2] *= -1.0
            np.matmul(vt.T, u.T, out=r)
        np.matmul(r, qc, out=self.position)
        np.subtract(self._pc, self.position, out=self.position)
        quat_from_matrix(r, self.orientation)
