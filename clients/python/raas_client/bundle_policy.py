"""A policy bundle as a policy server's function: `raas serve-policy BUNDLE`.

The bundle is the same directory the robot runs in its loop (docs/policy.md: model.onnx and
manifest.toml or manifest.json). Here it runs with onnxruntime on the researcher's machine, next
to its GPU, and each call turns one remote observation into a chunk of H position targets.

This is a small loader of its own, not the daemon's (`raas_client` never imports `raas`): it reads
the manifest fields it needs and checks them against the robot's `hello` spaces, naming the field
at fault. The daemon's full check (pydantic schema, budget) is `raasd` loading the bundle; a test
(tests/client/test_bundle_policy.py) runs both on the same observations and holds the actions equal.

Chunks:
- The manifest's `action.chunk = H` declares a model whose output holds H actions (shape
  `(1, H, ...)` or `(H, ...)`, H x the action's size), row i for the observation's cycle + i; each
  row is decoded like a single action, in order (a relative row moves from the row before it,
  smoothing runs through the rows).
- A model without `action.chunk` outputs one action. Its chunk **holds** that action for all H
  rows: the policy was trained to act once per observation, and nothing here can predict what it
  would do on observations it has not seen, so repeating its relative step H times or rolling it
  forward would be made-up actions. The robot indexes into the chunk by cycle as for any chunk,
  so a held chunk means: the target of the newest computed observation, reached one chunk
  latency late.
- `previous_action` (an observation key; also the base of a relative action) is the row of the
  last chunk this server sent meant for the cycle before the observation (its last row once that
  chunk ran out; the idle action at the start of an episode): what the robot was told to do then.
- Recurrent state is carried from one call to the next, i.e. from chunk to chunk, not from cycle
  to cycle as in the robot's loop: a recurrent policy served as chunks sees every observation it
  is called on, one per chunk. Calls are serialised (a lock) so the state stays in order.

Not served here: a bundle with a `vision` model (remote observations carry no camera images;
run it in the robot's loop instead).
"""

from __future__ import annotations

import json
import math
import threading
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from raas_client.errors import BundleError
from raas_client.session import Observation

MANIFEST_NAMES = ("manifest.toml", "manifest.json")
#: The cell's motion-capture names a policy reads (the same as raas.policy.cell; a test keeps
#: them equal): five fingertips, then the block's 8 corner LEDs at these offsets (m, block frame).
FINGERTIP_MARKERS = ("fftip", "mftip", "rftip", "lftip", "thtip")
BLOCK_MARKERS = tuple(f"block:m{i}" for i in range(8))
BLOCK_MARKER_OFFSETS = np.array(
    [(sx * 0.024, sy * 0.024, sz * 0.024) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
)
#: observation key -> its shape on the Shadow hand, or the hello array whose length it takes
KEY_SHAPES: dict[str, tuple[int, ...] | str] = {
    "fingertip_positions": (5, 3),
    "object_position": (3,),
    "object_orientation": (4,),
    "goal_position": (3,),
    "goal_orientation": (4,),
    "relative_goal_orientation": (4,),
    "joint_positions": "hand_pos",
    "joint_velocities": "hand_vel",
    "previous_action": "action",
}
_OBJECT_KEYS = ("object_position", "object_orientation", "relative_goal_orientation")
_ONNX_FLOATS: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}


