"""One episode of a job on the robot, through the same path as `raas run`: a control session
with the job's lease, the cell reset for the episode, the bundle uploaded, `run(1, seed + index)`,
the run's events followed until it ends, the session closed and its recording fetched.

A job that names a policy server instead of a bundle: after the reset the session sends
`serve` with `dial` (the job's policy server), `episode: true` and `seed: seed + index`; the
daemon ends serving by itself when the cell's task ends the episode, and its `serve_done`
summary carries the episode's record as a bundle run's `run_done` does. A policy server that
sends no chunk within `first_chunk_s` (down, unreachable, or not admitting this robot's key)
ends the episode `no_server` (no result: the job fails; it is the researcher's server, not the
cell); a `bad_dial` refusal ends it `refused`.

Each episode is its own session, so its recording is its own file. How the episode ended
(`EpisodeOutcome.ended`):

    done     the task ended it (a success count, a drop, a goal timeout): a result
    held     a safety stop caused by the policy (non-finite action, ...) ended it: a result,
             recorded as held with the reason, as `raasd eval` does
    estop    an e-stop (or another latched fault: `fault`) stopped it: no result, the job is
             interrupted and requeued (the fault is the cell's, not the policy's)
    refused  the robot could not load the bundle, or refused the policy server (`bad_dial`):
             the job fails (it would fail anywhere)
    no_server  the policy server sent no chunk within first_chunk_s: no result, the job fails
    stopped  the worker stopped it (cancel, the hold ends, the attempt went stale): no result
    closed   the session was closed by the robot (lease revoked or expired): no result
    timeout  no end within the episode timeout: stopped, no result
    lost     the daemon stopped answering: no result, the job is interrupted
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raas_client.errors import RaasClientError, RemoteError, RobotTimeoutError
from raas_client.session import RemoteRobot
from raas_client.wire import Msg

from raas.fleet.reset import EpisodeStart, Resetter, retry_busy

#: Every this often while an episode runs the worker asks the daemon its status: a daemon that
#: does not answer within STATUS_TIMEOUT_S is gone.
STATUS_EVERY_S = 2.0
STATUS_TIMEOUT_S = 5.0


@dataclass(slots=True)
class EpisodeOutcome:
    index: int
    ended: str
    message: str = ""
    record: dict[str, Any] | None = None  # the episode's record from the run's summary
    summary: dict[str, Any] | None = None
    reset: str = ""  # how the cell was reset: scene | hook | staff | none
    session: str = ""
    recording: Path | None = None
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def is_result(self) -> bool:
        return self.ended in ("done", "held") and self.record is not None

    def result(self, recording_sha256: str | None) -> dict[str, Any]:
        """The body of the episode's post to the service (its EpisodeReport): the episode's
        record from the run's summary, where the time went, the recording and the session."""
        rec = self.record or {}
        held = rec.get("reason") == "held"
        return {
            "index": self.index,
            "successes": int(rec.get("successes", 0)),
            "end_reason": str(rec.get("reason", "")),
            "cycles": int(rec.get("cycles", 0)),
            "seconds": float(rec.get("seconds", 0.0)),
            "seconds_per_goal": [float(x) for x in rec.get("seconds_per_goal", [])],
            "safety_stop": held,
            "safety_reason": str(rec.get("safety_reason", "")) if held else "",
            "safety_detail": str(rec.get("safety_detail", ""))[:2000] if held else "",
            "timing": {k: round(v, 6) for k, v in self.timing.items()},
            "recording_sha256": recording_sha256,
            "session_id": self.session,
        }


@dataclass(slots=True)
class EpisodeRun:
    """The fixed parts of a job's episodes on one robot."""

    endpoint: str
    server_key: str | None
    lease: str
    bundle: Path | None  # None: the job names a policy server
    seed: int
    robot: str
    job_id: int
    episodes: int
    resetter: Resetter
    work_dir: Path
    timeout_s: float = 900.0
    #: The job's policy server ({endpoint, server_key, horizon, blend}) instead of a bundle.
    policy_server: dict[str, Any] | None = None
    #: A policy server that sent no chunk this long after `serve`: the episode ends no_server.
    first_chunk_s: float = 60.0

    def serve_fields(self, index: int) -> dict[str, Any]:
        """`serve` for episode `index`: dial the job's policy server, one episode."""
        ps = self.policy_server or {}
        return {
            "horizon": int(ps.get("horizon") or 16),
            "blend": str(ps.get("blend") or "newest"),
            "dial": {"endpoint": ps.get("endpoint"), "server_key": ps.get("server_key")},
            "episode": True,
            "seed": self.seed + index,
        }


def run_episode(
    job: EpisodeRun, index: int, should_stop: Callable[[], str | None]
) -> EpisodeOutcome:
    """Run episode `index` (seed: job.seed + index); should_stop() returns why to stop early."""
    out = EpisodeOutcome(index, "lost")
    t0 = time.monotonic()
    robot = RemoteRobot(job.endpoint, server_key=job.server_key, lease=job.lease, timeout_s=5.0)
    try:
        out.session = str(robot.open("control")["session"])
        start = EpisodeStart(job.job_id, index, job.seed + index, job.robot)
        t = time.monotonic()
        out.reset = job.resetter(robot, start, required=job.episodes > 1)
        out.timing["reset_s"] = time.monotonic() - t
        if job.bundle is not None:
            t = time.monotonic()
            robot.upload(job.bundle)
            out.timing["upload_s"] = time.monotonic() - t
            retry_busy(robot, lambda: robot.run(1, job.seed + index))
            _follow(robot, out, job.timeout_s, should_stop)
        else:
            fields = job.serve_fields(index)
            try:
                retry_busy(robot, lambda: robot.request(Msg.SERVE, fields))
            except RemoteError as exc:
                if exc.code != "bad_dial":
                    raise
                out.ended, out.message = "refused", str(exc)
            else:
                _follow(robot, out, job.timeout_s, should_stop, first_chunk_s=job.first_chunk_s)
        ends = ("done", "held", "estop", "fault", "stopped", "timeout", "no_server", "refused")
        if out.ended in ends:
            robot.request("close", timeout_s=STATUS_TIMEOUT_S)
            robot.session = None
            if out.is_result:
                t = time.monotonic()
                out.recording = _fetch(robot, out.session, job.work_dir)
                out.timing["fetch_s"] = time.monotonic() - t
    except RobotTimeoutError as exc:
        out.ended, out.message = "lost", f"the robot daemon does not answer: {exc}"
    except RemoteError as exc:
        if exc.code in ("estopped", "fault"):
            out.ended, out.message = exc.code.replace("estopped", "estop"), str(exc)
        elif exc.code.startswith("lease_") or exc.code == "no_session":
            out.ended, out.message = "closed", str(exc)
        else:
            raise
    finally:
        robot.close()
        out.timing["total_s"] = time.monotonic() - t0
    return out


