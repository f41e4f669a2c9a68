"""The availability answer kept per robot and window (raas/service/commit_cache.py) never hides
a change: each change is made after the window was read (and cached), and the very next read
must show it (another process's change: within the cache's TTL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from raas.service.app import create_state
from raas.service.commit_cache import TTL_S
from raas.service.crud import robots as robot_crud
from raas.service.models import RobotStatus
from tests.service.harness import ApiEnv, api_env

H = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[ApiEnv]:
    e, client = api_env(database_url, tmp_path)
    with client:
        yield e
    e.state.db.dispose()


def read(env: ApiEnv, robot: str = "arm-1") -> dict[str, Any]:
    r = env.client.get(
        f"/robots/{env.seeded.robots[robot]}/availability",
        params={"starts_at": env.at(timedelta(0)), "ends_at": env.at(2 * DAY)},
        headers=env.h("alice@lab"),
    )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def warm(env: ApiEnv) -> dict[str, Any]:
    first = read(env)
    assert read(env) == first
    assert len(env.state.db.availability_cache) >= 1, "the window should be cached"
    return first


def test_a_new_booking_shows_at_once(env: ApiEnv) -> None:
    assert warm(env)["busy"] == []
    assert env.book("bob@lab", 2 * H, 3 * H).status_code == 201
    busy = read(env)["busy"]
    assert [b["kind"] for b in busy] == ["reservation"]


def test_a_cancelled_booking_goes_at_once(env: ApiEnv) -> None:
    r = env.book("bob@lab", 2 * H, 3 * H)
    assert r.status_code == 201, r.text
    assert len(warm(env)["busy"]) == 1
    cancel = env.client.post(
        f"/reservations/{r.json()['id']}/cancel", json={}, headers=env.h("bob@lab")
    )
    assert cancel.status_code == 200, cancel.text
    assert read(env)["busy"] == []


def test_a_maintenance_block_shows_at_once(env: ApiEnv) -> None:
    warm(env)
    r = env.client.post(
        "/maintenance",
        json={
            "robot_id": env.seeded.robots["arm-1"],
            "starts_at": env.at(4 * H),
            "ends_at": env.at(5 * H),
            "reason": "new fingertips",
        },
        headers=env.h("staff@lab"),
    )
    assert r.status_code == 201, r.text
    assert [b["kind"] for b in read(env)["busy"]] == ["maintenance"]


def test_a_robot_taken_out_of_service_is_unbookable_at_once(env: ApiEnv) -> None:
    assert warm(env)["bookable"] is True
    r = env.client.patch(
        f"/robots/{env.seeded.robots['arm-1']}",
        json={"status": "maintenance"},
        headers=env.h("staff@lab"),
    )
    assert r.status_code == 200, r.text
    assert read(env)["bookable"] is False


def test_a_change_by_another_process_shows_within_the_ttl(env: ApiEnv) -> None:
    assert warm(env)["bookable"] is True
    other = create_state(env.seeded.settings)
    try:
        with other.db.write() as db:
            robot = robot_crud.get(db, env.seeded.robots["arm-1"])
            robot.status = RobotStatus.maintenance.value
    finally:
        other.db.dispose()
    time.sleep(TTL_S + 0.5)
    assert read(env)["bookable"] is False


def test_an_unknown_robot_is_still_404(env: ApiEnv) -> None:
    r = env.client.get(
        "/robots/999/availability",
        params={"starts_at": env.at(timedelta(0)), "ends_at": env.at(DAY)},
        headers=env.h("alice@lab"),
    )
    assert r.status_code == 404
