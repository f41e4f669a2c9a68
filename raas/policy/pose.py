"""Quaternions (w, x, y, z) and the block's pose from its motion-capture markers.

Small, allocation-free where it runs every cycle."""

from __future__ import annotations

import math
from typing import Any

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
    n = math.sqrt(float(q.dot(q)))  # what np.linalg.norm computes, without its wrapper
    if n > 0:
        q /= n
    if q[0] < 0:
        q *= -1.0
    return q


def relative_rotation(goal: np.ndarray, current: np.ndarray, out: np.ndarray) -> np.ndarray:
    """goal * conj(current): the rotation that takes `current` to `goal`, canonical."""
    aw, ax, ay, az = goal.tolist()
    bw, bx, by, bz = current.tolist()
    bx, by, bz = -bx, -by, -bz  # conj(current); the products as quat_mul's, in Python floats
    out[0] = aw * bw - ax * bx - ay * by - az * bz
    out[1] = aw * bx + ax * bw + ay * bz - az * by
    out[2] = aw * by - ax * bz + ay * bw + az * bx
    out[3] = aw * bz + ax * by - ay * bx + az * bw
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


def _svd3(h: np.ndarray, u: np.ndarray, s: np.ndarray, vt: np.ndarray) -> None:
    """np.linalg.svd(h) (the same LAPACK call) into preallocated u, s, vt."""
    if _SVD_F is None:
        u[:], s[:], vt[:] = np.linalg.svd(h)
        return
    _SVD_F(h, signature="d->ddd", out=(u, s, vt))
    if math.isnan(s[0]):  # np.linalg.svd raises on non-convergence (its outputs are all NaN)
        raise np.linalg.LinAlgError("SVD did not converge")


try:  # the gufunc behind np.linalg.svd: without its wrapper (~5 us hot, more cold)
    from numpy.linalg import _umath_linalg

    _SVD_F: Any = _umath_linalg.svd_f
except (ImportError, AttributeError):  # pragma: no cover - another numpy layout
    _SVD_F = None


