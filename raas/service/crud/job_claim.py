"""The claim: a free robot takes the next job it qualifies for, atomically.

Before it, the requeue sweep (`job_attempts.sweep`, its own transaction) puts timed-out attempts
back in the queue. Then everything happens in one write transaction:
1. the robot's row lock (PostgreSQL `FOR UPDATE`; on SQLite the transaction already holds the
   database write lock, BEGIN IMMEDIATE): booking, maintenance and claims of one robot queue;
2. the robot's qualification now: online and registered (a control endpoint), not in
   maintenance, no maintenance block running, no e-stop or health block, no job of its own
   running (one job per robot at a time);
3. the candidates: queued jobs naming this robot, its hand model, or neither, ordered by
   priority, then fair share (the submitter with the least robot time used by jobs in the
   last 7 days, then the fewest running jobs), then age;
4. the first candidate whose next episode fits before the robot's next booking or maintenance
   block is locked (`FOR UPDATE SKIP LOCKED`: a job another claimer is taking is skipped, never
   waited for) and checked to be still queued; it becomes the attempt, with a hold on the
   calendar until `hold_until` and a control lease valid until then.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from raas.service.booking_rules import rules_for
from raas.service.crud import jobs as job_crud
from raas.service.crud import leases as lease_crud
from raas.service.crud import robots as robot_crud
from raas.service.models import (
    AttemptStatus,
    Job,
    JobAttempt,
    JobStatus,
    Lease,
    MaintenanceBlock,
    Reservation,
    ReservationStatus,
    Robot,
    RobotStatus,
    User,
)
from raas.service.settings import Settings

#: Fair share looks back this far.
FAIR_SHARE_WINDOW = timedelta(days=7)
#: Candidates read per claim (the oldest of each priority come first).
MAX_CANDIDATES = 500
#: Shortest hold a claim makes (a lease needs whole seconds).
MIN_HOLD = timedelta(seconds=2)


@dataclass
class Claim:
    job: Job
    attempt: JobAttempt
    lease: Lease
    token: str
    robot: Robot


def online(robot: Robot, now: datetime, settings: Settings) -> bool:
    return robot.last_heartbeat_at is not None and now - robot.last_heartbeat_at <= timedelta(
        seconds=settings.heartbeat_timeout_s
    )


def blocker(db: Session, robot: Robot, now: datetime, settings: Settings) -> str | None:
    """Why the robot may not take a job now, or None."""
    if not online(robot, now, settings):
        return "offline (no heartbeat within the heartbeat timeout)"
    if not robot.control_endpoint:
        return "not registered in the directory (its worker would not know where to connect)"
    if robot.status == RobotStatus.maintenance.value:
        return "in maintenance"
    if robot.health_blocked:
        return f"blocked after a failed health check ({robot.health_note})"
    if robot.estop_latched or robot.safety_state == "fault":
        return "e-stopped (staff must clear it)"
    if db.scalars(
        select(JobAttempt.id).where(
            JobAttempt.robot_id == robot.id, JobAttempt.status == AttemptStatus.running.value
        )
    ).first():
        return "running a job already (a restarted worker waits for the claim timeout)"
    if db.scalars(
        select(MaintenanceBlock.id).where(
            MaintenanceBlock.robot_id == robot.id,
            MaintenanceBlock.starts_at <= now,
            MaintenanceBlock.ends_at > now,
        )
    ).first():
        return "under a maintenance block"
    return None


def next_busy(db: Session, robot: Robot, now: datetime, settings: Settings) -> datetime | None:
    """When the robot's time stops being free for a job: the start of the next (or running)
    confirmed booking less the robot's buffer, or of the next maintenance block."""
    booking = db.scalar(
        select(func.min(Reservation.starts_at)).where(
            Reservation.robot_id == robot.id,
            Reservation.status == ReservationStatus.confirmed.value,
            Reservation.ends_at > now,
        )
    )
    block = db.scalar(
        select(func.min(MaintenanceBlock.starts_at)).where(
            MaintenanceBlock.robot_id == robot.id, MaintenanceBlock.ends_at > now
        )
    )
    buffer = timedelta(seconds=rules_for(robot, settings, staff=False).buffer_s)
    times = [t for t in (booking - buffer if booking else None, block) if t is not None]
    return min(times) if times else None


def episode_time(job: Job | Candidate, settings: Settings) -> timedelta:
    return timedelta(seconds=job.episode_timeout_s or settings.job_episode_s)


def estimate(job: Job, remaining: int, settings: Settings) -> timedelta:
    """What a claim holds the robot for: the remaining episodes' time plus the margin."""
    return remaining * episode_time(job, settings) + timedelta(seconds=settings.job_hold_margin_s)


def _usage(db: Session, user_ids: set[int], now: datetime) -> dict[int, tuple[float, int]]:
    """Per user: seconds of robot time used by job attempts in the fair-share window, and the
    number of attempts running now."""
    out: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    since = now - FAIR_SHARE_WINDOW
    rows = db.execute(
        select(Job.user_id, JobAttempt.claimed_at, JobAttempt.ended_at, JobAttempt.status)
        .join(Job, Job.id == JobAttempt.job_id)
        .where(Job.user_id.in_(user_ids), JobAttempt.claimed_at > since)
    )
    for user_id, claimed, ended, status in rows:
        out[user_id][0] += max(0.0, ((ended or now) - claimed).total_seconds())
        if status == AttemptStatus.running.value:
            out[user_id][1] += 1
    return {u: (v[0], int(v[1])) for u, v in out.items()}


