"""Submitting, listing, reading and cancelling jobs: refusals name what is wrong, and a
researcher sees and cancels only their own jobs (others' answer 404, as if missing)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.service.jobs_harness import HANDS, jobs_env, report_in, robot_headers, submit, upload


def test_refusals(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path)
    with client:
        report_in(env, "arm-1")
        sha = upload(env)
        h = env.h("alice@lab")

        def post(**body: object) -> tuple[int, object]:
            r = client.post("/jobs", json={"bundle_sha256": sha, "episodes": 1, **body}, headers=h)
            return r.status_code, r.json().get("error")

        assert post(robot="arm-9") == (422, "unknown_robot")
        r = client.post(
            "/jobs", json={"bundle_sha256": sha, "episodes": 1, "robot": "x"}, headers=h
        )
        assert "arm-1, arm-2" in r.json()["detail"]
        assert post(hand_model="no-such-hand") == (422, "no_qualifying_robot")
        assert post(bundle_sha256="f" * 64) == (404, "bundle_not_found")
        assert post(priority=9) == (403, "forbidden")
        assert post(deadline=env.at(-timedelta(minutes=1))) == (422, "invalid_time_range")
        assert post(robot="arm-1", hand_model=HANDS["arm-1"]) == (422, "invalid_request")
        assert post(episodes=0) == (422, "invalid_request")
        assert post(episodes=1001) == (422, "invalid_request")
        assert post(episodes="2") == (422, "invalid_request")  # strict: a string is no int
        assert post(task="juggling") == (422, "invalid_request")
        assert post(colour="red") == (422, "invalid_request")  # unknown fields are refused
        # staff may use a high priority; a hand model a robot has is fine
        staff = client.post(
            "/jobs",
            json={"bundle_sha256": sha, "episodes": 1, "priority": 9},
            headers=env.h("staff@lab"),
        )
        assert staff.status_code == 201, staff.text
        assert post(hand_model=HANDS["arm-1"])[0] == 201
        # robots do not submit
        r = client.post(
            "/jobs", json={"bundle_sha256": sha, "episodes": 1}, headers=robot_headers(env, "arm-1")
        )
        assert r.status_code == 403


def test_researchers_see_and_cancel_only_their_own(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path)
    with client:
        mine = submit(env, "alice@lab")
        theirs = submit(env, "bob@lab")
        listed = client.get("/jobs", headers=env.h("alice@lab")).json()
        assert [j["id"] for j in listed] == [mine["id"]]
        assert listed[0]["user"] == "alice@lab" and listed[0]["results"] == []
        for path in (f"/jobs/{theirs['id']}", f"/jobs/{theirs['id']}/logs"):
            r = client.get(path, headers=env.h("alice@lab"))
            assert r.status_code == 404 and r.json()["error"] == "not_found"
        r = client.post(f"/jobs/{theirs['id']}/cancel", headers=env.h("alice@lab"))
        assert r.status_code == 404
        assert client.get(f"/jobs/{theirs['id']}", headers=env.h("bob@lab")).json()["status"] == (
            "queued"
        )
        # staff see all (or their own with mine=true) and may cancel anyone's
        staff = client.get("/jobs", headers=env.h("staff@lab")).json()
        assert {j["id"] for j in staff} == {mine["id"], theirs["id"]}
        assert client.get("/jobs?mine=true", headers=env.h("staff@lab")).json() == []
        r = client.post(f"/jobs/{theirs['id']}/cancel", headers=env.h("staff@lab"))
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert "staff@lab" in r.json()["message"]
        again = client.post(f"/jobs/{theirs['id']}/cancel", headers=env.h("bob@lab"))
        assert again.status_code == 409 and again.json()["error"] == "job_not_active"
        queued = client.get("/jobs?status=queued", headers=env.h("staff@lab")).json()
        assert [j["id"] for j in queued] == [mine["id"]]
        logs = client.get(f"/jobs/{theirs['id']}/logs", headers=env.h("bob@lab")).json()
        assert [e["kind"] for e in logs] == ["submitted", "cancelled"]
        assert logs[1]["data"] == {"by": "staff@lab"}