def horn_quaternion(h: list[float], out: np.ndarray) -> bool:
    """The rotation R (as a canonical quaternion w, x, y, z, into `out`) that maximises
    trace(R^T H^T) for the 3x3 cross-covariance H = sum_i q_i p_i^T (flat, row-major) of centred
    block-frame points q_i and world points p_i: the Kabsch rotation, by Horn's quaternion
    method. Its largest eigenvalue is found by Newton on the characteristic polynomial from an
    upper bound (as QCP does, here to full double precision), the eigenvector as a column of
    the adjugate of (N - lambda I). Python floats: a few microseconds, no LAPACK call.

    Returns False (and leaves `out` alone) when the largest eigenvalue is (nearly) repeated, so
    that the rotation is not well defined (degenerate marker layouts): the caller falls back to
    the SVD."""
    sxx, sxy, sxz, syx, syy, syz, szx, szy, szz = h
    # Horn's symmetric, traceless 4x4 N (rows 0-3, upper triangle)
    n00 = sxx + syy + szz
    n01 = syz - szy
    n02 = szx - sxz
    n03 = sxy - syx
    n11 = sxx - syy - szz
    n12 = sxy + syx
    n13 = szx + sxz
    n22 = -sxx + syy - szz
    n23 = syz + szy
    n33 = -sxx - syy + szz
    ss = sxx * sxx + sxy * sxy + sxz * sxz + syx * syx + syy * syy
    ss += syz * syz + szx * szx + szy * szy + szz * szz
    if not ss > 0.0:
        return False
    # det(N - x I) = x^4 + c2 x^2 + c1 x + c0
    c2 = -2.0 * ss
    c1 = -8.0 * (
        sxx * (syy * szz - syz * szy)
        - sxy * (syx * szz - syz * szx)
        + sxz * (syx * szy - syy * szx)
    )
    s0 = n00 * n11 - n01 * n01
    s1 = n00 * n12 - n01 * n02
    s2 = n00 * n13 - n01 * n03
    s3 = n01 * n12 - n11 * n02
    s4 = n01 * n13 - n11 * n03
    s5 = n02 * n13 - n12 * n03
    k5 = n22 * n33 - n23 * n23
    k4 = n12 * n33 - n13 * n23
    k3 = n12 * n23 - n13 * n22
    k2 = n02 * n33 - n03 * n23
    k1 = n02 * n23 - n03 * n22
    k0 = n02 * n13 - n03 * n12
    c0 = s0 * k5 - s1 * k4 + s2 * k3 + s3 * k2 - s4 * k1 + s5 * k0
    # the largest eigenvalue is a sum of H's singular values (the last one signed), so at most
    # sqrt(3 ss): Newton from there converges to it (in 1-2 steps for the block's corners,
    # where the bound is tight)
    x = math.sqrt(3.0 * ss)
    for _ in range(60):
        x2 = x * x
        f = (x2 + c2) * x2 + c1 * x + c0
        df = (4.0 * x2 + 2.0 * c2) * x + c1
        if df <= 0.0:
            break
        step = f / df
        x -= step
        if step <= 1e-15 * x:
            break
    # A = N - x I; its adjugate is (a multiple of) v v^T for the eigenvector v
    a00, a11, a22, a33 = n00 - x, n11 - x, n22 - x, n33 - x
    s0 = a00 * a11 - n01 * n01
    s1 = a00 * n12 - n01 * n02
    s2 = a00 * n13 - n01 * n03
    s3 = n01 * n12 - a11 * n02
    s4 = n01 * n13 - a11 * n03
    s5 = n02 * n13 - n12 * n03
    k5 = a22 * a33 - n23 * n23
    k4 = n12 * a33 - n13 * n23
    k3 = n12 * n23 - n13 * a22
    k2 = n02 * a33 - n03 * n23
    k1 = n02 * n23 - n03 * a22
    k0 = n02 * n13 - n03 * n12
    d0 = a11 * k5 - n12 * k4 + n13 * k3
    d1 = a00 * k5 - n02 * k2 + n03 * k1
    d2 = n03 * s4 - n13 * s2 + a33 * s0
    d3 = n02 * s3 - n12 * s1 + a22 * s0
    trace = d0 + d1 + d2 + d3  # |adj| = product of the other eigenvalues' gaps
    scale = 4.0 * ss  # ||N||_F^2
    if not abs(trace) > 1e-6 * scale * math.sqrt(scale):
        return False  # a gap to another eigenvalue is tiny: the rotation is ill-determined
    # the row of the adjugate with the largest diagonal entry (the eigenvector's largest part)
    if abs(d0) >= abs(d1) and abs(d0) >= abs(d2) and abs(d0) >= abs(d3):
        w, qx = d0, -n01 * k5 + n02 * k4 - n03 * k3
        qy, qz = n13 * s5 - n23 * s4 + a33 * s3, -n12 * s5 + a22 * s4 - n23 * s3
    elif abs(d1) >= abs(d2) and abs(d1) >= abs(d3):
        w, qx = -n01 * k5 + n12 * k2 - n13 * k1, d1
        qy, qz = -n03 * s5 + n23 * s2 - a33 * s1, n02 * s5 - a22 * s2 + n23 * s1
    elif abs(d2) >= abs(d3):
        w, qx = n01 * k4 - a11 * k2 + n13 * k0, -a00 * k4 + n01 * k2 - n03 * k0
        qy, qz = d2, -n02 * s4 + n12 * s2 - n23 * s0
    else:
        w, qx = -n01 * k3 + a11 * k1 - n12 * k0, a00 * k3 - n01 * k1 + n02 * k0
        qy, qz = -n03 * s3 + n13 * s1 - n23 * s0, d3
    norm = math.sqrt(w * w + qx * qx + qy * qy + qz * qz)
    if w < 0.0:
        norm = -norm
    out[0] = w / norm
    out[1] = qx / norm
    out[2] = qy / norm
    out[3] = qz / norm
    return True


def _rotate(q: list[float], v: list[float]) -> tuple[float, float, float]:
    """R(q) v for a unit quaternion q (w, x, y, z), in Python floats."""
    w, x, y, z = q
    a, b, c = v
    return (
        (1 - 2 * (y * y + z * z)) * a + 2 * (x * y - w * z) * b + 2 * (x * z + w * y) * c,
        2 * (x * y + w * z) * a + (1 - 2 * (x * x + z * z)) * b + 2 * (y * z - w * x) * c,
        2 * (x * z - w * y) * a + 2 * (y * z + w * x) * b + (1 - 2 * (x * x + y * y)) * c,
    )


