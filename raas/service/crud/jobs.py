"""Evaluation jobs: submit, read, list, cancel, and the job's log (docs/fleet.md, "Evaluation
jobs"). The robot side (claim, heartbeat, episodes, finish, the requeue sweep) is in
`job_claim.py` and `job_attempts.py`.

Row locks, in this order wherever more than one is taken: robot, then job, then attempt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from raas.service.blobs import BlobStore
from raas.service.crud import leases as lease_crud
from raas.service.errors import (
    BundleNotFound,
    Forbidden,
    InvalidTimeRange,
    JobNotActive,
    JobUnknownRobot,
    NoQualifyingRobot,
    NotFound,
)
from raas.service.models import (
    JOB_FINAL,
    AttemptStatus,
    Job,
    JobAttempt,
    JobEpisode,
    JobEvent,
    JobStatus,
    Revocation,
    Robot,
    User,
)
from raas.service.schemas import (
    EpisodePublic,
    JobCreate,
    JobEventPublic,
    JobPublic,
    PolicyServerPublic,
)

#: Highest priority a researcher may give a job; staff may go up to 10.
RESEARCHER_MAX_PRIORITY = 5


def add_event(
    db: Session, job: Job, kind: str, message: str, now: datetime, **data: Any
) -> JobEvent:
    event = JobEvent(
        job_id=job.id, at=now, kind=kind, message=message, data=json.dumps(data, default=str)
    )
    db.add(event)
    return event


def _robot_names(db: Session) -> list[str]:
    return list(db.scalars(select(Robot.name).order_by(Robot.name)))


def submit(
    db: Session, user: User, data: JobCreate, now: datetime, blobs: BlobStore, *, staff: bool
) -> Job:
    if data.priority > RESEARCHER_MAX_PRIORITY and not staff:
        raise Forbidden(f"priority above {RESEARCHER_MAX_PRIORITY} is for staff")
    if data.deadline is not None and data.deadline <= now:
        raise InvalidTimeRange("deadline is in the past")
    if data.bundle_sha256 is not None and not blobs.exists(data.bundle_sha256):
        raise BundleNotFound(
            f"no bundle {data.bundle_sha256} is stored: PUT /bundles/{data.bundle_sha256} first"
        )
    robot_id = None
    if data.robot is not None:
        robot_id = db.scalars(select(Robot.id).where(Robot.name == data.robot)).first()
        if robot_id is None:
            names = ", ".join(_robot_names(db)) or "none"
            raise JobUnknownRobot(f"no robot named {data.robot!r} (robots: {names})")
    if (
        data.hand_model is not None
        and db.scalars(select(Robot.id).where(Robot.hand_model == data.hand_model)).first() is None
    ):
        models = sorted({m for m in db.scalars(select(Robot.hand_model)) if m})
        raise NoQualifyingRobot(
            f"no robot has hand model {data.hand_model!r} "
            f"(hand models: {', '.join(models) or 'none registered'})"
        )
    server = data.policy_server
    job = Job(
        user_id=user.id,
        bundle_sha256=data.bundle_sha256,
        policy_endpoint=server.endpoint if server else None,
        policy_server_key=server.server_key if server else None,
        policy_horizon=server.horizon if server else None,
        policy_blend=server.blend if server else None,
        task=data.task,
        episodes=data.episodes,
        robot_id=robot_id,
        hand_model=data.hand_model,
        priority=data.priority,
        deadline=data.deadline,
        seed=data.seed,
        episode_timeout_s=data.episode_timeout_s,
        status=JobStatus.queued.value,
        attempt=0,
        created_at=now,
        message="",
    )
    db.add(job)
    db.flush()
    add_event(
        db,
        job,
        "submitted",
        f"{data.episodes} episode(s) of {data.task} by {user.email}"
        + (f", policy server {server.endpoint}" if server else ""),
        now,
        user=user.email,
    )
    return job


def get(db: Session, job_id: int, *, lock: bool = False) -> Job:
    stmt = select(Job).where(Job.id == job_id)
    if lock:
        stmt = stmt.with_for_update()
    job = db.scalars(stmt).first()
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def get_visible(db: Session, job_id: int, user_id: int, *, staff: bool) -> Job:
    """The job if the caller submitted it or is staff; others get the same 404 as a missing one."""
    job = get(db, job_id)
    if job.user_id != user_id and not staff:
        raise NotFound(f"no job {job_id}")
    return job


def list_jobs(
    db: Session, *, user_id: int | None, status: str | None, limit: int, offset: int
) -> list[Job]:
    stmt: Select[tuple[Job]] = select(Job)
    if user_id is not None:
        stmt = stmt.where(Job.user_id == user_id)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    return list(db.scalars(stmt.order_by(Job.id.desc()).limit(limit).offset(offset)))


def episodes_done(db: Session, job_id: int) -> int:
    return db.scalar(select(func.count(JobEpisode.id)).where(JobEpisode.job_id == job_id)) or 0


def done_indices(db: Session, job_id: int) -> set[int]:
    return set(db.scalars(select(JobEpisode.index).where(JobEpisode.job_id == job_id)))


def running_attempt(db: Session, job: Job, *, lock: bool = False) -> JobAttempt | None:
    stmt = select(JobAttempt).where(
        JobAttempt.job_id == job.id,
        JobAttempt.number == job.attempt,
        JobAttempt.status == AttemptStatus.running.value,
    )
    if lock:
        stmt = stmt.with_for_update()
    return db.scalars(stmt).first()


def cancel(db: Session, job: Job, by: User, now: datetime) -> list[Revocation]:
    """Cancel a queued or running job. A running attempt ends at once: its lease is revoked
    (the robot's daemon stops the run and holds the hand), its worker's next heartbeat says
    `cancel`."""
    if JobStatus(job.status) in JOB_FINAL:
        raise JobNotActive(f"job {job.id} is already {job.status}")
    revoked: list[Revocation] = []
    attempt = running_attempt(db, job, lock=True)
    if attempt is not None:
        attempt.status = AttemptStatus.cancelled.value
        attempt.ended_at = now
        attempt.message = f"cancelled by {by.email}"
        revoked = lease_crud.revoke_for_job_attempt(
            db, attempt, reason=f"job {job.id} cancelled", now=now
        )
    job.status = JobStatus.cancelled.value
    job.claimed_by = None
    job.finished_at = now
    job.message = f"cancelled by {by.email}"
    add_event(db, job, "cancelled", f"cancelled by {by.email}", now, by=by.email)
    db.flush()
    return revoked


def cancel_all_of(
    db: Session, user: User, by: User, now: datetime
) -> tuple[list[Job], list[Revocation]]:
    """Cancel every queued or running job of `user` (an account deactivated)."""
    jobs = db.scalars(
        select(Job)
        .where(
            Job.user_id == user.id,
            Job.status.in_([JobStatus.queued.value, JobStatus.running.value]),
        )
        .order_by(Job.id)
        .with_for_update()
    ).all()
    revoked: list[Revocation] = []
    for job in jobs:
        revoked += cancel(db, job, by, now)
    return list(jobs), revoked


def events(db: Session, job_id: int, *, since: int, limit: int) -> list[JobEventPublic]:
    rows = db.scalars(
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.seq > since)
        .order_by(JobEvent.seq)
        .limit(limit)
    )
    return [
        JobEventPublic(seq=e.seq, at=e.at, kind=e.kind, message=e.message, data=json.loads(e.data))
        for e in rows
    ]


def publics(db: Session, jobs: Sequence[Job]) -> list[JobPublic]:
    """The jobs' JSON, with names and per-episode results looked up in one query each."""
    if not jobs:
        return []
    ids = [j.id for j in jobs]
    user_ids = {j.user_id for j in jobs}
    emails = {
        uid: email
        for uid, email in db.execute(select(User.id, User.email).where(User.id.in_(user_ids)))
    }
    names = {rid: name for rid, name in db.execute(select(Robot.id, Robot.name))}
    results: dict[int, list[EpisodePublic]] = {i: [] for i in ids}
    for ep in db.scalars(
        select(JobEpisode).where(JobEpisode.job_id.in_(ids)).order_by(JobEpisode.index)
    ):
        results[ep.job_id].append(
            EpisodePublic(
                index=ep.index,
                attempt=ep.attempt,
                robot=names.get(ep.robot_id, str(ep.robot_id)),
                successes=ep.successes,
                end_reason=ep.end_reason,
                cycles=ep.cycles,
                seconds=ep.seconds,
                safety_stop=ep.safety_stop,
                safety_reason=ep.safety_reason,
                recording_sha256=ep.recording_sha256,
                recorded_at=ep.recorded_at,
                detail=json.loads(ep.detail),
            )
        )
    return [
        JobPublic(
            id=j.id,
            user_id=j.user_id,
            user=emails.get(j.user_id, ""),
            bundle_sha256=j.bundle_sha256,
            policy_server=_policy_server(j),
            task=j.task,
            episodes=j.episodes,
            episodes_done=len(results[j.id]),
            robot=None if j.robot_id is None else names.get(j.robot_id),
            hand_model=j.hand_model,
            priority=j.priority,
            deadline=j.deadline,
            seed=j.seed,
            episode_timeout_s=j.episode_timeout_s,
            status=JobStatus(j.status),
            attempt=j.attempt,
            claimed_by=None if j.claimed_by is None else names.get(j.claimed_by),
            created_at=j.created_at,
            started_at=j.started_at,
            finished_at=j.finished_at,
            message=j.message,
            results=results[j.id],
        )
        for j in jobs
    ]


def _policy_server(job: Job) -> PolicyServerPublic | None:
    if job.policy_endpoint is None:
        return None
    return PolicyServerPublic(
        endpoint=job.policy_endpoint,
        server_key=job.policy_server_key or "",
        horizon=job.policy_horizon or 16,
        blend=job.policy_blend or "newest",
    )


def public(db: Session, job: Job) -> JobPublic:
    return publics(db, [job])[0]


def may_read_bundle(db: Session, sha256: str, *, user_id: int, robot_id: int | None) -> bool:
    """A robot holding a running attempt of a job with this bundle, or a user who submitted a
    job with it (staff are let through by the caller)."""
    stmt = select(Job.id).where(Job.bundle_sha256 == sha256)
    if robot_id is not None:
        stmt = stmt.where(Job.claimed_by == robot_id, Job.status == JobStatus.running.value)
    else:
        stmt = stmt.where(Job.user_id == user_id)
    return db.scalars(stmt.limit(1)).first() is not None