def _qualifies(robot: Robot, now: datetime) -> ColumnElement[bool]:
    """Queued jobs naming this robot, its hand model, or neither, not past their deadline,
    of an active account."""
    hand: ColumnElement[bool] = Job.hand_model.is_(None)
    if robot.hand_model:
        hand = hand | (Job.hand_model == robot.hand_model)
    return and_(
        Job.status == JobStatus.queued.value,
        Job.robot_id.is_(None) | (Job.robot_id == robot.id),
        hand,
        Job.deadline.is_(None) | (Job.deadline > now),
        # a deactivated account's jobs wait (no lease is minted for it)
        Job.user_id.in_(select(User.id).where(User.active.is_(True))),
    )


@dataclass(frozen=True)
class Candidate:
    """What the claim order needs of a queued job (read as columns, not as objects)."""

    id: int
    user_id: int
    priority: int
    created_at: datetime
    episode_timeout_s: float | None


def candidates(db: Session, robot: Robot, now: datetime) -> list[Candidate]:
    """Queued jobs this robot qualifies for, in claim order (priority, fair share, age)."""
    rows = db.execute(
        select(Job.id, Job.user_id, Job.priority, Job.created_at, Job.episode_timeout_s)
        .where(_qualifies(robot, now))
        .order_by(Job.priority.desc(), Job.created_at, Job.id)
        .limit(MAX_CANDIDATES)
    )
    jobs = [Candidate(*row) for row in rows]
    usage = _usage(db, {j.user_id for j in jobs}, now)

    def key(job: Candidate) -> tuple[int, float, int, datetime, int]:
        used, running = usage.get(job.user_id, (0.0, 0))
        return (-job.priority, used, running, job.created_at, job.id)

    return sorted(jobs, key=key)


def has_candidates(db: Session, robot_id: int, now: datetime, settings: Settings) -> bool:
    """A cheap read: might a claim by this robot find a job now? (The long-poll asks before
    it takes the write lock: a blocked robot or an empty queue costs no write.)"""
    robot = db.get(Robot, robot_id)
    if robot is None or blocker(db, robot, now, settings) is not None:
        return False
    return db.scalars(select(Job.id).where(_qualifies(robot, now)).limit(1)).first() is not None


def _take(db: Session, job_id: int) -> Job | None:
    """Lock the job if no other claimer holds it and it is still queued."""
    return db.scalars(
        select(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued.value)
        .with_for_update(skip_locked=True)
    ).first()


def claim(
    db: Session,
    robot_id: int,
    now: datetime,
    settings: Settings,
    *,
    key: Ed25519PrivateKey,
    issuer: str,
) -> Claim | None:
    """Claim the next job for the robot; None when nothing qualifies. Run the requeue sweep
    first, in a transaction of its own (`job_attempts.sweep`)."""
    robot = robot_crud.get(db, robot_id, lock=True)
    if blocker(db, robot, now, settings) is not None:
        return None
    free_until = next_busy(db, robot, now, settings)
    for candidate in candidates(db, robot, now):
        per_episode = episode_time(candidate, settings)
        margin = timedelta(seconds=settings.job_hold_margin_s)
        if free_until is not None and free_until < now + per_episode + margin:
            continue  # not even one episode fits before the next booking
        taken = _take(db, candidate.id)
        if taken is None:
            continue
        job = taken
        done = job_crud.episodes_done(db, job.id)
        hold_until = now + estimate(job, max(1, job.episodes - done), settings)
        if free_until is not None:
            hold_until = min(hold_until, free_until)
        hold_until = max(hold_until, now + MIN_HOLD)
        return _start(db, job, robot, now, hold_until, settings, key, issuer)
    return None


def _start(
    db: Session,
    job: Job,
    robot: Robot,
    now: datetime,
    hold_until: datetime,
    settings: Settings,
    key: Ed25519PrivateKey,
    issuer: str,
) -> Claim:
    job.attempt += 1
    job.status = JobStatus.running.value
    job.claimed_by = robot.id
    job.started_at = job.started_at or now
    job.message = ""
    attempt = JobAttempt(
        job_id=job.id,
        number=job.attempt,
        robot_id=robot.id,
        status=AttemptStatus.running.value,
        claimed_at=now,
        hold_until=hold_until,
        last_heartbeat_at=now,
        message="",
    )
    db.add(attempt)
    db.flush()
    holder = db.get(User, job.user_id)
    assert holder is not None  # a foreign key
    lease, token = lease_crud.issue_for_job(
        db, attempt, robot, holder, key=key, issuer=issuer, now=now
    )
    attempt.lease_jti = lease.jti
    job_crud.add_event(
        db,
        job,
        "claimed",
        f"attempt {attempt.number} on {robot.name}, holding it until {hold_until.isoformat()}",
        now,
        attempt=attempt.number,
        robot=robot.name,
        hold_until=hold_until.isoformat(),
    )
    db.flush()
    return Claim(job=job, attempt=attempt, lease=lease, token=token, robot=robot)
