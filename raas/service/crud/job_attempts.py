"""A claimed job's attempt, as its robot's worker drives it: heartbeats, episodes, finish; and
the sweep that requeues attempts whose worker went silent (or whose hold ran out) and expires
queued jobs past their deadline.

An attempt is *live* while it is running and is the job's current one. Posts for any other
attempt are refused with `stale_attempt` (409): a result arriving after a requeue never counts.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from raas.service.blobs import BlobStore
from raas.service.crud import jobs as job_crud
from raas.service.crud import leases as lease_crud
from raas.service.errors import (
    AlreadyExists,
    EpisodeOutOfRange,
    Forbidden,
    NotFound,
    RecordingNotFound,
    StaleAttempt,
)
from raas.service.models import (
    AttemptStatus,
    Job,
    JobAttempt,
    JobEpisode,
    JobStatus,
    Revocation,
    Robot,
)
from raas.service.schemas import EpisodeReport, JobFinish
from raas.service.settings import Settings


def get(db: Session, job: Job, number: int, *, lock: bool = False) -> JobAttempt:
    stmt = select(JobAttempt).where(JobAttempt.job_id == job.id, JobAttempt.number == number)
    if lock:
        stmt = stmt.with_for_update()
    attempt = db.scalars(stmt).first()
    if attempt is None:
        raise NotFound(f"job {job.id} has no attempt {number}")
    return attempt


def owned(db: Session, job_id: int, number: int, robot_id: int) -> tuple[Job, JobAttempt]:
    """The job and attempt, locked (job first), if the attempt ran on `robot_id`."""
    job = job_crud.get(db, job_id, lock=True)
    attempt = get(db, job, number, lock=True)
    if attempt.robot_id != robot_id:
        raise Forbidden(f"attempt {number} of job {job_id} is another robot's")
    return job, attempt


def is_live(job: Job, attempt: JobAttempt) -> bool:
    return attempt.status == AttemptStatus.running.value and job.attempt == attempt.number


def require_live(job: Job, attempt: JobAttempt) -> None:
    if not is_live(job, attempt):
        raise StaleAttempt(
            f"attempt {attempt.number} of job {job.id} is {attempt.status}"
            + (f" ({attempt.message})" if attempt.message else "")
            + f"; the job is {job.status} at attempt {job.attempt}"
        )


def _end(
    db: Session, attempt: JobAttempt, status: AttemptStatus, now: datetime, message: str
) -> list[Revocation]:
    attempt.status = status.value
    attempt.ended_at = now
    attempt.message = message
    return lease_crud.revoke_for_job_attempt(
        db, attempt, reason=f"job {attempt.job_id} attempt {attempt.number}: {message}", now=now
    )


def interrupt(
    db: Session, job: Job, attempt: JobAttempt, now: datetime, message: str
) -> list[Revocation]:
    """End the attempt early and put the job back in the queue with its finished episodes
    kept (or mark it succeeded when none are missing). Its lease is revoked."""
    revoked = _end(db, attempt, AttemptStatus.interrupted, now, message)
    job.claimed_by = None
    done = job_crud.episodes_done(db, job.id)
    job_crud.add_event(
        db, job, "interrupted", message, now, attempt=attempt.number, episodes_done=done
    )
    if done >= job.episodes:
        _final(db, job, JobStatus.succeeded, now, f"all {job.episodes} episodes done")
    else:
        job.status = JobStatus.queued.value
        job.message = f"requeued: {message}"
        job_crud.add_event(
            db,
            job,
            "requeued",
            f"back in the queue with {done} of {job.episodes} episodes done",
            now,
            attempt=attempt.number,
            episodes_done=done,
        )
    db.flush()
    return revoked


def _final(db: Session, job: Job, status: JobStatus, now: datetime, message: str) -> None:
    job.status = status.value
    job.claimed_by = None
    job.finished_at = now
    job.message = message
    job_crud.add_event(db, job, "finished", message, now, status=status.value)


def heartbeat(
    db: Session, job_id: int, number: int, robot_id: int, now: datetime, free_until: datetime | None
) -> tuple[datetime, bool]:
    """Keep the attempt alive; answers (hold_until, cancel). The hold shrinks to `free_until`
    (the robot's next booking or maintenance, see job_claim.next_busy) when that came nearer."""
    job, attempt = owned(db, job_id, number, robot_id)
    if attempt.status == AttemptStatus.cancelled.value:
        return attempt.hold_until, True
    require_live(job, attempt)
    attempt.last_heartbeat_at = now
    if free_until is not None and free_until < attempt.hold_until:
        attempt.hold_until = max(free_until, now)
        job_crud.add_event(
            db,
            job,
            "hold",
            f"hold shortened to {attempt.hold_until.isoformat()} (a booking or maintenance)",
            now,
            attempt=number,
            hold_until=attempt.hold_until.isoformat(),
        )
    db.flush()
    return attempt.hold_until, False


def record_episode(
    db: Session,
    job_id: int,
    number: int,
    robot_id: int,
    report: EpisodeReport,
    now: datetime,
    blobs: BlobStore,
) -> Job:
    job, attempt = owned(db, job_id, number, robot_id)
    require_live(job, attempt)
    if report.index >= job.episodes:
        raise EpisodeOutOfRange(
            f"episode {report.index} is not one of job {job.id}'s (0..{job.episodes - 1})"
        )
    if report.recording_sha256 is not None and not blobs.exists(report.recording_sha256):
        raise RecordingNotFound(
            f"no recording {report.recording_sha256} is stored: PUT it to "
            f"/jobs/{job.id}/attempts/{number}/episodes/{report.index}/recording first"
        )
    detail = {
        "timing": report.timing,
        "seconds_per_goal": report.seconds_per_goal,
        "session_id": report.session_id,
        "safety_detail": report.safety_detail,
    }
    episode = db.scalars(
        select(JobEpisode).where(JobEpisode.job_id == job.id, JobEpisode.index == report.index)
    ).first()
    if episode is not None and episode.attempt != number:
        raise AlreadyExists(
            f"episode {report.index} of job {job.id} was recorded by attempt {episode.attempt}"
        )
    if episode is None:
        episode = JobEpisode(job_id=job.id, index=report.index)
        db.add(episode)
    episode.attempt = number
    episode.robot_id = robot_id
    episode.successes = report.successes
    episode.end_reason = report.end_reason
    episode.cycles = report.cycles
    episode.seconds = report.seconds
    episode.safety_stop = report.safety_stop
    episode.safety_reason = report.safety_reason
    episode.detail = json.dumps(detail)
    episode.recording_sha256 = report.recording_sha256
    episode.recorded_at = now
    attempt.last_heartbeat_at = now  # a report is a sign of life too
    job_crud.add_event(
        db,
        job,
        "episode",
        f"episode {report.index}: {report.successes} successes, {report.end_reason}",
        now,
        attempt=number,
        index=report.index,
        successes=report.successes,
        end_reason=report.end_reason,
        safety_stop=report.safety_stop,
    )
    db.flush()
    return job


def finish(
    db: Session, job_id: int, number: int, robot_id: int, body: JobFinish, now: datetime
) -> tuple[Job, list[Revocation]]:
    """End the attempt as its worker says. A cancelled attempt answers the job unchanged."""
    job, attempt = owned(db, job_id, number, robot_id)
    if attempt.status == AttemptStatus.cancelled.value:
        return job, []
    require_live(job, attempt)
    message = body.message or body.outcome
    if body.outcome == "interrupted":
        return job, interrupt(db, job, attempt, now, message)
    done = job_crud.episodes_done(db, job.id)
    if body.outcome == "succeeded" and done < job.episodes:
        status, message = (
            JobStatus.failed,
            f"finished as succeeded with {done} of {job.episodes} episodes recorded",
        )
    else:
        status = JobStatus(body.outcome)
    attempt_status = (
        AttemptStatus.succeeded if status is JobStatus.succeeded else AttemptStatus.failed
    )
    revoked = _end(db, attempt, attempt_status, now, message)
    _final(db, job, status, now, message)
    db.flush()
    return job, revoked


# -- the sweep ------------------------------------------------------------------------------------


def _overdue(settings: Settings, now: datetime) -> ColumnElement[bool]:
    silent = now - timedelta(seconds=settings.job_claim_timeout_s)
    return (JobAttempt.status == AttemptStatus.running.value) & (
        (JobAttempt.last_heartbeat_at < silent) | (JobAttempt.hold_until <= now)
    )


def _expired() -> ColumnElement[bool]:
    return (Job.status == JobStatus.queued.value) & Job.deadline.is_not(None)


def sweep_due(db: Session, now: datetime, settings: Settings) -> bool:
    """A cheap read: has the sweep anything to do?"""
    if db.scalars(select(JobAttempt.id).where(_overdue(settings, now)).limit(1)).first():
        return True
    return (
        db.scalars(select(Job.id).where(_expired(), Job.deadline <= now).limit(1)).first()
        is not None
    )


def sweep(db: Session, now: datetime, settings: Settings) -> tuple[list[Revocation], bool]:
    """Requeue every attempt without a heartbeat for the claim timeout, or whose hold has run
    out (a booking starts), revoking its lease; expire queued jobs past their deadline.
    Answers (revocations, whether any job changed). Jobs another transaction holds are left to
    the next sweep (`SKIP LOCKED`)."""
    revoked: list[Revocation] = []
    changed = False
    silent = now - timedelta(seconds=settings.job_claim_timeout_s)
    stale = db.execute(select(JobAttempt.job_id, JobAttempt.id).where(_overdue(settings, now)))
    for job_id, attempt_id in list(stale):
        job = db.scalars(
            select(Job).where(Job.id == job_id).with_for_update(skip_locked=True)
        ).first()
        if job is None:
            continue
        attempt = db.scalars(
            select(JobAttempt).where(JobAttempt.id == attempt_id).with_for_update()
        ).one()
        if not is_live(job, attempt):
            continue
        if attempt.last_heartbeat_at < silent:
            robot = db.get(Robot, attempt.robot_id)
            name = robot.name if robot else str(attempt.robot_id)
            why = f"no heartbeat from {name} for {settings.job_claim_timeout_s:g} s"
        elif attempt.hold_until <= now:
            why = "the hold ended (a booking or maintenance starts)"
        else:
            continue
        revoked += interrupt(db, job, attempt, now, why)
        changed = True
    for job in db.scalars(
        select(Job).where(_expired(), Job.deadline <= now).with_for_update(skip_locked=True)
    ).all():
        job.status = JobStatus.expired.value
        job.finished_at = now
        job.message = "the deadline passed while queued"
        job_crud.add_event(db, job, "expired", job.message, now)
        changed = True
    db.flush()
    return revoked, changed
