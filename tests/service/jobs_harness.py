"""Helpers for the evaluation-job tests: an in-process service with a blob directory, robots
that report in (heartbeat with a directory entry), bundle uploads, submits and claims."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.service.harness import ApiEnv, Clock, api_env

#: Hand models of the two seeded robots.
HANDS = {"arm-1": "shadow-e3m5", "arm-2": "allegro-v4"}
BUNDLE = b"a policy bundle: " + bytes(range(256)) * 4


def jobs_env(database_url: str, tmp: Path, **settings: object) -> tuple[ApiEnv, Any]:
    """api_env with blobs under `tmp`; both robots reported in (online, with a hand model)."""
    env, client = api_env(database_url, tmp, Clock(), blob_dir=tmp / "blobs", **settings)
    return env, client


def robot_headers(env: ApiEnv, robot: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.seeded.robot_tokens[robot]}"}


def report_in(env: ApiEnv, robot: str = "arm-1", **beat: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "directory": {
            "control_endpoint": f"tcp://127.0.0.1:{5550 + env.seeded.robots[robot]}",
            "hand_model": HANDS[robot],
        },
        **beat,
    }
    r = env.client.post(
        f"/robots/{env.seeded.robots[robot]}/heartbeat",
        json=body,
        headers=robot_headers(env, robot),
    )
    assert r.status_code == 200, r.text
    return r


def upload(env: ApiEnv, email: str = "alice@lab", data: bytes = BUNDLE) -> str:
    sha = hashlib.sha256(data).hexdigest()
    r = env.client.put(
        f"/bundles/{sha}",
        content=data,
        headers={**env.h(email), "Content-Type": "application/octet-stream"},
    )
    assert r.status_code in (200, 201), r.text
    return sha


def submit(
    env: ApiEnv, email: str = "alice@lab", sha: str | None = None, **job: Any
) -> dict[str, Any]:
    body = {"bundle_sha256": sha or upload(env, email), "episodes": 2, **job}
    r = env.client.post("/jobs", json=body, headers=env.h(email))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def claim(env: ApiEnv, robot: str = "arm-1", wait: float = 0) -> httpx.Response:
    return env.client.post(
        f"/robots/{env.seeded.robots[robot]}/jobs/claim",
        params={"wait": wait},
        headers=robot_headers(env, robot),
    )


def attempt_url(job: dict[str, Any], attempt: int) -> str:
    return f"/jobs/{job['id']}/attempts/{attempt}"


def episode(index: int, **extra: Any) -> dict[str, Any]:
    return {"index": index, "successes": 3, "end_reason": "goal_timeout", **extra}


def beat(env: ApiEnv, job: dict[str, Any], attempt: int, robot: str = "arm-1") -> httpx.Response:
    return env.client.post(
        attempt_url(job, attempt) + "/heartbeat", headers=robot_headers(env, robot)
    )


def advance(env: ApiEnv, seconds: float) -> None:
    env.clock.advance(timedelta(seconds=seconds))
