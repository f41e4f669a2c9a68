"""Bundle runs (mode `policy`): `upload_begin/chunk/end` write a bundle to `upload_dir` in order,
size-limited and hashed as it goes; `run` ends the loop segment at the cycle boundary, the daemon
loads the bundle between segments (raas/transport/serve.py) and `start` hands the new segment's
cycles to the bundle's controller until it is done, stopped, or the supervisor stops it.
docs/protocol.md, Policy runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from raas_client.wire import ErrorCode

from raas.core.controller import Controller
from raas.core.observation import Observation
from raas.safety import Cause, Reason, SafetyState, Transition
from raas.transport.errors import RequestRefusedError
from raas.transport.uploads import Upload

if TYPE_CHECKING:
    from raas.transport.session import SessionController


@dataclass(slots=True)
class RunRequest:
    bundle: Path
    sha256: str
    episodes: int
    seed: int


class BundleRun:
    """The `policy` mode of a SessionController (raas.transport.modes.ControlMode), and the
    uploads that feed it."""

    name = "policy"

    def __init__(self, host: SessionController) -> None:
        self.host = host
        self.upload: Upload | None = None
        self.bundle: tuple[Path, str] | None = None
        self.pending: RunRequest | None = None
        self.policy: Controller | None = None
        self.done: Callable[[], bool] | None = None
        self.summary: Callable[[], Mapping[str, Any]] | None = None

    # ---------------------------------------------------------------- ControlMode
    def prepare(self) -> None:
        """The policy's warm-up inferences (PolicyController.prepare), before the trigger."""
        warm = getattr(self.policy, "prepare", None)
        if warm is not None:
            warm()

    def background_warmup(self) -> Callable[[], object] | None:
        """The policy's warm-up for the loop's helper thread (PolicyController's)."""
        what: Callable[[], Callable[[], object] | None] | None = getattr(
            self.policy, "background_warmup", None
        )
        return what() if what is not None else None

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        assert self.policy is not None
        ok = self.policy.decide(obs, out)
        if self.done is not None and self.done():
            self.finish("done")
        if ok:
            self.host.hold[:] = out
        return ok

    def stopped(self, t: Transition) -> None:
        """A stop while a policy runs ends the run (unless the policy itself caused it)."""
        if self.policy is not None and t.cause is not Cause.POLICY:
            self.finish(f"{t.after.label}: {t.reason.value}")

    def end(self, reason: str) -> None:
        if self.host.mode == "policy":
            self.finish(reason)

    # ---------------------------------------------------------------- uploads
    def begin_upload(self, h: dict[str, Any]) -> dict[str, Any]:
        cfg = self.host.cfg
        if self.upload is not None:
            self.upload.abort()
        self.upload = Upload(
            cfg.upload_dir, h.get("name"), h.get("size"), h.get("sha256"), cfg.max_upload_bytes
        )
        return {"chunk_bytes": min(cfg.max_chunk_bytes, 256 * 1024)}

    def chunk(self, h: dict[str, Any], data: np.ndarray | None) -> dict[str, Any]:
        most = self.host.cfg.max_chunk_bytes
        if self.upload is None or data is None or data.dtype != np.uint8:
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, "upload_chunk needs an open upload and data"
            )
        if data.nbytes > most:
            raise RequestRefusedError(ErrorCode.TOO_LARGE, f"chunks are at most {most}")
        try:
            self.upload.chunk(h.get("offset"), data.data.cast("B"))
        except RequestRefusedError:
            self.upload.abort()
            self.upload = None
            raise
        return {"received": self.upload.received}

    def end_upload(self) -> dict[str, Any]:
        up, self.upload = self.upload, None
        if up is None:
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "no upload in progress")
        self.bundle = (up.finish(), up.sha256)
        return {"sha256": up.sha256, "size": up.size}

    def abort_upload(self) -> None:
        if self.upload is not None:
            self.upload.abort()
            self.upload = None

    # ---------------------------------------------------------------- runs
    def request(self, h: dict[str, Any]) -> dict[str, Any]:
        """`run`: end the loop segment; the bundle loads between segments."""
        host = self.host
        sup = host.supervisor
        if sup.state is SafetyState.FAULT:
            code = ErrorCode.ESTOPPED if host.estopped else ErrorCode.FAULT
            raise RequestRefusedError(code, f"a {sup.reason.value} fault is latched")
        if self.bundle is None:
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "upload a bundle first")
        episodes, seed = h.get("episodes", 1), h.get("seed", 0)
        if not (isinstance(episodes, int) and 1 <= episodes <= 100_000 and isinstance(seed, int)):
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, "episodes must be 1..100000 and seed an integer"
            )
        if host.on_segment_end is None:
            raise RequestRefusedError(ErrorCode.UNAVAILABLE, "this daemon cannot run bundles")
        self.pending = RunRequest(self.bundle[0], self.bundle[1], episodes, seed)
        host.mode = "hold"
        # The loop ends at this cycle's boundary; the bundle loads outside any cycle.
        host.on_segment_end("load bundle")
        return {"mode": "loading", "sha256": self.bundle[1]}

    def start(
        self,
        controller: Controller,
        done: Callable[[], bool],
        summary: Callable[[], Mapping[str, Any]],
    ) -> None:
        """Called between loop segments once the bundle is loaded."""
        host = self.host
        self.policy, self.done, self.summary = controller, done, summary
        host.needs = frozenset(controller.needs) | {"hand"}
        host.supervisor.needs = host.needs
        host.mode = "policy"
        host.supervisor.arm(Cause.POLICY, late_reason=Reason.INFERENCE_OVERRUN)

    def finish(self, reason: str) -> dict[str, Any]:
        host = self.host
        detach = getattr(self.policy, "detach", None)  # a controller following the supervisor
        if callable(detach):
            detach()
        summary = dict(self.summary()) if self.summary is not None else {}
        summary["reason"] = reason
        self.policy = self.done = self.summary = None
        host.mode = "hold"
        if reason == "done":
            host.supervisor.ramp_down(Cause.POLICY, Reason.RUN_DONE)
        host.run_event("run_done", {"summary": summary})
        return summary

    def fail(self, message: str) -> None:
        self.pending = None
        self.host.mode = "hold"
        self.host.run_event("run_failed", {"message": message})
