"""onnxruntime, tuned for one small inference per control cycle.

- Fixed thread counts (intra-op 1 by default: a single-step policy is too small to gain from
  splitting, and the rig and the loop need the other core), sequential execution, every graph
  optimisation (ORT_ENABLE_ALL), no thread spinning.
- Inputs and outputs are preallocated numpy arrays bound once with IOBinding, so a cycle
  allocates nothing and copies nothing: the caller writes the observation into `inputs[...]`,
  calls `run()`, reads `outputs[...]`.
- Recurrent state ping-pongs between two buffers: the state output of cycle k is bound as the
  state input of cycle k+1 (two bindings, used alternately), so carrying it costs no copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from raas.policy.errors import ModelLoadError, ModelMismatchError

_DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # concrete: symbolic (batch) dimensions resolved to 1
    declared: tuple[int | str | None, ...]  # as the model declares it
    dtype: type[np.generic]


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    #: inferences on scratch buffers per prepare() (the loop's warm-up before an inference):
    #: after 80 ms idle one brings the next run to ~1.9x the hot-loop time, three to ~1.1x
    warmup_runs: int = 3


def session_options(opts: RuntimeOptions) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = opts.intra_op_threads
    so.inter_op_num_threads = opts.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def open_session(path: Path, opts: RuntimeOptions, field: str) -> ort.InferenceSession:
    available = set(ort.get_available_providers())
    providers = [p for p in opts.providers if p in available] or ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), session_options(opts), providers=providers)
    except Exception as exc:  # onnxruntime raises several private exception types
        raise ModelLoadError(field, f"onnxruntime cannot load {path.name}: {exc}") from None


def _info(arg: Any, kind: str, field: str) -> TensorInfo:
    dtype = _DTYPES.get(arg.type)
    if dtype is None:
        raise ModelMismatchError(
            field,
            f"{kind} {arg.name!r} has unsupported type {arg.type} (a policy's observation, "
            "action and state are tensor(float) or tensor(double): float32 or float64)",
        )
    declared = tuple(arg.shape)
    concrete = tuple(d if isinstance(d, int) and d > 0 else 1 for d in declared)
    return TensorInfo(arg.name, concrete, declared, dtype)


def describe(session: ort.InferenceSession, field: str) -> tuple[dict[str, TensorInfo], ...]:
    ins = {a.name: _info(a, "input", field) for a in session.get_inputs()}
    outs = {a.name: _info(a, "output", field) for a in session.get_outputs()}
    return ins, outs


class BoundSession:
    """One session with preallocated, bound inputs/outputs and ping-ponged state pairs."""

    def __init__(
        self,
        session: ort.InferenceSession,
        inputs: Sequence[TensorInfo],
        outputs: Sequence[TensorInfo],
        state_pairs: Mapping[str, str],  # state input name -> state output name
    ) -> None:
        self.session = session
        self.provider: str = session.get_providers()[0]
        self.inputs: dict[str, np.ndarray] = {}
        self.outputs: dict[str, np.ndarray] = {}
        self.state_pairs = dict(state_pairs)
        out_by_name = {o.name: o for o in outputs}
        # state buffers: [a, b]; binding 0 reads a writes b, binding 1 reads b writes a
        self._state: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for i in inputs:
            if i.name in self.state_pairs:
                a = np.zeros(i.shape, dtype=i.dtype)
                self._state[i.name] = (a, np.zeros_like(a))
            else:
                self.inputs[i.name] = np.zeros(i.shape, dtype=i.dtype)
        for o in outputs:
            if o.name not in self.state_pairs.values():
                self.outputs[o.name] = np.zeros(o.shape, dtype=o.dtype)
        self._bindings = [self._bind(p, out_by_name) for p in (0, 1)]
        self._phase = 0
        # warm-up: reads the current inputs and state, writes only scratch buffers
        self._scratch = [np.zeros_like(self._state[s][0]) for s in self.state_pairs] + [
            np.zeros_like(a) for a in self.outputs.values()
        ]
        self._warm = [self._bind_warm(p) for p in (0, 1)]

    def _bind(self, phase: int, out_by_name: Mapping[str, TensorInfo]) -> Any:
        b = self.session.io_binding()
        for name, arr in self.inputs.items():
            b.bind_input(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)
        for name, arr in self.outputs.items():
            b.bind_output(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)
        for sin, sout in self.state_pairs.items():
            src, dst = self._state[sin][phase], self._state[sin][1 - phase]
            if dst.shape != out_by_name[sout].shape:
                raise ModelMismatchError(
                    f"state output {sout!r}",
                    f"shape {list(out_by_name[sout].shape)} differs from its input "
                    f"{sin!r} {list(src.shape)}",
                )
            b.bind_input(sin, "cpu", 0, src.dtype, list(src.shape), src.ctypes.data)
            b.bind_output(sout, "cpu", 0, dst.dtype, list(dst.shape), dst.ctypes.data)
        return b

    def _bind_warm(self, phase: int) -> Any:
        b = self.session.io_binding()
        scratch = iter(self._scratch)
        for name, arr in self.inputs.items():
            b.bind_input(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)
        for sin, sout in self.state_pairs.items():
            src, dst = self._state[sin][phase], next(scratch)
            b.bind_input(sin, "cpu", 0, src.dtype, list(src.shape), src.ctypes.data)
            b.bind_output(sout, "cpu", 0, dst.dtype, list(dst.shape), dst.ctypes.data)
        for name in self.outputs:
            dst = next(scratch)
            b.bind_output(name, "cpu", 0, dst.dtype, list(dst.shape), dst.ctypes.data)
        return b

    def state(self, name: str) -> np.ndarray:
        """The state the next run() reads for state input `name` (what the last one wrote)."""
        return self._state[name][self._phase]

    def set_state(self, values: Mapping[str, float]) -> None:
        for name, v in values.items():
            self._state[name][self._phase].fill(v)

    def run(self) -> None:
        self.session.run_with_iobinding(self._bindings[self._phase])
        if self._state:
            self._phase ^= 1

    def warm(self) -> None:
        """Run once on the current inputs and state, writing only scratch buffers: the next
        run() finds the weights and code in the caches, and the state, the outputs and the
        phase are exactly as before."""
        self.session.run_with_iobinding(self._warm[self._phase])
