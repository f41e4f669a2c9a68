"""Jobs that name a policy server instead of a bundle: `POST /jobs` takes exactly one of
`bundle_sha256` or `policy_server` (refusals name the field), the job shows the server (its
public key, never a secret), the claim carries it to the robot's worker, and the database keeps
one of the two set whatever writes it. Migration 0006 keeps the jobs table's other checks and
its downgrade drops only the jobs that have no bundle."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import zmq
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from raas.service.db import Database
from raas.service.migrate import alembic_config, upgrade
from tests.service.jobs_harness import (
    attempt_url,
    claim,
    episode,
    jobs_env,
    report_in,
    robot_headers,
    upload,
)

KEY = zmq.curve_keypair()[0].decode("ascii")
SERVER = {"endpoint": "tcp://gpu.lab.example:7000", "server_key": KEY}


def test_a_job_names_a_policy_server_and_the_claim_carries_it(
    database_url: str, tmp_path: Path
) -> None:
    env, client = jobs_env(database_url, tmp_path)
    with client:
        report_in(env, "arm-1")
        r = client.post(
            "/jobs",
            json={"policy_server": {**SERVER, "horizon": 8}, "episodes": 1, "robot": "arm-1"},
            headers=env.h("alice@lab"),
        )
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["bundle_sha256"] is None
        assert job["policy_server"] == {**SERVER, "horizon": 8, "blend": "newest"}
        got = claim(env, "arm-1")
        assert got.status_code == 200, got.text
        assert got.json()["job"]["policy_server"] == job["policy_server"]
        # its episodes are reported as a bundle job's are
        r = client.post(
            attempt_url(job, 1) + "/episodes",
            json=episode(0, end_reason="max_successes"),
            headers=robot_headers(env, "arm-1"),
        )
        assert r.status_code == 200, r.text
        r = client.post(
            attempt_url(job, 1) + "/finish",
            json={"outcome": "succeeded"},
            headers=robot_headers(env, "arm-1"),
        )
        assert r.status_code == 200, r.text
        shown = client.get(f"/jobs/{job['id']}", headers=env.h("alice@lab")).json()
        assert (
            shown["status"] == "succeeded"
            and shown["policy_server"]["endpoint"] == (SERVER["endpoint"])
        )
        # a bundle job shows no policy server
        sha = upload(env)
        bundled = client.post(
            "/jobs", json={"bundle_sha256": sha, "episodes": 1}, headers=env.h("alice@lab")
        ).json()
        assert bundled["bundle_sha256"] == sha and bundled["policy_server"] is None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "bundle_sha256"),  # neither
        ({"bundle_sha256": "a" * 64, "policy_server": SERVER}, "not both"),
        ({"policy_server": {**SERVER, "endpoint": "tcp://*:7000"}}, "policy_server.endpoint"),
        ({"policy_server": {**SERVER, "endpoint": "ipc:///tmp/s"}}, "policy_server.endpoint"),
        ({"policy_server": {**SERVER, "endpoint": "tcp://h:70000"}}, "policy_server.endpoint"),
        ({"policy_server": {**SERVER, "server_key": "short"}}, "policy_server.server_key"),
        ({"policy_server": {**SERVER, "server_key": "~" * 40}}, "policy_server.server_key"),
        ({"policy_server": {**SERVER, "server_key": "#" * 40}}, "policy_server.server_key"),
        ({"policy_server": {"endpoint": SERVER["endpoint"]}}, "policy_server.server_key"),
        ({"policy_server": {**SERVER, "horizon": 0}}, "policy_server.horizon"),
        ({"policy_server": {**SERVER, "blend": "mean"}}, "policy_server.blend"),
        ({"policy_server": {**SERVER, "secret": "x"}}, "policy_server.secret"),
    ],
)
def test_refusals_name_the_field(
    database_url: str, tmp_path: Path, body: dict[str, Any], says: str
) -> None:
    env, client = jobs_env(database_url, tmp_path)
    with client:
        r = client.post("/jobs", json={"episodes": 1, **body}, headers=env.h("alice@lab"))
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "invalid_request"
        fields = [
            ".".join(str(p) for p in d["loc"][1:]) + " " + d["msg"] for d in r.json()["detail"]
        ]
        assert any(says in f for f in fields), fields


def _insert_job(db: Database, **cols: object) -> None:
    names = ", ".join(cols)
    values = ", ".join(f":{k}" for k in cols)
    with db.write() as s:
        s.execute(text(f"INSERT INTO jobs ({names}) VALUES ({values})"), cols)


def _job_row(user: int, **cols: object) -> dict[str, object]:
    return {
        "user_id": user,
        "task": "reorientation",
        "episodes": 1,
        "priority": 5,
        "seed": 0,
        "status": "queued",
        "attempt": 0,
        "created_at": datetime(2030, 1, 1, tzinfo=UTC),
        "message": "",
        **cols,
    }


def test_the_database_keeps_exactly_one_policy_and_0006_downgrades(
    database_url: str, tmp_path: Path
) -> None:
    env, client = jobs_env(database_url, tmp_path)
    client.close()
    user = env.seeded.users["alice@lab"][0]
    db = Database(database_url)
    try:
        server = {"policy_endpoint": SERVER["endpoint"], "policy_server_key": KEY}
        for cols in ({}, {"bundle_sha256": "b" * 64, **server}):
            with pytest.raises(IntegrityError):
                _insert_job(db, **_job_row(user, **cols))
        # the batch copy (SQLite) kept the jobs table's older checks
        with pytest.raises(IntegrityError):
            _insert_job(db, **_job_row(user, bundle_sha256="b" * 64, status="bogus"))
        _insert_job(db, **_job_row(user, bundle_sha256="b" * 64))
        _insert_job(db, **_job_row(user, **server))
        from alembic import command

        command.downgrade(alembic_config(db.engine), "0005")
        with db.read() as s:
            left = s.execute(text("SELECT bundle_sha256 FROM jobs")).scalars().all()
        assert left == ["b" * 64]  # the job without a bundle could not stay
        upgrade(db.engine)
    finally:
        db.dispose()