def _follow(
    robot: RemoteRobot,
    out: EpisodeOutcome,
    timeout_s: float,
    should_stop: Callable[[], str | None],
    first_chunk_s: float | None = None,
) -> None:
    """Follow the run's events until it ends (a served episode: until `serve_done`, with
    `first_chunk_s`); classify how (see the module docstring)."""
    deadline = time.monotonic() + timeout_s
    next_status = time.monotonic() + STATUS_EVERY_S
    started = time.monotonic()
    served = first_chunk_s is not None
    no_chunk_by = started + (first_chunk_s or 0.0)
    stop_reason: str | None = None
    while True:
        robot.heartbeat()
        for ev in robot.events(timeout_s=0.2):
            kind = ev.get("kind")
            if served and kind == "serve_done":
                out.timing["run_s"] = time.monotonic() - started
                _ended(robot, out, dict(ev), stop_reason)
                return
            if kind == "run_started":
                started = time.monotonic()
                out.timing["load_s"] = float(ev.get("load_s", 0.0))
            elif kind == "run_failed":
                out.ended, out.message = "refused", str(ev.get("message"))
                _latched(robot, out)  # an e-stop while the bundle loaded is not the bundle's fault
                return
            elif kind == "session_closed":
                out.ended, out.message = "closed", f"session closed: {ev.get('reason')}"
                return
            elif kind == "run_done":
                out.timing["run_s"] = time.monotonic() - started
                _ended(robot, out, dict(ev.get("summary") or {}), stop_reason)
                return
        now = time.monotonic()
        if stop_reason is None:
            why = should_stop()
            if why is None and now >= deadline:
                why = f"the episode did not end within {timeout_s:g} s"
                out.ended = "timeout"
            if why is not None:
                stop_reason = why
                robot.request("stop", timeout_s=STATUS_TIMEOUT_S)  # the hand holds; run_done
                deadline = now + 30.0
        elif now >= deadline:
            raise RobotTimeoutError("no run_done (serve_done) after stop")
        if now >= next_status:
            st = robot.request("status", timeout_s=STATUS_TIMEOUT_S)  # a dead daemon times out
            next_status = now + STATUS_EVERY_S
            chunks = int((st.get("serve") or {}).get("chunks") or 0)
            if served and stop_reason is None and chunks == 0 and now >= no_chunk_by:
                stop_reason = (
                    f"the policy server sent no chunk within {first_chunk_s:g} s (is it up at "
                    "that address, and does it admit this robot's key?)"
                )
                out.ended = "no_server"
                robot.request("stop", timeout_s=STATUS_TIMEOUT_S)  # the hand holds; serve_done
                deadline = now + 30.0


def _latched(robot: RemoteRobot, out: EpisodeOutcome) -> bool:
    """Is a fault latched on the robot (an e-stop, a lost device)? Then that is how the episode
    ended: not the policy's or the bundle's doing, so it runs again after a requeue."""
    safety = robot.status().get("safety") or {}
    if safety.get("state") != "fault":
        return False
    est = safety.get("reason") == "estop"
    out.ended = "estop" if est else "fault"
    out.message = f"{'e-stop' if est else 'fault'} ({safety.get('reason')}): {out.message}"
    out.record = None
    return True


def _ended(
    robot: RemoteRobot, out: EpisodeOutcome, summary: dict[str, Any], stop_reason: str | None
) -> None:
    out.summary = summary
    records = summary.get("episodes") or []
    out.record = dict(records[0]) if records else None
    out.message = f"the run ended: {summary.get('reason')}"
    if _latched(robot, out):
        return
    if stop_reason is not None:
        out.ended = out.ended if out.ended in ("timeout", "no_server") else "stopped"
        out.message = stop_reason
        out.record = None
    elif out.record is None:
        out.ended, out.message = "stopped", f"the run ended without an episode: {summary}"
    else:
        out.ended = "held" if out.record.get("reason") == "held" else "done"


def _fetch(robot: RemoteRobot, session: str, work_dir: Path) -> Path | None:
    """The session's recording (observe session, same lease), or None when there is none."""
    work_dir.mkdir(parents=True, exist_ok=True)
    robot.open("observe")
    try:
        for _ in range(40):  # the recorder finishes the file off the loop: give it a moment
            try:
                return robot.fetch_recording(session, work_dir)
            except RemoteError as exc:
                if exc.code not in ("not_found", "busy"):
                    raise
            time.sleep(0.25)
            robot.heartbeat()
        return None
    finally:
        with contextlib.suppress(RaasClientError):
            robot.request("close", timeout_s=STATUS_TIMEOUT_S)
        robot.session = None
