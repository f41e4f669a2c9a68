"""`raasd worker`: claim the next job this robot qualifies for, run its episodes one at a time on
the robot, report each, finish; again (docs/fleet.md, "The robot side: raasd worker").

While a job runs a heartbeat thread tells the service every HEARTBEAT_S that the attempt lives
and learns whether the job was cancelled and until when the robot is held (it shrinks when staff
book the robot meanwhile). The worker stops an episode safely (`stop`: the hand holds) and
finishes the attempt `interrupted` (the job is requeued with its finished episodes kept) when the
hold ends within the margin, the daemon stops answering, the robot is e-stopped or faulted, or
the worker is told to stop (SIGTERM, Ctrl-C). A cancelled job or a stale attempt (requeued after
the claim timeout) is left as the service has it: the worker stops and posts nothing more.
A bundle the robot cannot load fails the job (it would fail on any robot); so does a job of more
than one episode on a cell that cannot be reset between episodes (raas/fleet/reset.py).

A job that names a policy server (AutoEval: the researcher keeps a server up next to a big model,
the cell queries it) runs each episode as `serve` with `dial` and `episode: true`
(raas/fleet/episode.py). A policy server the robot refuses (`bad_dial`) fails the job; one that
sends no chunk within `first_chunk_s` fails it too (it is the researcher's server that is down,
not the cell: requeueing would only hold robots for nothing). One that stops answering mid-episode
leaves the hand held by the watchdog (`client_late`): that episode is a result, `held`, as a
bundle's overrun would be.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from raas.fleet.episode import EpisodeOutcome, EpisodeRun, run_episode
from raas.fleet.errors import (
    BundleMismatchError,
    FleetError,
    NoResetError,
    ResetFailedError,
    ServiceRefusedError,
    ServiceUnreachableError,
    StaleAttemptError,
)
from raas.fleet.reset import Resetter
from raas.fleet.service_client import Claim, ServiceClient

HEARTBEAT_S = 2.0
#: How long a post (episode, finish) is retried while the service does not answer; after that the
#: claim timeout requeues the job and the service keeps what it has.
POST_RETRY_S = 30.0

#: How an episode ended, in words (raas/task/reorientation.py has the rules).
_END_REASONS = {
    "dropped": "the block was dropped",
    "timeout": "a goal timeout",
    "max_successes": "the last success",
}


class CellNeedsStaffError(FleetError):
    """The cell's reset failed: the worker stops claiming until staff look at the cell."""


@dataclass(slots=True)
class WorkerOptions:
    cache_dir: Path
    work_dir: Path
    endpoint: str | None = None  # default: the claim's, else the robot's directory entry
    server_key: str | None = None
    claim_wait_s: float = 20.0
    heartbeat_s: float = HEARTBEAT_S
    hold_margin_s: float = 5.0
    episode_timeout_s: float = 900.0
    #: A job's policy server that sent no chunk this long after `serve` fails the job.
    first_chunk_s: float = 60.0
    once: bool = False
    idle_exit_s: float | None = None


@dataclass(slots=True)
class AttemptState:
    """What the heartbeat thread learns; read by the job's thread."""

    hold_until: float
    cancel: bool = False
    stale: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Heartbeats:
    def __init__(
        self,
        service: ServiceClient,
        claim: Claim,
        state: AttemptState,
        every_s: float,
        log: Callable[[str], None],
    ) -> None:
        self.service, self.claim, self.state, self.every_s, self.log = (
            service,
            claim,
            state,
            every_s,
            log,
        )
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="job heartbeat", daemon=True)

    def __enter__(self) -> Heartbeats:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()

    def beat_now(self) -> None:
        """One heartbeat now (after the robot closed the session: was the job cancelled, or the
        attempt requeued, or is the robot's trouble its own?)."""
        c, st = self.claim, self.state
        try:
            beat = self.service.heartbeat(c.job_id, c.attempt)
        except StaleAttemptError:
            with st.lock:
                st.stale = True
            return
        except (ServiceRefusedError, ServiceUnreachableError):
            return
        with st.lock:
            st.hold_until, st.cancel = beat.hold_until, beat.cancel

    def _run(self) -> None:
        c, st = self.claim, self.state
        unreachable = False
        while not self.stopping.wait(self.every_s):
            try:
                beat = self.service.heartbeat(c.job_id, c.attempt)
            except StaleAttemptError:
                with st.lock:
                    st.stale = True
                return
            except ServiceRefusedError as exc:
                self.log(f"job {c.job_id}: heartbeat refused ({exc}); stopping the job")
                with st.lock:
                    st.stale = True
                return
            except ServiceUnreachableError as exc:
                if not unreachable:
                    self.log(f"job {c.job_id}: the service does not answer heartbeats: {exc}")
                unreachable = True
                continue
            if unreachable:
                self.log(f"job {c.job_id}: the service answers heartbeats again")
                unreachable = False
            with st.lock:
                st.hold_until, st.cancel = beat.hold_until, beat.cancel


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S UTC")


