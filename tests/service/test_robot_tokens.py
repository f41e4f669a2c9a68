"""A lost control PC: any staff member finds the robot's daemon tokens (`GET
/robots/{id}/tokens`, never the secrets) and revokes the right one, whoever made it; the daemon's
next request is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.harness import ApiEnv, api_env


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[ApiEnv]:
    e, client = api_env(database_url, tmp_path)
    with client:
        yield e
    e.state.db.dispose()


def _second_staff(env: ApiEnv) -> dict[str, str]:
    made = env.client.post(
        "/users",
        json={"email": "staff2@lab", "name": "S2", "role": "staff", "password": "staff-two-pw"},
        headers=env.h("admin@lab"),
    )
    assert made.status_code == 201, made.text
    login = env.client.post("/auth/login", json={"email": "staff2@lab", "password": "staff-two-pw"})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_any_staff_member_finds_and_revokes_a_robots_token(env: ApiEnv) -> None:
    robot = env.seeded.robots["arm-1"]
    made = env.client.post(
        f"/robots/{robot}/tokens", json={"name": "pc-in-lab-3"}, headers=env.h("staff@lab")
    )
    assert made.status_code == 201
    daemon = {"Authorization": f"Bearer {made.json()['token']}"}
    assert env.client.get(f"/robots/{robot}", headers=daemon).status_code == 200

    staff2 = _second_staff(env)
    listed = env.client.get(f"/robots/{robot}/tokens", headers=staff2)
    assert listed.status_code == 200
    [entry] = [t for t in listed.json() if t["name"] == "pc-in-lab-3"]
    assert entry["id"] == made.json()["id"] and entry["revoked_at"] is None
    assert "token" not in entry  # the secret is shown once, at creation
    other = env.client.get(f"/robots/{env.seeded.robots['arm-2']}/tokens", headers=staff2)
    assert "pc-in-lab-3" not in [t["name"] for t in other.json()]  # only its own robot's

    gone = env.client.delete(f"/auth/tokens/{entry['id']}", headers=staff2)
    assert gone.status_code == 200 and gone.json()["revoked_at"] is not None
    env.state.db.token_cache.invalidate()  # what the 1 s TTL does across processes
    refused = env.client.get(f"/robots/{robot}", headers=daemon)
    assert refused.status_code == 401 and refused.json()["error"] == "token_revoked"


def test_researchers_see_no_robot_tokens_and_staff_no_ones_sessions(env: ApiEnv) -> None:
    robot = env.seeded.robots["arm-1"]
    assert env.client.get(f"/robots/{robot}/tokens", headers=env.h("alice@lab")).status_code == 403
    # staff may revoke robots' tokens, not other people's own tokens
    mine = env.client.post("/auth/tokens", json={"name": "laptop"}, headers=env.h("alice@lab"))
    refused = env.client.delete(f"/auth/tokens/{mine.json()['id']}", headers=env.h("staff@lab"))
    assert refused.status_code == 404
