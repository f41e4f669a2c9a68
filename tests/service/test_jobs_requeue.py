"""No job lost, none run twice: an attempt whose worker goes silent for the claim timeout is
requeued with its finished episodes kept and its lease revoked (the daemon's revocation feed
names it); the old attempt's later posts are refused with 409 stale_attempt; a worker that
stops early (finish `interrupted`) puts the job back the same way."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.service.jobs_harness import (
    advance,
    attempt_url,
    beat,
    claim,
    episode,
    jobs_env,
    report_in,
    robot_headers,
    submit,
)


def test_a_silent_claim_is_requeued_with_its_episodes_kept(
    database_url: str, tmp_path: Path
) -> None:
    env, client = jobs_env(database_url, tmp_path)
    h1 = robot_headers(env, "arm-1")
    with client:
        report_in(env, "arm-1")
        report_in(env, "arm-2")
        job = submit(env, episodes=3)
        first = claim(env, "arm-1").json()
        assert first["attempt"] == 1
        r = client.post(attempt_url(job, 1) + "/episodes", json=episode(0), headers=h1)
        assert r.status_code == 200 and r.json()["episodes_done"] == 1
        advance(env, 10)
        assert beat(env, job, 1).status_code == 200
        report_in(env, "arm-2")
        # 10 s since its last heartbeat: not yet (the claim timeout is 20 s)
        advance(env, 10)
        report_in(env, "arm-2")
        assert claim(env, "arm-2").status_code == 204
        advance(env, 11)
        report_in(env, "arm-2")
        second = claim(env, "arm-2")
        assert second.status_code == 200, second.text
        got = second.json()
        assert got["attempt"] == 2 and got["job"]["claimed_by"] == "arm-2"
        assert [e["index"] for e in got["job"]["results"]] == [0]
        assert got["job"]["results"][0]["robot"] == "arm-1"
        # the old attempt's posts are refused
        for path, body in (
            ("/heartbeat", None),
            ("/episodes", episode(1)),
            ("/finish", {"outcome": "succeeded"}),
        ):
            r = client.post(attempt_url(job, 1) + path, json=body, headers=h1)
            assert r.status_code == 409 and r.json()["error"] == "stale_attempt", (path, r.text)
        r = client.put(attempt_url(job, 1) + "/episodes/1/recording", content=b"mcap", headers=h1)
        assert r.status_code == 409
        # its lease was revoked: arm-1's daemon reads it in its feed
        feed = client.get(
            f"/robots/{env.seeded.robots['arm-1']}/revocations", params={"since": 0}, headers=h1
        ).json()["revocations"]
        assert [(e["jti"], e["job_id"], e["reservation_id"]) for e in feed] == [
            (first["lease"]["jti"], job["id"], None)
        ]
        # arm-1 may not post for arm-2's attempt either
        r = client.post(attempt_url(job, 2) + "/episodes", json=episode(1), headers=h1)
        assert r.status_code == 403
        # the new attempt finishes the two episodes left
        h2 = robot_headers(env, "arm-2")
        for i in (1, 2):
            assert client.post(
                attempt_url(job, 2) + "/episodes", json=episode(i), headers=h2
            ).is_success
        # an episode recorded by an earlier attempt is not overwritten
        again = client.post(attempt_url(job, 2) + "/episodes", json=episode(0), headers=h2)
        assert again.status_code == 409 and again.json()["error"] == "already_exists"
        out = client.post(
            attempt_url(job, 2) + "/finish", json={"outcome": "succeeded"}, headers=h2
        )
        assert out.json()["status"] == "succeeded" and out.json()["episodes_done"] == 3
        kinds = [
            e["kind"]
            for e in client.get(f"/jobs/{job['id']}/logs", headers=env.h("alice@lab")).json()
        ]
        assert kinds == [
            "submitted",
            "claimed",
            "episode",
            "interrupted",
            "requeued",
            "claimed",
            "episode",
            "episode",
            "finished",
        ]


def test_interrupted_goes_back_to_the_queue(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path)
    h1 = robot_headers(env, "arm-1")
    with client:
        report_in(env, "arm-1")
        job = submit(env, episodes=2)
        claim(env, "arm-1")
        client.post(attempt_url(job, 1) + "/episodes", json=episode(1), headers=h1)
        r = client.post(
            attempt_url(job, 1) + "/finish",
            json={"outcome": "interrupted", "message": "e-stop"},
            headers=h1,
        )
        assert r.status_code == 200
        assert r.json()["status"] == "queued" and r.json()["claimed_by"] is None
        assert r.json()["message"] == "requeued: e-stop"
        again = claim(env, "arm-1").json()
        assert again["attempt"] == 2 and again["job"]["episodes_done"] == 1
        # hold for the one episode left: 60 s + 30 s
        assert (again["job"]["status"], len(again["job"]["results"])) == ("running", 1)
        # "succeeded" with an episode missing is a failure, not a success
        r = client.post(attempt_url(job, 2) + "/finish", json={"outcome": "succeeded"}, headers=h1)
        assert r.json()["status"] == "failed"
        assert "1 of 2 episodes" in r.json()["message"]


def test_a_queued_job_expires_at_its_deadline(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path)
    with client:
        report_in(env, "arm-1")
        job = submit(env, robot="arm-2", deadline=env.at(timedelta(minutes=5)))
        advance(env, 301)
        report_in(env, "arm-1")
        assert claim(env, "arm-1").status_code == 204  # the claim's sweep expires it
        got = client.get(f"/jobs/{job['id']}", headers=env.h("alice@lab")).json()
        assert got["status"] == "expired" and got["finished_at"] is not None
        logs = client.get(f"/jobs/{job['id']}/logs", headers=env.h("alice@lab")).json()
        assert logs[-1]["kind"] == "expired"
