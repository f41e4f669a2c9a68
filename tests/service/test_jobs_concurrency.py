"""No job claimed twice: 20 robots' workers claim at once against 10 queued jobs, through two
service processes sharing one database over real sockets. Exactly 10 claims succeed, each a
different job, each job has exactly one attempt; the other 10 answer 204. The same with 200
robots against 100 jobs on PostgreSQL (the issue's 200 concurrent clients on two workers). A
worker waiting in `claim?wait=` gets a job submitted meanwhile. Runs on SQLite and on
PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from raas.service.db import Database
from raas.service.models import JobAttempt, Role
from tests.service.harness import Seeded, ServerProcess, seed, settings_for
from tests.service.pg_server import PgServer

ROBOTS = 20
JOBS = 10
BUNDLE = b"concurrency bundle"


def _servers(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_robots: int
) -> Iterator[tuple[Seeded, list[ServerProcess]]]:
    monkeypatch.setenv("RAAS_BLOB_DIR", str(tmp_path / "blobs"))
    settings = settings_for(database_url, tmp_path)
    robots = tuple(f"arm-{i}" for i in range(n_robots))
    seeded = seed(settings, users={"alice@lab": Role.researcher}, robots=robots)
    procs = [ServerProcess(settings, tmp_path / f"server{i}.log") for i in range(2)]
    try:
        for p in procs:
            p.start()
        yield seeded, procs
    finally:
        for p in procs:
            p.stop()


@pytest.fixture
def servers(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Seeded, list[ServerProcess]]]:
    yield from _servers(database_url, tmp_path, monkeypatch, ROBOTS)


@pytest.fixture
def servers_200(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Seeded, list[ServerProcess], str]]:
    url = pg_server.create_database(f"raas_claims200_{os.getpid()}")
    for seeded, procs in _servers(url, tmp_path, monkeypatch, 200):
        yield seeded, procs, url


def _robot(seeded: Seeded, name: str) -> tuple[int, dict[str, str]]:
    return seeded.robots[name], {"Authorization": f"Bearer {seeded.robot_tokens[name]}"}


@pytest.mark.system
def test_20_claimers_10_jobs_no_double_claim(
    servers: tuple[Seeded, list[ServerProcess]], database_url: str
) -> None:
    seeded, procs = servers
    _claim_race(seeded, procs, database_url, ROBOTS, JOBS)


@pytest.mark.system
@pytest.mark.slow
def test_200_claimers_100_jobs_on_postgresql_no_double_claim(
    servers_200: tuple[Seeded, list[ServerProcess], str],
) -> None:
    seeded, procs, url = servers_200
    _claim_race(seeded, procs, url, 200, 100)


def _claim_race(
    seeded: Seeded, procs: list[ServerProcess], database_url: str, robots: int, jobs: int
) -> None:
    base = procs[0].base_url
    alice = seeded.headers("alice@lab")
    sha = hashlib.sha256(BUNDLE).hexdigest()
    assert httpx.put(f"{base}/bundles/{sha}", content=BUNDLE, headers=alice).status_code == 201
    for name in seeded.robots:
        rid, h = _robot(seeded, name)
        beat = {
            "directory": {"control_endpoint": f"tcp://127.0.0.1:{6000 + rid}", "hand_model": "h"}
        }
        r = httpx.post(f"{base}/robots/{rid}/heartbeat", json=beat, headers=h)
        assert r.status_code == 200, r.text
    job_ids = set()
    for _ in range(jobs):
        r = httpx.post(f"{base}/jobs", json={"bundle_sha256": sha, "episodes": 1}, headers=alice)
        assert r.status_code == 201, r.text
        job_ids.add(r.json()["id"])

    barrier = threading.Barrier(robots)
    answers: dict[str, tuple[int, int | None]] = {}

    def claimer(i: int, name: str) -> None:
        rid, h = _robot(seeded, name)
        url = f"{procs[i % 2].base_url}/robots/{rid}/jobs/claim"
        with httpx.Client(timeout=120.0) as client:
            barrier.wait()
            r = client.post(url, headers=h)
        answers[name] = (r.status_code, r.json()["job"]["id"] if r.status_code == 200 else None)

    threads = [threading.Thread(target=claimer, args=(i, n)) for i, n in enumerate(seeded.robots)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert len(answers) == robots
    codes = sorted(code for code, _ in answers.values())
    assert codes == [200] * jobs + [204] * (robots - jobs), answers
    claimed = [job for _, job in answers.values() if job is not None]
    assert sorted(claimed) == sorted(job_ids)  # each job once, none twice
    db = Database(database_url)
    try:
        with db.read() as s:
            per_job = s.execute(
                select(JobAttempt.job_id, func.count()).group_by(JobAttempt.job_id)
            ).all()
        assert sorted(per_job) == sorted((j, 1) for j in job_ids)
    finally:
        db.dispose()


@pytest.mark.system
def test_a_waiting_worker_gets_a_job_submitted_meanwhile(
    servers: tuple[Seeded, list[ServerProcess]],
) -> None:
    seeded, procs = servers
    base = procs[0].base_url
    rid, h = _robot(seeded, "arm-0")
    beat = {"directory": {"control_endpoint": "tcp://127.0.0.1:6000", "hand_model": "h"}}
    assert httpx.post(f"{base}/robots/{rid}/heartbeat", json=beat, headers=h).is_success
    alice = seeded.headers("alice@lab")
    sha = hashlib.sha256(BUNDLE).hexdigest()
    httpx.put(f"{base}/bundles/{sha}", content=BUNDLE, headers=alice)
    got: list[httpx.Response] = []
    waiting = threading.Thread(
        target=lambda: got.append(
            httpx.post(
                f"{base}/robots/{rid}/jobs/claim", params={"wait": 25}, timeout=60.0, headers=h
            )
        )
    )
    waiting.start()
    # submitted through the other service process: its wake-up reaches this one by polling
    r = httpx.post(
        f"{procs[1].base_url}/jobs", json={"bundle_sha256": sha, "episodes": 1}, headers=alice
    )
    assert r.status_code == 201
    waiting.join(timeout=60)
    assert got and got[0].status_code == 200, got
    assert got[0].json()["job"]["id"] == r.json()["id"]
