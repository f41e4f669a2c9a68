"""Evaluation jobs (docs/fleet.md, "Evaluation jobs"; docs/service.md, "Jobs").

Researchers and staff: submit, list, read, cancel, read the log and the episode recordings.
A robot's job worker (the robot's own token): claim, heartbeat, upload recordings, report
episodes, finish."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import FileResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from raas.service.api.routes.bundles import OCTETS, blob_store, declared_size
from raas.service.blobs import receive
from raas.service.crud import audit, job_attempts, job_claim
from raas.service.crud import jobs as job_crud
from raas.service.deps import AnyPrincipal, Now, ObjectId, Person, ReadDB, State, WriteDB
from raas.service.deps import Principal as PrincipalT
from raas.service.errors import Forbidden, RecordingNotFound
from raas.service.job_sweeper import sweep_once
from raas.service.job_wake import announce_jobs, wait_for_jobs
from raas.service.models import JobEpisode, JobStatus, Robot
from raas.service.schemas import (
    BlobStored,
    EpisodeReport,
    ErrorPublic,
    InvalidRequestPublic,
    JobClaimed,
    JobCreate,
    JobEventPublic,
    JobFinish,
    JobHeartbeatPublic,
    JobPublic,
    LeasePublic,
)
from raas.service.state import ServiceState

router = APIRouter(tags=["jobs"])

EpisodeIndex = Annotated[int, Path(ge=0, le=999)]

STALE: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorPublic, "description": "forbidden: not this robot's token or attempt"},
    404: {"model": ErrorPublic, "description": "not_found: no such job or attempt"},
    409: {
        "model": ErrorPublic,
        "description": "stale_attempt: the attempt was requeued, finished or cancelled",
    },
}


def _robot(principal: PrincipalT) -> int:
    if principal.robot_id is None:
        raise Forbidden("only a robot's own token (its job worker) may do this")
    return principal.robot_id


def _announce(state: ServiceState, revoked: bool, jobs_changed: bool) -> None:
    if revoked:
        state.hub.notify()  # the robot's daemon drops the revoked lease at once
    if jobs_changed:
        announce_jobs(state)


# -- researchers and staff -------------------------------------------------------------------


@router.post(
    "/jobs",
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"model": ErrorPublic, "description": "forbidden: priority above 5 needs staff"},
        404: {"model": ErrorPublic, "description": "bundle_not_found"},
        422: {
            "model": InvalidRequestPublic | ErrorPublic,
            "description": "invalid_request, or as `{detail, error}`: unknown_robot, "
            "no_qualifying_robot, invalid_time_range (a deadline in the past)",
        },
    },
)
def submit_job(body: JobCreate, person: Person, db: WriteDB, state: State, now: Now) -> JobPublic:
    """Queue an evaluation job: the policy (a stored bundle, or a policy server the robot
    dials for each episode), a task, a number of episodes, and which robots qualify (one robot
    by name, any robot of a hand model, or any robot)."""
    job = job_crud.submit(db, person.user, body, now, blob_store(state), staff=person.is_staff)
    audit.record(
        db,
        person.user,
        "job.submit",
        f"job:{job.id}",
        now,
        episodes=job.episodes,
        bundle=job.bundle_sha256,
        policy_server=job.policy_endpoint,
    )
    answer = job_crud.public(db, job)
    db.commit()
    announce_jobs(state)
    return answer


@router.get("/jobs")
def list_jobs(
    person: Person,
    db: ReadDB,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    mine: Annotated[bool, Query(description="staff: only your own jobs")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[JobPublic]:
    """Your jobs, newest first; staff see everyone's unless `mine`."""
    user_id = person.user.id if (mine or not person.is_staff) else None
    rows = job_crud.list_jobs(
        db, user_id=user_id, status=status_.value if status_ else None, limit=limit, offset=offset
    )
    return job_crud.publics(db, rows)


@router.get("/jobs/{job_id}", responses={404: {"model": ErrorPublic}})
def get_job(job_id: ObjectId, person: Person, db: ReadDB) -> JobPublic:
    job = job_crud.get_visible(db, job_id, person.user.id, staff=person.is_staff)
    return job_crud.public(db, job)