class Worker:
    def __init__(
        self,
        service: ServiceClient,
        resetter: Resetter,
        options: WorkerOptions,
        log: Callable[[str], None],
    ) -> None:
        self.service = service
        self.resetter = resetter
        self.opts = options
        self.log = log
        self.stopping = threading.Event()  # SIGTERM / Ctrl-C: stop the job safely, then exit
        self.robot_name = ""
        self.jobs_run = 0
        self.busy = False  # a job is running (a signal then stops it safely, not at once)

    # ------------------------------------------------------------------ the claim loop
    def serve(self) -> int:
        """Claim and run jobs until --once ran one, --idle-exit passed without one, or stop();
        the exit code (0; 1 the service refused this robot; 3 the cell needs staff)."""
        idle_since = time.monotonic()
        backoff = 1.0
        while not self.stopping.is_set():
            wait = self.opts.claim_wait_s
            if self.opts.idle_exit_s is not None:
                left = self.opts.idle_exit_s - (time.monotonic() - idle_since)
                if left <= 0:
                    self.log(f"no job for {self.opts.idle_exit_s:g} s: exiting")
                    return 0
                wait = min(wait, left)
            try:
                claim = self.service.claim(wait_s=max(wait, 0.0))
            except ServiceUnreachableError as exc:
                self.log(f"the service does not answer ({exc}); again in {backoff:g} s")
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            except ServiceRefusedError as exc:
                self.log(f"the service refused this robot's claim: {exc}")
                return 1
            backoff = 1.0
            if claim is None:
                continue
            self.busy = True
            try:
                self.run_job(claim)
            except CellNeedsStaffError as exc:
                self.log(f"stopping: {exc}")
                return 3
            finally:
                self.busy = False
            self.jobs_run += 1
            idle_since = time.monotonic()
            if self.opts.once:
                return 0
        return 0

    def stop(self) -> None:
        self.stopping.set()

    # ------------------------------------------------------------------ one job
    def _target(self, claim: Claim) -> tuple[str, str | None]:
        if self.opts.endpoint is not None:
            return self.opts.endpoint, self.opts.server_key
        if claim.endpoint:
            return claim.endpoint, claim.server_key or self.opts.server_key
        entry = self.service.robot()
        endpoint = str(entry.get("control_endpoint") or "")
        if not endpoint:
            raise ServiceRefusedError(409, "no_endpoint", "the robot has no directory entry yet")
        return endpoint, str(entry.get("server_public_key") or "") or self.opts.server_key

    def _stop_reason(self, st: AttemptState, expected_s: float) -> str | None:
        with st.lock:
            if st.stale:
                return "the attempt is stale (the job was requeued)"
            if st.cancel:
                return "the job was cancelled"
            hold_until = st.hold_until
        if self.stopping.is_set():
            return "the worker is stopping"
        if time.time() + expected_s + self.opts.hold_margin_s >= hold_until:
            return f"the robot's hold for this job ends at {_clock(hold_until)}"
        return None

    def run_job(self, claim: Claim) -> str:
        """Run the claimed job's remaining episodes; the outcome (or 'abandoned' when the
        service no longer has this attempt: cancelled, stale)."""
        job = claim.job
        jid, n = claim.job_id, int(job["episodes"])
        done = {int(r["index"]) for r in (job.get("results") or []) if "index" in r}
        remaining = [i for i in range(n) if i not in done]
        server = job.get("policy_server")
        sha = str(job.get("bundle_sha256") or "")
        policy = (
            f"policy server {server.get('endpoint')}"
            if isinstance(server, dict)
            else f"bundle {sha[:12]}"
        )
        self.robot_name = str(job.get("claimed_by") or self.robot_name or "robot")
        self.log(
            f"job {jid} claimed (attempt {claim.attempt}): {len(remaining)} of {n} episode(s) "
            f"to run, {policy}, seed {job.get('seed', 0)}, held until "
            f"{_clock(claim.hold_until)}"
        )
        st = AttemptState(claim.hold_until)
        with Heartbeats(self.service, claim, st, self.opts.heartbeat_s, self.log) as beats:
            try:
                return self._run(claim, st, remaining, sha, beats)
            except NoResetError as exc:
                return self._finish(claim, st, "failed", str(exc))
            except BundleMismatchError as exc:
                return self._finish(claim, st, "failed", str(exc))
            except ResetFailedError as exc:
                self._finish(claim, st, "interrupted", f"the cell's reset failed: {exc}")
                raise CellNeedsStaffError(f"the cell's reset failed: {exc}") from exc
            except StaleAttemptError:
                return self._abandon(claim, "the attempt is stale (the job was requeued)")
            except ServiceRefusedError as exc:
                if exc.status == 404 and "bundle" in exc.code:
                    return self._finish(claim, st, "failed", f"the bundle is gone: {exc}")
                return self._finish(claim, st, "interrupted", f"the service refused: {exc}")
            except ServiceUnreachableError as exc:
                return self._abandon(claim, f"the service does not answer: {exc}")

    def _run(
        self, claim: Claim, st: AttemptState, remaining: list[int], sha: str, beats: Heartbeats
    ) -> str:
        job = claim.job
        jid, n = claim.job_id, int(job["episodes"])
        server = job.get("policy_server")
        served = isinstance(server, dict)
        bundle = None if served else self.service.bundle(sha, self.opts.cache_dir)
        endpoint, key = self._target(claim)
        timeout = float(job.get("episode_timeout_s") or self.opts.episode_timeout_s)
        run = EpisodeRun(
            endpoint=endpoint,
            server_key=key,
            lease=claim.lease,
            bundle=bundle,
            seed=int(job.get("seed") or 0),
            robot=self.robot_name,
            job_id=jid,
            episodes=n,
            resetter=self.resetter,
            work_dir=self.opts.work_dir / f"job-{jid}",
            timeout_s=timeout,
            policy_server=dict(server) if isinstance(server, dict) else None,
            first_chunk_s=self.opts.first_chunk_s,
        )
        longest = 0.0
        for index in remaining:
            why = self._stop_reason(st, longest)
            if why is not None:
                return self._stopped(claim, st, why)
            out = run_episode(run, index, lambda: self._stop_reason(st, 0.0))
            self.log(f"job {jid} episode {index + 1}/{n}: {_describe(out)}")
            if out.is_result:
                self._report(claim, index, out)
                longest = max(longest, out.timing.get("total_s", 0.0))
                continue
            if out.ended == "refused":
                what = "policy server" if served else "bundle"
                return self._finish(
                    claim, st, "failed", f"the robot refused the {what}: {out.message}"
                )
            if out.ended == "no_server":
                return self._finish(claim, st, "failed", f"episode {index + 1}: {out.message}")
            if out.ended == "timeout":
                return self._finish(claim, st, "failed", f"episode {index + 1}: {out.message}")
            if out.ended == "stopped":
                return self._stopped(claim, st, out.message)
            # estop, fault, lost, closed: the cell's trouble, not the policy's; or the service
            # revoked the lease (a cancel, a requeue) before the heartbeat said so: ask now
            beats.beat_now()
            why = self._stop_reason(st, 0.0)
            if why is not None and (st.cancel or st.stale):
                return self._stopped(claim, st, why)
            return self._finish(claim, st, "interrupted", f"episode {index + 1}: {out.message}")
        return self._finish(claim, st, "succeeded", f"{n} episode(s) on {self.robot_name}")

    def _report(self, claim: Claim, index: int, out: EpisodeOutcome) -> None:
        """Upload the episode's recording, then post its result (naming the recording)."""
        jid, attempt = claim.job_id, claim.attempt
        rec_sha: str | None = None
        recording = out.recording
        if recording is not None:
            rec_sha = self._retry(
                lambda: self.service.upload_recording(jid, attempt, index, recording)
            )
        body = out.result(rec_sha)
        self._retry(lambda: self.service.post_episode(jid, attempt, body))

    def _stopped(self, claim: Claim, st: AttemptState, why: str) -> str:
        with st.lock:
            gone = st.cancel or st.stale
        if gone:
            return self._abandon(claim, why)
        return self._finish(claim, st, "interrupted", why)

    def _abandon(self, claim: Claim, why: str) -> str:
        self.log(f"job {claim.job_id}: {why}; nothing more is posted")
        return "abandoned"

    def _finish(self, claim: Claim, st: AttemptState, outcome: str, message: str) -> str:
        try:
            self._retry(lambda: self.service.finish(claim.job_id, claim.attempt, outcome, message))
        except StaleAttemptError:
            return self._abandon(claim, "the attempt is stale (the job was requeued)")
        except (ServiceUnreachableError, ServiceRefusedError) as exc:
            self.log(f"job {claim.job_id}: could not post its end ({outcome}): {exc}")
            return "abandoned"
        self.log(f"job {claim.job_id} {outcome}: {message}")
        return outcome

    def _retry(self, post: Callable[[], Any]) -> Any:
        """post(), again while the service does not answer (up to POST_RETRY_S)."""
        deadline = time.monotonic() + POST_RETRY_S
        pause = 0.5
        while True:
            try:
                return post()
            except ServiceUnreachableError:
                if time.monotonic() + pause >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def _describe(out: EpisodeOutcome) -> str:
    t = out.timing
    if out.is_result and out.record is not None:
        rec = out.record
        reason = str(rec.get("reason"))
        why = (
            f"a safety stop ({rec.get('safety_reason')})"
            if reason == "held"
            else _END_REASONS.get(reason, reason)
        )
        load = f"load {t['load_s']:.2f} s, " if "load_s" in t else ""  # a served one loads none
        return (
            f"{rec.get('successes')} successes, ended by {why} after "
            f"{float(rec.get('seconds', 0)):.1f} s (reset {out.reset} {t.get('reset_s', 0):.2f} s, "
            f"{load}run {t.get('run_s', 0):.1f} s)"
        )
    return f"no result: {out.ended}: {out.message}"
