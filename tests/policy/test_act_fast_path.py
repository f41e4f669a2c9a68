"""PolicyRunner.act()'s per-cycle path (index plans, preallocated views, the block's pose by
Horn's quaternion method) computes what the straightforward path before it computed: the
reference classes below are that path, copied from the commit before the change (fancy
indexing, np.linalg.svd, np.clip, a gathered copy of the previous targets), and both run on the
same observations (a moving block with occluded markers, a moving hand, every observation key,
every kind of action decoding), with real onnxruntime."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from policy_bundles import dense_model
from raas_drivers.hand import HandState
from raas_drivers.hand.config import ACTUATOR_NAMES
from raas_drivers.mocap import MocapFrame

from raas.core.observation import Observation, SourceReading
from raas.policy import load_bundle
from raas.policy.cell import BLOCK_MARKER_OFFSETS, CellSpec
from raas.policy.features import ActionDecoder, ObjectPose
from raas.policy.keys import KEYS
from raas.policy.manifest import ActionSpec, ObservationSpec
from raas.policy.pose import MarkerPose, horn_quaternion, quat_from_matrix, random_quaternion
from raas.policy.runner import PolicyRunner

CELL = CellSpec()


# ---------------------------------------------------------------- the path before (reference)
def _ref_canonical(q: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(q))
    if n > 0:
        q /= n
    if q[0] < 0:
        q *= -1.0
    return q


def _ref_relative(goal: np.ndarray, current: np.ndarray, out: np.ndarray) -> np.ndarray:
    c = np.empty(4)
    c[0] = current[0]
    c[1:] = -current[1:]
    aw, ax, ay, az = (float(v) for v in goal)
    bw, bx, by, bz = (float(v) for v in c)
    out[0] = aw * bw - ax * bx - ay * by - az * bz
    out[1] = aw * bx + ax * bw + ay * bz - az * by
    out[2] = aw * by - ax * bz + ay * bw + az * bx
    out[3] = aw * bz + ax * by - ay * bx + az * bw
    return _ref_canonical(out)


class RefMarkerPose:
    """Kabsch by np.linalg.svd, as before."""

    def __init__(self, offsets: np.ndarray) -> None:
        self.offsets = np.asarray(offsets, dtype=np.float64)
        self.position = np.zeros(3)
        self.orientation = np.array([1.0, 0.0, 0.0, 0.0])
        self._qc = self.offsets.mean(axis=0)
        self._qcT = np.ascontiguousarray((self.offsets - self._qc).T)
        self._h = np.zeros((3, 3))
        self._pc = np.zeros(3)
        self._r = np.zeros((3, 3))

    def update_rows(self, positions: np.ndarray, visible: np.ndarray, rows: np.ndarray) -> None:
        self.update(positions[rows], visible[rows])

    def update(self, positions: np.ndarray, visible: np.ndarray) -> None:
        n_visible = int(np.count_nonzero(visible))
        if n_visible == len(visible) or n_visible < 3:
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
        if det < 0:
            vt[2] *= -1.0
            np.matmul(vt.T, u.T, out=r)
        np.matmul(r, qc, out=self.position)
        np.subtract(self._pc, self.position, out=self.position)
        quat_from_matrix(r, self.orientation)


class RefAssembler:
    def __init__(self, spec: ObservationSpec, cell: CellSpec) -> None:
        self.keys = [f.key for f in spec.fields]
        n = spec.size
        self.raw = np.zeros(n)
        self.mean, self.inv_std = np.zeros(n), np.ones(n)
        self.lo, self.hi = np.full(n, -np.inf), np.full(n, np.inf)
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
        self, obs: Observation, pose: ObjectPose, previous_action: np.ndarray, out: np.ndarray
    ) -> str | None:
        raw = self.raw
        for key, s in zip(self.keys, self.slices, strict=True):
            if key == "fingertip_positions":
                m = obs.mocap
                if m is None:
                    return key
                raw[s] = m.positions[self.fingertip_rows].reshape(-1)
            elif key in ("object_position", "object_orientation", "relative_goal_orientation"):
                if not pose.valid:
                    return key
                if key == "object_position":
                    raw[s] = pose.position
                elif key == "object_orientation":
                    raw[s] = pose.orientation
                else:
                    raw[s] = _ref_relative(obs.goal[3:7], pose.orientation, self._rel)
            elif key == "goal_position":
                raw[s] = obs.goal[:3]
            elif key == "goal_orientation":
                raw[s] = obs.goal[3:7]
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


class RefDecoder:
    def __init__(self, spec: ActionSpec, cell: CellSpec) -> None:
        self.spec = spec
        n = len(spec.actuators)
        self.index = np.array([cell.actuator_names.index(a) for a in spec.actuators])
        limits = cell.actuator_limits[self.index]
        self.mid = limits.mean(axis=1)
        self.half = (limits[:, 1] - limits[:, 0]) / 2.0
        self.lo, self.hi = limits[:, 0].copy(), limits[:, 1].copy()
        self.bins = spec.bins or 0
        self.bin_values = np.linspace(-1.0, 1.0, self.bins) if self.bins else np.zeros(0)
        self.a, self.new = np.zeros(n), np.zeros(n)
        self.idle = cell.idle_action.copy()
        self.target = self.idle.copy()
        self.smoothing = spec.smoothing

    def reset(self) -> None:
        self.target[:] = self.idle

    def decode(self, output: np.ndarray) -> None:
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


def as_before(runner: PolicyRunner) -> PolicyRunner:
    """The same runner with the path before: reference pose fit, assembly and decoding."""
    runner.markers = RefMarkerPose(CELL.block_marker_offsets)  # type: ignore[assignment]
    runner.pose.position = runner.markers.position
    runner.pose.orientation = runner.markers.orientation
    runner.assembler = RefAssembler(runner.manifest.observation, CELL)  # type: ignore[assignment]
    runner.decoder = RefDecoder(runner.manifest.action, CELL)  # type: ignore[assignment]
    runner.reset()
    return runner


# ---------------------------------------------------------------- observations and bundles
def _rotation(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def observations(n: int, seed: int = 0) -> list[Observation]:
    """A block turning and drifting (marker noise, one LED occluded every third cycle, six of
    eight every seventh: the fit then uses all of them), fingertips and a hand moving, a goal
    changing every 10 cycles: Observations as the loop builds them."""
    rng = np.random.default_rng(seed)
    offsets = np.asarray(BLOCK_MARKER_OFFSETS)
    q = random_quaternion(rng)
    turn = np.array([np.cos(0.05), np.sin(0.05), 0.0, 0.0])
    goal = np.zeros(7)
    out = []
    for k in range(n):
        w0, x0, y0, z0 = turn
        w1, x1, y1, z1 = q
        q = np.array(
            [
                w0 * w1 - x0 * x1 - y0 * y1 - z0 * z1,
                w0 * x1 + x0 * w1 + y0 * z1 - z0 * y1,
                w0 * y1 - x0 * z1 + y0 * w1 + z0 * x1,
                w0 * z1 + x0 * y1 - y0 * x1 + z0 * w1,
            ]
        )
        centre = np.array([1.0, 0.87, 0.17]) + rng.normal(scale=0.01, size=3)
        block = centre + offsets @ _rotation(q).T + rng.normal(scale=2e-4, size=offsets.shape)
        tips = np.array([1.0, 0.87, 0.2]) + rng.normal(scale=0.03, size=(5, 3))
        visible = np.ones(13, dtype=bool)
        if k % 3 == 1:
            visible[5 + k % 8] = False
        if k % 7 == 3:
            visible[5:11] = False
        if k % 10 == 0:
            goal[:3] = centre + rng.normal(scale=0.01, size=3)
            goal[3:] = random_quaternion(rng)
        obs = Observation()
        obs.cycle = k
        obs.goal[:] = goal
        obs.sources["hand"] = SourceReading(
            "hand",
            2_000_000,
            True,
            sample=HandState(
                cycle=k,
                capture_ns=0,
                positions=rng.normal(scale=0.3, size=len(CELL.joint_names)),
                velocities=rng.normal(size=len(CELL.joint_names)),
            ),
        )
        obs.sources["mocap"] = SourceReading(
            "mocap",
            5_000_000,
            True,
            sample=MocapFrame(
                cycle=k, capture_ns=0, positions=np.vstack([tips, block]), visible=visible
            ),
        )
        out.append(obs)
    return out


#: every key a policy may read, each with its own mean/std/clip
FIELDS: list[dict[str, Any]] = [
    {"key": "fingertip_positions", "shape": [5, 3], "mean": [1.0, 0.87, 0.2] * 5, "std": 0.03},
    {"key": "object_position", "shape": [3], "mean": [1.0, 0.87, 0.17], "std": 0.02, "clip": 1.5},
    {"key": "object_orientation", "shape": [4]},
    {"key": "relative_goal_orientation", "shape": [4], "clip": 5.0},
    {"key": "goal_position", "shape": [3], "mean": 1.0, "std": 0.05},
    {"key": "goal_orientation", "shape": [4]},
    {"key": "joint_positions", "shape": [24], "std": 0.3, "clip": 2.0},
    {"key": "joint_velocities", "shape": [24], "std": 0.5},
    {"key": "previous_action", "shape": [20], "std": 0.7},
]

ACTIONS: dict[str, dict[str, Any]] = {
    "discrete-relative-smoothed": {
        "kind": "discrete",
        "bins": 11,
        "mode": "relative",
        "relative_step": 0.1,
        "smoothing": 0.3,
    },
    "continuous-absolute": {"kind": "continuous", "mode": "absolute"},
    "continuous-relative-subset": {
        "kind": "continuous",
        "mode": "relative",
        "relative_step": 0.5,
        "smoothing": 0.2,
        "actuators": list(reversed(ACTUATOR_NAMES[2:14])),  # 12, not in the hand's order
    },
}


def bundle(root: Path, action: str, fields: list[dict[str, Any]]) -> Path:
    d = root / f"{action}-{len(fields)}"
    d.mkdir()
    spec = dict(ACTIONS[action])
    actuators = spec.pop("actuators", list(ACTUATOR_NAMES))
    n_in = sum(math.prod(f["shape"]) for f in fields)
    dense_model(d / "model.onnx", n_in, len(actuators) * spec.get("bins", 1))
    manifest = {
        "format": 1,
        "name": d.name,
        "model": "model.onnx",
        "control_period_s": 0.08,
        "observation": {"input": "obs", "fields": fields},
        "action": {"output": "action", "actuators": actuators, **spec},
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_key_and_decoding_as_before_on_the_same_observations(
    tmp_path: Path, action: str
) -> None:
    d = bundle(tmp_path, action, FIELDS)
    new = load_bundle(d, period_s=0.08, budget_ms=1000, measure_runs=3)
    old = as_before(load_bundle(d, period_s=0.08, budget_ms=1000, measure_runs=3))
    assert set(KEYS) == {f["key"] for f in FIELDS}
    out_new, out_old = np.zeros(20), np.zeros(20)
    exact = 0
    obs_seq = observations(120)
    for obs in obs_seq:
        assert new.act(obs, out_new) and old.act(obs, out_old)
        # the same input: the pose by Horn's method differs from the SVD's by ~1e-15, which
        # may move a float32 rounding by one unit
        np.testing.assert_array_max_ulp(new.obs_input, old.obs_input, maxulp=1)
        exact += bool((new.obs_input == old.obs_input).all())
        np.testing.assert_allclose(new.pose.position, old.pose.position, rtol=0, atol=1e-14)
        np.testing.assert_allclose(new.pose.orientation, old.pose.orientation, atol=1e-13)
        if (new.obs_input == old.obs_input).all():
            assert (out_new == out_old).all()
        else:
            np.testing.assert_allclose(out_new, out_old, rtol=1e-6, atol=1e-7)
    assert exact >= 0.95 * len(obs_seq)


@pytest.mark.parametrize("key", [f["key"] for f in FIELDS])
def test_each_source_kind_alone_fills_the_same_input(tmp_path: Path, key: str) -> None:
    fields = [f for f in FIELDS if f["key"] == key]
    d = bundle(tmp_path, "continuous-absolute", fields)
    new = load_bundle(d, period_s=0.08, budget_ms=1000, measure_runs=3)
    old = as_before(load_bundle(d, period_s=0.08, budget_ms=1000, measure_runs=3))
    out_new, out_old = np.zeros(20), np.zeros(20)
    for obs in observations(40, seed=1):
        assert new.act(obs, out_new) and old.act(obs, out_old)
        np.testing.assert_array_max_ulp(new.obs_input, old.obs_input, maxulp=1)
    # a source that has never delivered is named, as before
    source = KEYS[key].sources
    if source:
        obs = observations(1)[0]
        obs.sources.pop("mocap" if source[0] in ("mocap", "object") else "hand")
        new.reset()
        old.reset()
        assert new.act(obs, out_new) is old.act(obs, out_old) is False
        assert new.last_missing == old.last_missing == key


def test_the_fingertip_rows_bound_by_name_are_read(tmp_path: Path) -> None:
    """bind_markers() on a cell whose rows are in another order: the index plan follows."""
    d = bundle(tmp_path, "continuous-absolute", FIELDS[:4])
    new = load_bundle(d, period_s=0.08, budget_ms=1000, measure_runs=3)
    old = as_before(load_bundle(d, period_s=0.08, budget_ms=1000, measure_runs=3))
    order = np.random.default_rng(3).permutation(13)
    names = [CELL.marker_names[i] for i in order]
    new.bind_markers(names)
    old.bind_markers(names)
    out_new, out_old = np.zeros(20), np.zeros(20)
    for obs in observations(30, seed=2):
        m = obs.mocap
        assert m is not None
        m.positions, m.visible = m.positions[order], m.visible[order]
        assert new.act(obs, out_new) and old.act(obs, out_old)
        np.testing.assert_array_max_ulp(new.obs_input, old.obs_input, maxulp=1)
        # a frame that is not C-ordered float64 takes the general path: the same values
        m.positions = np.asfortranarray(m.positions.astype(np.float32))
        assert new.act(obs, out_new) and old.act(obs, out_old)
        np.testing.assert_array_max_ulp(new.obs_input, old.obs_input, maxulp=1)


@pytest.mark.parametrize("action", list(ACTIONS))
def test_decoding_is_bit_for_bit_the_same(action: str) -> None:
    spec = dict(ACTIONS[action])
    actuators = spec.pop("actuators", list(ACTUATOR_NAMES))
    a = ActionSpec(output="action", actuators=actuators, **spec)
    new, old = ActionDecoder(a, CELL), RefDecoder(a, CELL)
    rng = np.random.default_rng(4)
    size = len(actuators) * (a.bins or 1)
    for k in range(200):
        out = (rng.normal(scale=2.0, size=(1, size))).astype(np.float32)
        if k % 50 == 49:
            new.reset()
            old.reset()
        new.decode(out if k % 2 else out.copy())  # a new output array now and then
        old.decode(out)
        assert (new.target == old.target).all()


def test_horn_quaternion_is_the_svd_fit() -> None:
    """Random poses, noisy markers, subsets: Horn's rotation equals Kabsch's by SVD to 1e-13."""
    rng = np.random.default_rng(5)
    offsets = np.asarray(BLOCK_MARKER_OFFSETS)
    skewed = offsets + rng.normal(scale=0.01, size=offsets.shape) + [0.01, 0.0, 0.02]
    for layout in (offsets, skewed):
        new, old = MarkerPose(layout), RefMarkerPose(layout)
        for k in range(2000):
            markers = (
                layout @ _rotation(random_quaternion(rng)).T
                + [1.0, 0.87, 0.17]
                + rng.normal(scale=5e-4 if k % 2 else 0.0, size=layout.shape)
            )
            visible = np.ones(8, dtype=bool)
            if k % 4 == 1:
                visible[rng.integers(8)] = False
            if k % 4 == 2:
                visible[rng.choice(8, 6, replace=False)] = False
            new.update(markers, visible)
            old.update(markers, visible)
            np.testing.assert_allclose(new.orientation, old.orientation, rtol=0, atol=1e-13)
            np.testing.assert_allclose(new.position, old.position, rtol=0, atol=1e-14)
    # markers on a line: the turn about it is not determined (Horn's largest eigenvalue is
    # double); the fit falls back to the SVD and gives what it gave before, bit for bit
    line = np.outer(np.linspace(-0.024, 0.024, 8), [1.0, 0.0, 0.0])
    new, old = MarkerPose(line), RefMarkerPose(line)
    markers = line @ _rotation(random_quaternion(rng)).T + [1.0, 0.87, 0.17]
    assert not horn_quaternion(new._qcT.dot(markers).reshape(-1).tolist(), np.zeros(4))
    new.update(markers, np.ones(8, dtype=bool))
    old.update(markers, np.ones(8, dtype=bool))
    assert (new.orientation == old.orientation).all() and (new.position == old.position).all()
    assert not horn_quaternion([0.0] * 9, np.zeros(4))


@pytest.mark.filterwarnings("ignore:invalid value encountered in dot")
def test_a_non_finite_output_is_caught_like_before(tmp_path: Path) -> None:
    """The finite check (a dot product with zeros) against np.isfinite: NaN, +-inf, and huge
    finite values (finite: decoded, not NaN)."""
    d = bundle(tmp_path, "continuous-absolute", FIELDS[:1])
    runner = load_bundle(d, period_s=0.08, budget_ms=1000, measure_runs=3)
    out = runner.action_output
    for v in (np.nan, np.inf, -np.inf, 3e38, -3e38, 1e20, 0.0, 1e-45):
        out.fill(3e38)
        out.reshape(-1)[7] = v
        assert runner._finite() == bool(np.isfinite(out).all()), v


def test_the_input_follows_the_out_array_it_is_given() -> None:
    """fill() writes whatever `out` it gets (its flat view is cached per array)."""
    spec = ObservationSpec.model_validate({"input": "obs", "fields": FIELDS[:2]})
    from raas.policy.features import ObservationAssembler

    asm, ref = ObservationAssembler(spec, CELL), RefAssembler(spec, CELL)
    pose = ObjectPose()
    pose.valid = True
    for obs in observations(3):
        pose.position[:] = obs.goal[:3]
        a, b = np.zeros((1, 18), np.float32), np.zeros((1, 18), np.float32)
        assert asm.fill(obs, pose, np.zeros(20), a) is None
        ref.fill(obs, pose, np.zeros(20), b)
        assert (a == b).all() and a.any()
        c = np.zeros((2, 18), np.float32)[:, 0:9]  # not contiguous: written as before
        d = np.zeros((2, 18), np.float32)[:, 0:9]
        asm.fill(obs, pose, np.zeros(20), c)
        ref.fill(obs, pose, np.zeros(20), d)
        assert (c == d).all()