def _get(d: Mapping[str, Any], key: str, field: str, kind: type | tuple[type, ...]) -> Any:
    v = d.get(key)
    if v is None or not isinstance(v, kind) or isinstance(v, bool):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BundleError(field, f"must be a {want}, got {v!r}")
    return v


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of the bundle directory `root` as a dict (toml or json)."""
    if not root.is_dir():
        raise BundleError("bundle", f"{root} is not a directory (unpack an archive first)")
    found = [root / n for n in MANIFEST_NAMES if (root / n).is_file()]
    if not found:
        raise BundleError("manifest", f"no {' or '.join(MANIFEST_NAMES)} in {root}")
    if len(found) > 1:
        raise BundleError("manifest", "both manifest.toml and manifest.json: keep one")
    path = found[0]
    try:
        raw = path.read_bytes().decode()
        data = tomllib.loads(raw) if path.suffix == ".toml" else json.loads(raw)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise BundleError("manifest", f"cannot read {path.name}: {exc}") from None
    if not isinstance(data, dict):
        raise BundleError("manifest", f"{path.name} must hold a table/object")
    return data


class _Field:
    """One observation field: key, flat slice, normalisation."""

    def __init__(self, i: int, f: Any) -> None:
        where = f"observation.fields.{i}"
        if not isinstance(f, dict):
            raise BundleError(where, "must be a table/object")
        self.key = _get(f, "key", f"{where}.key", str)
        if self.key not in KEY_SHAPES:
            raise BundleError(f"{where}.key", f"unknown observation key {self.key!r}")
        shape = _get(f, "shape", f"{where}.shape", list)
        self.shape = tuple(int(s) for s in shape)
        self.size = math.prod(self.shape) if self.shape else 1
        self.where = where
        self.mean = np.asarray(f.get("mean", 0.0), dtype=np.float64)
        std = np.asarray(f.get("std", 1.0), dtype=np.float64)
        for name, v in (("mean", self.mean), ("std", std)):
            if v.ndim > 1 or (v.ndim == 1 and v.size != self.size):
                raise BundleError(f"{where}.{name}", f"a scalar or {self.size} values")
        if (std <= 0).any():
            raise BundleError(f"{where}.std", "must be > 0")
        self.inv_std = 1.0 / std
        clip = f.get("clip")
        self.clip = float(clip) if clip is not None else math.inf


class BundlePolicy:
    """A bundle directory loaded with onnxruntime: `bind(info)` with the robot's `hello` reply,
    then call it with each observation to get an (H, actuators) chunk of targets (rad)."""

    def __init__(self, root: Path, horizon: int | None = None) -> None:
        self.root = Path(root)
        m = read_manifest(self.root)
        self.manifest = m
        self.name = str(m.get("name", self.root.name))
        if m.get("vision") is not None:
            raise BundleError(
                "vision",
                "the bundle reads camera images through a vision model; remote observations "
                "carry no images, so it cannot be served from here: run it in the robot's loop "
                "(raas run ROBOT BUNDLE)",
            )
        self.period_s = float(_get(m, "control_period_s", "control_period_s", (int, float)))
        obs = _get(m, "observation", "observation", dict)
        self.obs_input = str(obs.get("input", "obs"))
        self.fields = [
            _Field(i, f) for i, f in enumerate(_get(obs, "fields", "observation.fields", list))
        ]
        if not self.fields:
            raise BundleError("observation.fields", "at least one field")
        act = _get(m, "action", "action", dict)
        self.output = str(act.get("output", "action"))
        self.actuators = [str(a) for a in _get(act, "actuators", "action.actuators", list)]
        self.kind = act.get("kind", "continuous")
        if self.kind not in ("continuous", "discrete"):
            raise BundleError("action.kind", f"continuous or discrete, got {self.kind!r}")
        self.bins = int(act["bins"]) if self.kind == "discrete" else 0
        if self.kind == "discrete" and self.bins < 2:
            raise BundleError("action.bins", f"at least 2 bins, got {self.bins}")
        self.mode = act.get("mode", "absolute")
        if self.mode not in ("absolute", "relative"):
            raise BundleError("action.mode", f"absolute or relative, got {self.mode!r}")
        self.relative_step = float(act.get("relative_step", 0.1))
        self.smoothing = float(act.get("smoothing", 0.0))
        declared = act.get("chunk")
        if declared is not None and (not isinstance(declared, int) or declared < 1):
            raise BundleError("action.chunk", f"a positive integer, got {declared!r}")
        #: rows the model outputs per call (1: a single-action model, held for the chunk)
        self.model_rows = int(declared) if declared is not None else 1
        if declared is not None and horizon is not None and horizon != declared:
            raise BundleError(
                "action.chunk",
                f"the model outputs chunks of {declared} actions; --chunk {horizon} differs "
                "(leave --chunk out to serve the model's)",
            )
        #: H, the chunk the robot is told: the model's, or the given one (a held action)
        self.horizon = self.model_rows if declared is not None else (horizon or 16)
        self.states: list[tuple[str, str, float]] = []
        for i, s in enumerate(m.get("state", []) or []):
            if not isinstance(s, dict):
                raise BundleError(f"state.{i}", "must be a table/object")
            self.states.append(
                (
                    str(_get(s, "input", f"state.{i}.input", str)),
                    str(_get(s, "output", f"state.{i}.output", str)),
                    float(s.get("initial", 0.0)),
                )
            )
        hand = m.get("hand") or {}
        self.hand_model = str(hand.get("model", "shadow-dexterous"))
        self._open_model()
        self._lock = threading.Lock()
        self.calls = 0
        self._bound = False

    # ---------------------------------------------------------------- the model
    def _open_model(self) -> None:
        try:
            import onnxruntime as ort  # noqa: PLC0415 (an extra: only bundles need it)
        except ImportError:
            raise BundleError(
                "model",
                "serving a bundle needs onnxruntime: pip install 'raas-client[bundle]'",
            ) from None
        path = self.root / str(self.manifest.get("model", "model.onnx"))
        if not path.is_file():
            raise BundleError("model", f"{path.name} is not a file in the bundle")
        so = ort.SessionOptions()
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(path), so, providers=ort.get_available_providers()
            )
        except Exception as exc:  # onnxruntime raises several private exception types
            raise BundleError("model", f"onnxruntime cannot load {path.name}: {exc}") from None
        ins = {i.name: i for i in self.session.get_inputs()}
        outs = {o.name: o for o in self.session.get_outputs()}
        wanted = {self.obs_input: "observation.input"}
        wanted.update({s[0]: f"state.{i}.input" for i, s in enumerate(self.states)})
        for name, field in wanted.items():
            if name not in ins:
                raise BundleError(field, f"the model has no input {name!r} ({', '.join(ins)})")
        extra = [n for n in ins if n not in wanted]
        if extra:
            raise BundleError("observation.input", f"model inputs {extra} are not declared")
        for name, field in [(self.output, "action.output")] + [
            (s[1], f"state.{i}.output") for i, s in enumerate(self.states)
        ]:
            if name not in outs:
                raise BundleError(field, f"the model has no output {name!r} ({', '.join(outs)})")

        def concrete(shape: Sequence[Any]) -> tuple[int, ...]:
            return tuple(d if isinstance(d, int) and d > 0 else 1 for d in shape)

        def dtype_of(arg: Any, field: str) -> type[np.floating[Any]]:
            t = _ONNX_FLOATS.get(arg.type)
            if t is None:
                raise BundleError(field, f"{arg.name!r} must be float, not {arg.type}")
            return t

        oi = ins[self.obs_input]
        self._obs = np.zeros(concrete(oi.shape), dtype=dtype_of(oi, "observation.input"))
        n_in = sum(f.size for f in self.fields)
        if self._obs.size != n_in:
            raise BundleError(
                "observation.fields",
                f"the fields give {n_in} values but the model's input {self.obs_input!r} has "
                f"{self._obs.size}",
            )
        ao = outs[self.output]
        dtype_of(ao, "action.output")
        per = len(self.actuators) * (self.bins or 1)
        n_out = math.prod(concrete(ao.shape))
        fixed = all(isinstance(d, int) and d > 0 for d in ao.shape)
        if fixed and n_out != per * self.model_rows:
            raise BundleError(
                "action.chunk" if self.model_rows > 1 else "action.actuators",
                f"the output {self.output!r} has shape {list(ao.shape)} ({n_out} values); "
                f"{self.model_rows} row(s) x {len(self.actuators)} actuators"
                f"{f' x {self.bins} bins' if self.bins else ''} = {per * self.model_rows}",
            )
        self._per_row = per
        self._state_init = {
            name: np.full(concrete(ins[name].shape), init, dtype=dtype_of(ins[name], "state"))
            for name, _, init in self.states
        }
        self._state = {k: v.copy() for k, v in self._state_init.items()}

    # ---------------------------------------------------------------- the robot
    def bind(self, info: Mapping[str, Any]) -> None:
        """Check the bundle against the robot (its `hello` reply: rate and spaces) and find the
        arrays it reads."""
        rate = info.get("rate_hz")
        if isinstance(rate, int | float) and rate > 0:
            period = 1.0 / float(rate)
            if abs(self.period_s - period) > 0.01 * period:
                raise BundleError(
                    "control_period_s",
                    f"the policy was trained for {self.period_s * 1e3:g} ms but the robot runs "
                    f"every {period * 1e3:g} ms ({float(rate):g} Hz): its chunk rows would be "
                    "meant for other instants",
                )
        spaces = info["spaces"]
        action = spaces["action"]
        robot_hand = str(action.get("hand_model", "shadow-dexterous"))
        if robot_hand != self.hand_model:
            raise BundleError(
                "hand.model",
                f"the bundle was made for the hand {self.hand_model!r}; the robot's is "
                f"{robot_hand!r}",
            )
        names = list(action["names"])
        unknown = [a for a in self.actuators if a not in names]
        if unknown:
            raise BundleError(
                "action.actuators", f"the robot's hand has no actuator {', '.join(unknown)}"
            )
        n = len(names)
        self.n = n
        self.index = np.array([names.index(a) for a in self.actuators], dtype=np.intp)
        low = np.asarray(action["low"], dtype=np.float64)[self.index]
        high = np.asarray(action["high"], dtype=np.float64)[self.index]
        self.lo, self.hi = low, high
        self.mid, self.half = (low + high) / 2, (high - low) / 2
        self.idle = np.asarray(action["idle"], dtype=np.float64)
        obs = spaces["observation"]
        markers = list(obs.get("mocap", {}).get("names", []))
        keys = {f.key for f in self.fields}
        sizes = {"hand_pos": obs["hand_pos"]["shape"][0], "hand_vel": obs["hand_vel"]["shape"][0]}
        sizes["action"] = n
        for f in self.fields:
            want = KEY_SHAPES[f.key]
            shape = (int(sizes[want]),) if isinstance(want, str) else want
            if f.shape != shape:
                raise BundleError(
                    f"{f.where}.shape",
                    f"{f.key!r} is {list(shape)} on this robot, the bundle says {list(f.shape)}",
                )

        def rows(wanted: Sequence[str], why: str) -> np.ndarray:
            missing = [w for w in wanted if w not in markers]
            if missing:
                raise BundleError(
                    "observation.fields",
                    f"{why} needs the motion-capture rows {', '.join(missing)}; the robot "
                    f"streams {', '.join(markers) or 'none'}",
                )
            return np.array([markers.index(w) for w in wanted], dtype=np.intp)

        self.tip_rows = rows(FINGERTIP_MARKERS, "fingertip_positions") if (
            "fingertip_positions" in keys
        ) else np.zeros(0, dtype=np.intp)  # fmt: skip
        object_keys = sorted(keys & set(_OBJECT_KEYS))
        self.block_rows = (
            rows(BLOCK_MARKERS, ", ".join(object_keys))
            if object_keys
            else np.zeros(0, dtype=np.intp)
        )
        self._last: np.ndarray | None = None  # the last chunk returned, (H, n)
        self._last_cycle = -1
        self._episode: int | None = None
        self._bound = True

    # ---------------------------------------------------------------- a call
    def __call__(self, obs: Observation) -> np.ndarray:
        if not self._bound:
            raise BundleError("bundle", "bind(hello) first (serve() does it on connecting)")
        with self._lock:
            return self._chunk(obs)

    def reset(self) -> None:
        """Start of an episode: initial state, idle previous action."""
        for k, v in self._state_init.items():
            self._state[k][...] = v
        self._last, self._last_cycle = None, -1

    def previous_action(self, cycle: int) -> np.ndarray:
        """The target the last chunk set for `cycle - 1` (its last row once it ran out)."""
        if self._last is None or cycle - 1 < self._last_cycle:
            return self.idle.copy()
        i = min(cycle - 1 - self._last_cycle, self._last.shape[0] - 1)
        row: np.ndarray = self._last[i].copy()
        return row

    def _chunk(self, obs: Observation) -> np.ndarray:
        if obs.episode != self._episode:
            self.reset()
            self._episode = obs.episode
        prev = self.previous_action(obs.cycle)
        self._obs.reshape(-1)[:] = self._features(obs, prev)
        feeds = {self.obs_input: self._obs, **self._state}
        names = [self.output, *(s[1] for s in self.states)]
        got = self.session.run(names, feeds)
        for (inp, _, _), value in zip(self.states, got[1:], strict=True):
            self._state[inp] = np.asarray(value).reshape(self._state[inp].shape)
        if np.asarray(got[0]).size != self.model_rows * self._per_row:
            raise BundleError(
                "action.output",
                f"the model gave {np.asarray(got[0]).size} values, expected "
                f"{self.model_rows} x {self._per_row}",
            )
        out = np.asarray(got[0], dtype=np.float64).reshape(self.model_rows, self._per_row)
        chunk = np.empty((self.horizon, self.n))
        target = prev
        for i in range(self.horizon):
            if i < self.model_rows:
                target = self._decode(out[i], target)
            chunk[i] = target  # a single-action model: its target held for the chunk
        self._last, self._last_cycle = chunk, obs.cycle
        self.calls += 1
        return chunk

    def _decode(self, row: np.ndarray, prev_full: np.ndarray) -> np.ndarray:
        """One output row -> the full target vector (the actuators it omits keep theirs)."""
        if self.kind == "discrete":
            a = np.linspace(-1.0, 1.0, self.bins)[row.reshape(-1, self.bins).argmax(axis=1)]
        else:
            a = np.clip(row, -1.0, 1.0)
        prev = prev_full[self.index]
        if self.mode == "absolute":
            new = self.mid + a * self.half
        else:
            new = prev + a * self.half * self.relative_step
        new = np.clip(new, self.lo, self.hi)
        if self.smoothing > 0:
            new = (1.0 - self.smoothing) * new + self.smoothing * prev
        full = prev_full.copy()
        full[self.index] = new
        return full

    def _features(self, obs: Observation, prev: np.ndarray) -> np.ndarray:
        a = obs.arrays
        pose: tuple[np.ndarray, np.ndarray] | None = None
        parts: list[np.ndarray] = []
        for f in self.fields:
            if f.key in _OBJECT_KEYS and pose is None:
                pose = block_pose(a["mocap"][self.block_rows], a["mocap_visible"][self.block_rows])
            if f.key == "fingertip_positions":
                v = a["mocap"][self.tip_rows].reshape(-1)
            elif f.key == "object_position":
                assert pose is not None
                v = pose[0]
            elif f.key == "object_orientation":
                assert pose is not None
                v = pose[1]
            elif f.key == "relative_goal_orientation":
                assert pose is not None
                v = canonical(quat_mul(a["goal"][3:7], pose[1] * np.array([1, -1, -1, -1])))
            elif f.key == "goal_position":
                v = a["goal"][:3]
            elif f.key == "goal_orientation":
                v = a["goal"][3:7]
            elif f.key == "joint_positions":
                v = a["hand_pos"]
            elif f.key == "joint_velocities":
                v = a["hand_vel"]
            else:  # previous_action
                v = prev
            x = (np.asarray(v, dtype=np.float64).reshape(-1) - f.mean) * f.inv_std
            parts.append(np.clip(x, -f.clip, f.clip))
        return np.concatenate(parts)


# -------------------------------------------------------------------- the block's pose
def canonical(q: np.ndarray) -> np.ndarray:
    """Unit length, w >= 0."""
    n = float(np.linalg.norm(q))
    q = q / n if n > 0 else q
    return -q if q[0] < 0 else q


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = (float(x) for x in a)
    bw, bx, by, bz = (float(x) for x in b)
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_from_matrix(m: np.ndarray) -> np.ndarray:
    """Rotation matrix -> canonical quaternion (w, x, y, z), Shepperd's method."""
    r = m
    tr = r[0, 0] + r[1, 1] + r[2, 2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    return canonical(np.array(q, dtype=np.float64))


def block_pose(positions: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The block's position and orientation from its 8 LEDs (rigid least squares, Kabsch): the
    visible ones when 3 or more are, else all (an occluded marker keeps its last position)."""
    use = visible.astype(bool)
    if use.sum() < 3:
        use = np.ones_like(use)
    p, q = positions[use], BLOCK_MARKER_OFFSETS[use]
    pc, qc = p.mean(axis=0), q.mean(axis=0)
    u, _, vt = np.linalg.svd((q - qc).T @ (p - pc))
    r = vt.T @ u.T
    if np.linalg.det(r) < 0:  # a reflection: flip the axis of the smallest singular value
        vt[2] *= -1.0
        r = vt.T @ u.T
    return pc - r @ qc, quat_from_matrix(r)