@router.post(
    "/jobs/{job_id}/cancel",
    responses={
        404: {"model": ErrorPublic, "description": "not_found"},
        409: {"model": ErrorPublic, "description": "job_not_active: already over"},
    },
)
def cancel_job(job_id: ObjectId, person: Person, db: WriteDB, state: State, now: Now) -> JobPublic:
    """Cancel a queued or running job (its submitter or staff). A running job's lease is
    revoked: the robot stops at once and holds the hand where it is."""
    job_crud.get_visible(db, job_id, person.user.id, staff=person.is_staff)
    job = job_crud.get(db, job_id, lock=True)
    revoked = job_crud.cancel(db, job, person.user, now)
    audit.record(db, person.user, "job.cancel", f"job:{job.id}", now)
    answer = job_crud.public(db, job)
    db.commit()
    _announce(state, bool(revoked), True)
    return answer


@router.get("/jobs/{job_id}/logs", responses={404: {"model": ErrorPublic}})
def job_logs(
    job_id: ObjectId,
    person: Person,
    db: ReadDB,
    since: Annotated[int, Query(ge=0, le=2**31 - 1, description="last seq seen")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[JobEventPublic]:
    """The job's events, oldest first: submitted, claimed, hold, episode, interrupted,
    requeued, finished, cancelled, expired."""
    job_crud.get_visible(db, job_id, person.user.id, staff=person.is_staff)
    return job_crud.events(db, job_id, since=since, limit=limit)


@router.get(
    "/jobs/{job_id}/episodes/{index}/recording",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The MCAP recording"},
        404: {"model": ErrorPublic, "description": "not_found, recording_not_found"},
    },
)
def episode_recording(
    job_id: ObjectId, index: EpisodeIndex, person: Person, db: ReadDB, state: State
) -> FileResponse:
    """The MCAP recording of one finished episode (the job's submitter or staff)."""
    job_crud.get_visible(db, job_id, person.user.id, staff=person.is_staff)
    sha = db.scalars(
        select(JobEpisode.recording_sha256).where(
            JobEpisode.job_id == job_id, JobEpisode.index == index
        )
    ).first()
    store = blob_store(state)
    if sha is None or not store.exists(sha):
        raise RecordingNotFound(f"job {job_id} has no recording of episode {index}")
    return FileResponse(
        store.path(sha),
        media_type="application/octet-stream",
        filename=f"job-{job_id}-episode-{index}.mcap",
    )


# -- a robot's job worker ----------------------------------------------------------------------


def _claim_once(state: ServiceState, robot_id: int) -> JobClaimed | None:
    sweep_once(state)
    now = state.clock()
    with state.db.read() as db:
        if not job_claim.has_candidates(db, robot_id, now, state.settings):
            return None
    with state.db.write() as db:
        claimed = job_claim.claim(
            db,
            robot_id,
            now,
            state.settings,
            key=state.signing_key,
            issuer=state.settings.issuer,
        )
        answer = None
        if claimed is not None:
            lease = claimed.lease
            answer = JobClaimed(
                job=job_crud.public(db, claimed.job),
                attempt=claimed.attempt.number,
                hold_until=claimed.attempt.hold_until,
                lease=LeasePublic(
                    token=claimed.token,
                    jti=lease.jti,
                    robot=claimed.robot.name,
                    scope=lease.scope,
                    not_before=lease.not_before,
                    expires_at=lease.expires_at,
                ),
                endpoint=claimed.robot.control_endpoint,
                server_key=claimed.robot.server_public_key,
            )
    return answer


@router.post(
    "/robots/{robot_id}/jobs/claim",
    response_model=JobClaimed,
    responses={
        204: {"description": "Nothing this robot qualifies for (after waiting up to `wait`)"},
        403: {"model": ErrorPublic, "description": "forbidden: not this robot's own token"},
    },
)
async def claim_job(
    request: Request,
    robot_id: ObjectId,
    principal: AnyPrincipal,
    state: State,
    wait: Annotated[float, Query(ge=0, le=60, description="seconds to wait for a job")] = 0,
) -> Response:
    """Claim the next job this robot qualifies for (the robot's own token). With `wait`, holds
    the request until a job can be claimed (woken by every submit and requeue) or the time
    passes (204)."""
    if principal.robot_id != robot_id:
        raise Forbidden("only the robot's own token may claim jobs for it")
    wait_s = min(wait, state.settings.max_poll_wait_s)
    claimed = await wait_for_jobs(
        state,
        wait_s,
        lambda: _claim_once(state, robot_id),
        lambda got: got is not None,
        request.is_disconnected,
    )
    if claimed is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return Response(claimed.model_dump_json(), media_type="application/json")


@router.post("/jobs/{job_id}/attempts/{attempt}/heartbeat", responses=STALE)
def job_heartbeat(
    job_id: ObjectId,
    attempt: ObjectId,
    principal: AnyPrincipal,
    db: WriteDB,
    state: State,
    now: Now,
) -> JobHeartbeatPublic:
    """Keep the attempt alive (at least every `job_claim_timeout_s`); answers the hold's end
    (it shrinks when a booking or maintenance is laid in front of it) and `cancel`."""
    robot_id = _robot(principal)
    sweep_once(state)  # an attempt past its hold or timeout is requeued first (then 409)
    robot = db.get_one(Robot, robot_id)
    free_until = job_claim.next_busy(db, robot, now, state.settings)
    hold_until, cancel = job_attempts.heartbeat(db, job_id, attempt, robot_id, now, free_until)
    db.commit()
    return JobHeartbeatPublic(hold_until=hold_until, cancel=cancel)


@router.put(
    "/jobs/{job_id}/attempts/{attempt}/episodes/{index}/recording",
    response_model=BlobStored,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=OCTETS,
    responses={
        **STALE,
        200: {"model": BlobStored, "description": "Already stored"},
        413: {"model": ErrorPublic, "description": "bundle_too_large: over max_recording_bytes"},
    },
)
async def put_recording(
    job_id: ObjectId,
    attempt: ObjectId,
    index: EpisodeIndex,
    request: Request,
    principal: AnyPrincipal,
    state: State,
) -> Response:
    """Upload an episode's MCAP recording (body: its bytes); its sha256 is what the episode
    report names in `recording_sha256`."""
    robot_id = _robot(principal)

    def check() -> None:
        with state.db.read() as db:
            job = job_crud.get(db, job_id)
            att = job_attempts.get(db, job, attempt)
            if att.robot_id != robot_id:
                raise Forbidden(f"attempt {attempt} of job {job_id} is another robot's")
            job_attempts.require_live(job, att)

    await run_in_threadpool(sweep_once, state)
    await run_in_threadpool(check)
    limit = state.settings.max_recording_bytes
    declared_size(request, limit, "recording")
    writer = await run_in_threadpool(blob_store(state).writer, None, limit)
    created = await receive(request.stream(), writer)
    body = BlobStored(sha256=writer.sha256, size=writer.size, created=created)
    return Response(
        body.model_dump_json(), status_code=201 if created else 200, media_type="application/json"
    )


@router.post(
    "/jobs/{job_id}/attempts/{attempt}/episodes",
    responses={
        **STALE,
        422: {
            "model": InvalidRequestPublic | ErrorPublic,
            "description": "invalid_request, episode_out_of_range",
        },
    },
)
def report_episode(
    job_id: ObjectId,
    attempt: ObjectId,
    body: EpisodeReport,
    principal: AnyPrincipal,
    db: WriteDB,
    state: State,
    now: Now,
) -> JobPublic:
    """Record one finished episode of the attempt (kept if the job is requeued later)."""
    robot_id = _robot(principal)
    sweep_once(state)
    job = job_attempts.record_episode(db, job_id, attempt, robot_id, body, now, blob_store(state))
    answer = job_crud.public(db, job)
    db.commit()
    return answer


@router.post("/jobs/{job_id}/attempts/{attempt}/finish", responses=STALE)
def finish_attempt(
    job_id: ObjectId,
    attempt: ObjectId,
    body: JobFinish,
    principal: AnyPrincipal,
    db: WriteDB,
    state: State,
    now: Now,
) -> JobPublic:
    """End the attempt: succeeded, failed, or interrupted (the job goes back to the queue with
    its finished episodes kept). The attempt's lease is revoked."""
    robot_id = _robot(principal)
    sweep_once(state)
    job, revoked = job_attempts.finish(db, job_id, attempt, robot_id, body, now)
    answer = job_crud.public(db, job)
    db.commit()
    _announce(state, bool(revoked), job.status == JobStatus.queued.value)
    return answer