class MarkerPose:
    """The block's pose from its LED markers by least-squares rigid fit (Kabsch).

    Uses the visible markers when at least 3 are visible; otherwise all of them (occluded
    markers report their last position, so the fit is the last pose seen, roughly). The
    all-visible case (the usual one) is precomputed down to one 3x3 product; the rotation comes
    from Horn's quaternion method in Python floats (horn_quaternion), the SVD only when the
    layout leaves it ill-determined."""

    def __init__(self, offsets: np.ndarray) -> None:
        self.offsets = np.asarray(offsets, dtype=np.float64)  # (M, 3) in the block frame
        self.position = np.zeros(3)
        self.orientation = np.array([1.0, 0.0, 0.0, 0.0])
        self._qc = self.offsets.mean(axis=0)
        # the centroid of the cell's corner LEDs is 1e-19 m (rounding): R qc is below the last
        # bit of the position, so the fit takes position = centroid
        self._qc_zero = bool(
            np.abs(self._qc).max() <= 1e-12 * max(np.abs(self.offsets).max(), 1e-300)
        )
        self._qc_list: list[float] = self._qc.tolist()
        self._qcT = np.ascontiguousarray((self.offsets - self._qc).T)  # (3, M), rows sum to 0
        self._h = np.zeros((3, 3))
        self._h_flat = self._h.reshape(-1)
        self._pc = np.zeros(3)
        self._r = np.zeros((3, 3))
        self._u, self._s, self._vt = np.zeros((3, 3)), np.zeros(3), np.zeros((3, 3))
        self._rows_p = np.zeros_like(self.offsets)  # update_rows' gathered markers
        self._rows_v = np.zeros(len(self.offsets), dtype=bool)
        # update_rows' product for a whole frame: (4, N) weights fixed per rows, (4, 3) out
        self._frame_rows: np.ndarray | None = None
        self._frame_w = np.zeros((4, 0))
        self._frame_hp = np.zeros((4, 3))
        self._frame_hp_flat = self._frame_hp.reshape(-1)

    def update_rows(self, positions: np.ndarray, visible: np.ndarray, rows: np.ndarray) -> None:
        """update(positions[rows], visible[rows]) without gathering: `positions` (N, 3) and
        `visible` (N,) are a whole motion-capture frame, `rows` the block markers' rows in it.

        When every marker of the frame is visible (the usual cycle), one product of a (4, N)
        matrix fixed per `rows` with the frame gives the cross-covariance and the centroid
        (its sums in BLAS's order: the same values as update()'s to a few ulps)."""
        if positions.dtype != np.float64 or visible.dtype != np.bool_:
            self.update(positions[rows], visible[rows])
            return
        if positions.shape != (len(visible), 3) or np.count_nonzero(visible) != len(visible):
            np.take(positions, rows, axis=0, out=self._rows_p)
            np.take(visible, rows, out=self._rows_v)
            self.update(self._rows_p, self._rows_v)
            return
        if rows is not self._frame_rows or len(visible) != self._frame_w.shape[1]:
            w = np.zeros((4, len(visible)))
            w[:3, rows] = self._qcT
            w[3, rows] = 1.0 / len(rows)
            self._frame_rows, self._frame_w = rows, w
        np.matmul(self._frame_w, positions, out=self._frame_hp)
        v = self._frame_hp_flat.tolist()
        if not horn_quaternion(v[:9], self.orientation):
            np.take(positions, rows, axis=0, out=self._rows_p)
            np.take(visible, rows, out=self._rows_v)
            self.update(self._rows_p, self._rows_v)
            return
        pos = self.position
        if self._qc_zero:
            pos[0], pos[1], pos[2] = v[9], v[10], v[11]
            return
        rx, ry, rz = _rotate(self.orientation.tolist(), self._qc_list)
        pos[0], pos[1], pos[2] = v[9] - rx, v[10] - ry, v[11] - rz  # pc - R qc

    def update(self, positions: np.ndarray, visible: np.ndarray) -> None:
        """`positions` (M, 3) world frame, `visible` (M,) bool, rows as `offsets`."""
        n_visible = int(np.count_nonzero(visible))
        if n_visible == len(visible) or n_visible < 3:
            # centred offsets sum to zero, so Qc^T (P - pc) = Qc^T P
            np.matmul(self._qcT, positions, out=self._h)
            np.add.reduce(positions, axis=0, out=self._pc)  # np.mean's sum and division
            np.true_divide(self._pc, len(positions), out=self._pc)
            qc = self._qc
            qc_zero = self._qc_zero
        else:
            p, q = positions[visible], self.offsets[visible]
            qc = q.mean(axis=0)
            qc_zero = False
            self._pc[:] = p.mean(axis=0)
            np.matmul((q - qc).T, p - self._pc, out=self._h)
        if horn_quaternion(self._h_flat.tolist(), self.orientation):
            pc = self._pc.tolist()
            rx, ry, rz = (
                (0.0, 0.0, 0.0) if qc_zero else _rotate(self.orientation.tolist(), qc.tolist())
            )
            pos = self.position
            pos[0], pos[1], pos[2] = pc[0] - rx, pc[1] - ry, pc[2] - rz  # pc - R qc
            return
        r = self._r  # ill-determined by Horn's method: the SVD, as before
        u, vt = self._u, self._vt
        _svd3(self._h, u, self._s, vt)
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
        quat_from_matrix(r, self.orientation)
        np.matmul(r, qc, out=self.position)
        np.subtract(self._pc, self.position, out=self.position)
