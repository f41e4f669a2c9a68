"""The robot's calendar feed shows who booked and why only to staff and to the booker
(issue 15, defect 3); anyone else sees busy blocks, as on the page and in the availability.
On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from icalendar import Calendar

from tests.service.harness import ApiEnv, api_env

H = timedelta(hours=1)


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[ApiEnv]:
    e, client = api_env(database_url, tmp_path)
    with client:
        yield e
    e.state.db.dispose()


def feed_as(env: ApiEnv, email: str) -> dict[str, str]:
    robot = env.seeded.robots["arm-1"]
    r = env.client.get(f"/robots/{robot}/calendar.ics", headers=env.h(email))
    assert r.status_code == 200, r.text
    return {
        str(e["uid"]): str(e["summary"]) + "|" + str(e.get("description", ""))
        for e in Calendar.from_ical(r.content).walk("VEVENT")
    }


def test_others_bookings_are_busy_blocks_unless_the_reader_is_staff(env: ApiEnv) -> None:
    mine = env.book("alice@lab", H, 2 * H, purpose="grasp study A").json()["id"]
    theirs = env.book("bob@lab", 3 * H, 4 * H, purpose="secret project B").json()["id"]
    uid_mine, uid_theirs = f"reservation-{mine}@raas", f"reservation-{theirs}@raas"

    alice = feed_as(env, "alice@lab")
    assert "alice" in alice[uid_mine] and "grasp study A" in alice[uid_mine]
    assert "bob" not in alice[uid_theirs] and "secret project B" not in alice[uid_theirs]
    assert alice[uid_theirs].startswith("arm-1: booked")

    for email in ("staff@lab", "admin@lab"):
        staff = feed_as(env, email)
        assert "bob" in staff[uid_theirs] and "secret project B" in staff[uid_theirs]
        assert "alice" in staff[uid_mine]
    # the feed URL with an API token (calendar apps) follows the same rule
    robot = env.seeded.robots["arm-1"]
    r = env.client.get(
        f"/robots/{robot}/calendar.ics", params={"token": env.seeded.token("bob@lab")}
    )
    assert b"grasp study A" not in r.content and b"secret project B" in r.content
