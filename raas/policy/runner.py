"""The policy runner: a validated bundle, warmed-up onnxruntime sessions, the per-cycle path.

load_bundle() validates the manifest against the model and the cell, builds the sessions,
warms them up and measures the latency, refusing a bundle whose p99 exceeds the inference
budget. PolicyRunner.act() is what a controller calls every cycle: observation -> normalised
input -> (vision) -> policy -> targets, with the recurrent state carried to the next cycle.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from raas.core.observation import Observation
from raas.core.timing import percentiles_us
from raas.policy.bundle import OpenedBundle, open_bundle
from raas.policy.cell import CellSpec, marker_rows
from raas.policy.errors import CellMismatchError, ModelMismatchError, OverBudgetError
from raas.policy.features import ActionDecoder, ObjectPose, ObservationAssembler
from raas.policy.keys import KEYS
from raas.policy.manifest import BundleManifest
from raas.policy.pose import MarkerPose, canonical
from raas.policy.session import BoundSession, RuntimeOptions, TensorInfo, describe, open_session

_LATENCY_RING = 1 << 18
_FLOATS = (np.float32, np.float64)
#: what the refusal of another element type says (float16 and bfloat16 included: export the
#: policy in float32, e.g. `model.float()` before torch.onnx.export)
_ACCEPTED = "float32 or float64 (ONNX tensor(float) or tensor(double))"


def _not_float(what: str, dtype: type[np.generic]) -> str:
    return (
        f"{what} is {np.dtype(dtype).name}; it must be {_ACCEPTED}: export the policy in "
        "float32 (e.g. model.float() before torch.onnx.export)"
    )


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


def _check_policy_io(
    m: BundleManifest, ins: dict[str, TensorInfo], outs: dict[str, TensorInfo]
) -> None:
    obs = m.observation
    declared = {obs.input: "observation.input"}
    declared.update({s.input: f"state.{i}.input" for i, s in enumerate(m.state)})
    for name, field in declared.items():
        if name not in ins:
            raise ModelMismatchError(
                field, f"the model has no input {name!r} (it has {', '.join(ins) or 'none'})"
            )
    for name in ins:
        if name not in declared:
            raise ModelMismatchError(
                "observation.input",
                f"the model's input {name!r} is not declared in the manifest (declare it as "
                "observation.input or as a state input)",
            )
    oi = ins[obs.input]
    if oi.dtype not in _FLOATS:
        raise ModelMismatchError("observation.input", _not_float(repr(obs.input), oi.dtype))
    if _numel(oi.shape) != obs.size:
        raise ModelMismatchError(
            "observation.fields",
            f"the fields give {obs.size} values but the model's input {obs.input!r} has shape "
            f"{list(oi.declared)} ({_numel(oi.shape)} values at batch 1)",
        )
    act = m.action
    if act.output not in outs:
        raise ModelMismatchError(
            "action.output",
            f"the model has no output {act.output!r} (it has {', '.join(outs) or 'none'})",
        )
    if act.chunk is not None:
        raise ModelMismatchError(
            "action.chunk",
            f"the model outputs chunks of {act.chunk} actions: serve it from your machine as a "
            "policy server (raas serve-policy BUNDLE --robot ROBOT); the robot's loop runs "
            "one action per cycle",
        )
    ao = outs[act.output]
    if ao.dtype not in _FLOATS:
        raise ModelMismatchError("action.output", _not_float(repr(act.output), ao.dtype))
    if _numel(ao.shape) != act.output_size:
        field, message = _action_size_fault(act.actuators, act.bins, ao)
        raise ModelMismatchError(field, message)
    for i, s in enumerate(m.state):
        if s.output not in outs:
            raise ModelMismatchError(f"state.{i}.output", f"the model has no output {s.output!r}")
        si, so = ins[s.input], outs[s.output]
        if si.dtype not in _FLOATS or so.dtype != si.dtype:
            raise ModelMismatchError(
                f"state.{i}",
                f"{s.input!r} is {np.dtype(si.dtype).name} and {s.output!r} "
                f"{np.dtype(so.dtype).name}; both must be the same type, {_ACCEPTED}",
            )
        if si.shape != so.shape:
            raise ModelMismatchError(
                f"state.{i}",
                f"input {s.input!r} {list(si.declared)} and output {s.output!r} "
                f"{list(so.declared)} differ in shape",
            )
        if s.shape is not None and tuple(s.shape) != si.shape:
            raise ModelMismatchError(
                f"state.{i}.shape",
                f"manifest says {s.shape}, the model's {s.input!r} is {list(si.declared)}",
            )


def _some(names: list[str], n: int = 4) -> str:
    more = len(names) - n
    return ", ".join(names[:n]) + (f" and {more} more" if more > 0 else "")


def _check_hand(m: BundleManifest, cell: CellSpec) -> None:
    """The bundle's hand must be the cell's: model, actuators, and the hand-sized keys."""
    unknown = [a for a in m.action.actuators if a not in cell.actuator_names]
    if m.hand.model != cell.hand_model:
        what = f"{len(m.action.actuators)} actuators"
        if unknown:
            what += f", {len(unknown)} of them unknown to this hand ({_some(unknown)})"
        raise CellMismatchError(
            "hand.model",
            f"the bundle was made for the hand {m.hand.model!r} ({what}); the cell's hand is "
            f"{cell.hand_model!r} with {len(cell.actuator_names)} actuators "
            f"({_some(list(cell.actuator_names))})",
        )
    if unknown:
        raise CellMismatchError(
            "action.actuators",
            f"the cell's hand {cell.hand_model!r} has no actuator {', '.join(unknown)}",
        )
    sizes = {"joints": len(cell.joint_names), "actuators": len(cell.actuator_names)}
    for i, f in enumerate(m.observation.fields):
        key = KEYS[f.key]
        if key.hand_sized is not None and f.shape[0] != sizes[key.hand_sized]:
            raise CellMismatchError(
                f"observation.fields.{i}.shape",
                f"{f.key!r} has {f.shape[0]} values in the bundle but the cell's hand "
                f"{cell.hand_model!r} has {sizes[key.hand_sized]} {key.hand_sized}",
            )


def _action_size_fault(actuators: list[str], bins: int | None, ao: TensorInfo) -> tuple[str, str]:
    """Which manifest field disagrees with the output's size: the actuator count, or (for a
    discrete policy) the bins. The output's last dimension tells them apart when it can: a
    [1, 20, 11] output with 19 actuators declared is a wrong actuator list, not wrong bins."""
    n, na = _numel(ao.shape), len(actuators)
    has = f"the model's output {ao.name!r} has shape {list(ao.declared)} ({n} values"
    if bins is None:
        return "action.actuators", (
            f"{na} actuators listed (one value each) but {has}, for {n} actuators)"
        )
    last = ao.shape[-1] if ao.shape else 1
    if n % bins == 0 and (last == bins or n % na != 0):
        return "action.actuators", (
            f"{na} actuators listed x {bins} bins = {na * bins} values, but {has} = "
            f"{n // bins} actuators x {bins} bins)"
        )
    per = f" = {na} actuators x {n // na} values each" if n % na == 0 else ""
    return "action.bins", (
        f"bins is {bins}: {na} actuators x {bins} = {na * bins} values, but {has}{per})"
    )


def _check_cell(m: BundleManifest, cell: CellSpec, period_s: float) -> None:
    if abs(m.control_period_s - period_s) > 0.01 * period_s:
        raise CellMismatchError(
            "control_period_s",
            f"the policy was trained for {m.control_period_s * 1e3:g} ms but the loop runs "
            f"every {period_s * 1e3:g} ms ({1 / period_s:g} Hz); run the cell at "
            f"{1 / m.control_period_s:g} Hz",
        )
    _check_hand(m, cell)
    if m.vision is not None:
        v = m.vision
        missing = [c for c in v.cameras if c not in cell.cameras]
        if missing:
            raise CellMismatchError(
                "vision.cameras",
                f"the cell has no camera {', '.join(missing)} (it has "
                f"{', '.join(cell.cameras) or 'none'})",
            )
        if (v.image_width, v.image_height) != (cell.camera_width, cell.camera_height):
            raise CellMismatchError(
                "vision.image_width",
                f"{v.image_width}x{v.image_height} but the cell's cameras give "
                f"{cell.camera_width}x{cell.camera_height}",
            )


class _Vision:
    def __init__(self, bundle: OpenedBundle, opts: RuntimeOptions) -> None:
        v = bundle.manifest.vision
        assert v is not None
        session = open_session(bundle.file(v.model, "vision.model"), opts, "vision.model")
        ins, outs = describe(session, "vision.model")
        for cam, name in v.cameras.items():
            info = ins.get(name)
            field = f"vision.cameras.{cam}"
            if info is None:
                raise ModelMismatchError(field, f"the vision model has no input {name!r}")
            want = (1, 3, v.image_height, v.image_width)
            if info.shape != want or info.dtype != np.float32:
                raise ModelMismatchError(
                    field,
                    f"input {name!r} is {list(info.declared)} {np.dtype(info.dtype).name}; "
                    f"expected float32 {list(want)} (NCHW)",
                )
        extra = set(ins) - set(v.cameras.values())
        if extra:
            raise ModelMismatchError(
                "vision.cameras", f"vision model inputs {sorted(extra)} are not mapped to cameras"
            )
        if v.output not in outs or _numel(outs[v.output].shape) != 7:
            raise ModelMismatchError(
                "vision.output", f"the vision model needs an output {v.output!r} of 7 values"
            )
        self.session = BoundSession(session, list(ins.values()), list(outs.values()), {})
        self.cameras = dict(v.cameras)
        self.pose = self.session.outputs[v.output].reshape(-1)

    def fill(self, obs: Observation) -> bool:
        for cam, name in self.cameras.items():
            frame = obs.camera(cam)
            if frame is None:
                return False
            dst = self.session.inputs[name][0]
            np.multiply(frame.image.transpose(2, 0, 1), 1.0 / 255.0, out=dst, casting="unsafe")
        return True


class PolicyRunner:
    """A loaded bundle, ready to run one cycle at a time. Build it with load_bundle()."""

    def __init__(
        self,
        bundle: OpenedBundle,
        *,
        period_s: float,
        budget_ns: int,
        cell: CellSpec,
        options: RuntimeOptions,
    ) -> None:
        m = bundle.manifest
        self.manifest = m
        self.bundle_hash = bundle.sha256
        self.period_s = period_s
        self.budget_ns = budget_ns
        self.cell = cell
        self.options = options
        session = open_session(bundle.file(m.model, "model"), options, "model")
        ins, outs = describe(session, "model")
        _check_policy_io(m, ins, outs)
        self.policy = BoundSession(
            session, list(ins.values()), list(outs.values()), {s.input: s.output for s in m.state}
        )
        self.provider = self.policy.provider
        self.vision = _Vision(bundle, options) if m.vision is not None else None
        self.assembler = ObservationAssembler(m.observation, cell)
        self.decoder = ActionDecoder(m.action, cell)
        self.obs_input = self.policy.inputs[m.observation.input]
        self.action_output = self.policy.outputs[m.action.output]
        self.initial_state = {s.input: s.initial for s in m.state}
        self.markers = MarkerPose(cell.block_marker_offsets)
        self._last_obs: Observation | None = None  # what prepare() warms the pose fit on
        self.block_rows: np.ndarray | None = cell.rows(cell.block_markers)
        self.pose = ObjectPose()
        if self.vision is None:  # the fit writes the pose: the same arrays, no copy per cycle
            self.pose.position = self.markers.position
            self.pose.orientation = self.markers.orientation
        self._action_flat = self.action_output.reshape(-1)  # a view: the buffer is bound
        self._action_zeros = np.zeros_like(self._action_flat)
        self.needs = self._needs()
        # counters (whole run) and the inference latency ring
        self.cycles = 0
        self.overruns = 0
        self.nonfinite = 0
        self.missing = 0
        self.state_resets = 0
        self.prepared = 0
        self.background_warmups = 0
        self.warmups_skipped = 0
        #: the last act() ran over its budget (realtime): no warm-ups until one fits again
        self.last_overran = False
        self.last_missing: str | None = None
        self._lat = np.zeros(_LATENCY_RING, dtype=np.int64)  # vision + policy run
        self._act = np.zeros(_LATENCY_RING, dtype=np.int64)  # the whole act()
        self._n_lat = 0
        self.load_latency_us: dict[str, float] = {}
        self.reset()

    # ------------------------------------------------------------------ set-up
    def _needs(self) -> frozenset[str]:
        needs = {"hand"}
        for f in self.manifest.observation.fields:
            for src in KEYS[f.key].sources:
                if src == "object":
                    if self.manifest.vision is not None:
                        needs |= {f"cameras.{c}" for c in self.manifest.vision.cameras}
                    else:
                        needs.add("mocap")
                else:
                    needs.add(src)
        return frozenset(needs)

    def bind_markers(self, names: Sequence[str]) -> None:
        """The cell is up and its motion capture has these rows (in this order): find the
        fingertip and block rows the policy reads by name. Raises ConfigError (mocap.markers)
        when one the policy needs is not there."""
        keys = {f.key for f in self.manifest.observation.fields}
        who = f"policy {self.manifest.name}"
        if "fingertip_positions" in keys:
            self.assembler.fingertip_rows = marker_rows(
                names, self.cell.fingertip_markers, f"{who} (fingertip_positions)"
            )
        object_keys = {k for k in keys if "object" in KEYS[k].sources}
        if self.vision is None and object_keys:
            self.block_rows = marker_rows(
                names, self.cell.block_markers, f"{who} ({', '.join(sorted(object_keys))})"
            )
        elif self.vision is None:
            self.block_rows = None  # the policy reads no object pose from mocap

    def reset(self) -> None:
        """Start of an episode: initial recurrent state, idle previous action, no pose yet."""
        self.policy.set_state(self.initial_state)
        self.decoder.reset()
        self.pose.valid = False
        self.last_overran = False

    def measure(self, warmup: int = 30, runs: int = 200) -> dict[str, float]:
        """Warm the sessions up and time `runs` inferences (zeros in); the state is reset
        afterwards. Returns p50/p99/p99.9/max in us."""
        lat = np.zeros(runs, dtype=np.int64)
        for i in range(warmup + runs):
            t0 = time.perf_counter_ns()
            if self.vision is not None:
                self.vision.session.run()
            self.policy.run()
            if i >= warmup:
                lat[i - warmup] = time.perf_counter_ns() - t0
        self.reset()
        self.load_latency_us = percentiles_us(lat)
        return self.load_latency_us

    # ------------------------------------------------------------------ per cycle
    def prepare(self) -> None:
        """Just before the inference (the loop calls it around the trigger): options.warmup_runs
        inferences on scratch buffers (the recurrent state, the outputs and the counters do
        not change), so that act() runs with warm caches instead of after the 80 ms in which
        the rest of the machine evicted them.

        Not after a cycle whose inference overran its budget: warm-ups make a fast inference
        faster, but a policy already too slow would only stretch the cycle by warmup_runs more
        of its inferences (a 75 ms policy made 300 ms cycles, and the hand's 500 ms firmware
        watchdog tripped); counted in `warmups_skipped`."""
        if self.last_overran:
            self.warmups_skipped += 1
            return
        for _ in range(self.options.warmup_runs):
            if self.vision is not None:
                self.vision.session.warm()
            self.policy.warm()
        if self._last_obs is not None:
            # the block's pose fit (Horn's method: ~4 us warm, much more cold) on the last cycle's
            # markers: act() computes the pose afresh from its own observation
            self._object_pose(self._last_obs)
        self.prepared += 1

    def warm_background(self) -> None:
        """One warm-up inference (and the vision model's) on scratch buffers, from the loop's
        warm-up helper thread while the loop waits for the devices (raas/core/background_warmup.py).
        Thread-safe beside act(): it reads the inputs act() writes and writes only scratch
        outputs; onnxruntime's run may run on two threads at once."""
        if self.vision is not None:
            self.vision.session.warm()
        self.policy.warm()
        self.background_warmups += 1

    def _object_pose(self, obs: Observation) -> bool:
        if self.vision is not None:
            p = self.vision.pose
            self.pose.position[:] = p[:3]
            self.pose.orientation[:] = p[3:7]
            if not np.isfinite(self.vision.pose).all() or not np.any(self.pose.orientation):
                self.pose.valid = False
                return False
            canonical(self.pose.orientation)
            self.pose.valid = True
            return True
        m = obs.mocap
        rows = self.block_rows
        if m is None or rows is None:
            return False
        self.markers.update_rows(m.positions, m.visible, rows)  # into self.pose's arrays
        self.pose.valid = True
        return True

    def act(self, obs: Observation, out: np.ndarray) -> bool:
        """One cycle: write 20 targets (rad) into `out`; False gives the loop's fallback
        (observation not available, inference over budget, non-finite output)."""
        self.cycles += 1
        t0 = time.perf_counter_ns()
        self._last_obs = obs
        if self.vision is not None:
            if not self.vision.fill(obs):
                self.missing += 1
                self.last_missing = "cameras"
                return False
            self.vision.session.run()
            t_vision = time.perf_counter_ns() - t0
        else:
            t_vision = 0
        self._object_pose(obs)
        missing = self.assembler.fill(obs, self.pose, self.decoder.target, self.obs_input)
        if missing is not None:
            self.missing += 1
            self.last_missing = missing
            return False
        t1 = time.perf_counter_ns()
        self.policy.run()
        t2 = time.perf_counter_ns()
        i = self._n_lat % _LATENCY_RING
        self._lat[i] = t2 - t1 + t_vision
        self._n_lat += 1
        if not self._finite():
            self._act[i] = time.perf_counter_ns() - t0
            self.last_overran = bool(self._act[i] > self.budget_ns)
            self.nonfinite += 1
            for s in self.manifest.state:  # a NaN state would poison every later cycle
                if not np.isfinite(self.policy.state(s.input)).all():
                    self.policy.set_state({s.input: s.initial})
                    self.state_resets += 1
            # Handed on as NaN: the safety pipeline rejects it (the hand keeps its target) and
            # its non-finite watchdog stops the run when it persists.
            out.fill(np.nan)
            return True
        self.decoder.decode(self.action_output)
        out[:] = self.decoder.target
        dt = time.perf_counter_ns() - t0
        self._act[i] = dt
        self.last_overran = dt > self.budget_ns
        if self.last_overran:
            self.overruns += 1
            # a lockstep cycle is counted, not failed: its result must not depend on the machine
            return obs.lockstep
        return True

    def _finite(self) -> bool:
        """Whether every value of the action output is finite: the dot product with zeros is 0
        for finite values (of any size) and NaN when one is NaN or infinite (one BLAS call
        instead of np.isfinite's two; an infinity makes numpy warn "invalid value" once)."""
        return math.isfinite(self._action_flat.dot(self._action_zeros))

    # ------------------------------------------------------------------ figures
    @property
    def inferences(self) -> int:
        """Inferences run so far (cycles that reached the policy's run)."""
        return self._n_lat

    def latencies_ns(self) -> np.ndarray:
        """Inference times (vision + policy run) of the cycles so far (the last 2^18)."""
        n = min(self._n_lat, _LATENCY_RING)
        return self._lat[:n].copy()

    def decide_ns(self) -> np.ndarray:
        """Whole per-cycle times (observation in, targets out) of cycles that ran inference."""
        n = min(self._n_lat, _LATENCY_RING)
        return self._act[:n].copy()

    def stats(self) -> dict[str, Any]:
        return {
            "bundle": self.manifest.name,
            "bundle_sha256": self.bundle_hash,
            "execution_provider": self.provider,
            "intra_op_threads": self.options.intra_op_threads,
            "budget_us": self.budget_ns / 1e3,
            "load_latency_us": self.load_latency_us,
            "inference_latency_us": percentiles_us(self.latencies_ns()),
            "decide_latency_us": percentiles_us(self.decide_ns()),
            "cycles": self.cycles,
            "overruns": self.overruns,
            "nonfinite_outputs": self.nonfinite,
            "missing_observations": self.missing,
            "state_resets": self.state_resets,
            "warmups": self.prepared,
            "warmup_runs": self.options.warmup_runs,
            "background_warmups": self.background_warmups,
            "warmups_skipped": self.warmups_skipped,
            "object_pose_from": self.manifest.object_pose_source,
        }


def load_bundle(
    path: Path,
    *,
    period_s: float,
    budget_ms: float | None = None,
    cell: CellSpec | None = None,
    options: RuntimeOptions | None = None,
    measure_runs: int = 200,
) -> PolicyRunner:
    """Validate the bundle at `path`, build its sessions, warm up, measure the latency.

    budget_ms: the inference budget per cycle (default: half the period, as the loop's decide
    budget). Raises a BundleError subclass naming the field at fault; OverBudgetError when the
    measured p99 exceeds the budget."""
    budget_ms = budget_ms if budget_ms is not None else period_s * 1e3 / 2
    cell = cell if cell is not None else CellSpec()
    options = options if options is not None else RuntimeOptions()
    with open_bundle(Path(path)) as bundle:
        _check_cell(bundle.manifest, cell, period_s)
        runner = PolicyRunner(
            bundle,
            period_s=period_s,
            budget_ns=round(budget_ms * 1e6),
            cell=cell,
            options=options,
        )
    lat = runner.measure(runs=measure_runs)
    if lat["p99"] > budget_ms * 1e3:
        raise OverBudgetError(
            "budget_ms",
            f"inference p99 is {lat['p99'] / 1e3:.3f} ms (p50 {lat['p50'] / 1e3:.3f} ms) "
            f"over {measure_runs} runs, above the budget of {budget_ms:g} ms",
            p99_ms=lat["p99"] / 1e3,
            budget_ms=budget_ms,
        )
    return runner
