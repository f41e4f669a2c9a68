"""Booking rules per robot (issue 15, defect 2), on SQLite and PostgreSQL: bookings fall on a
time grid (whole minutes by default), have a minimum and a maximum length (researchers and
staff each), keep a buffer free between them; and no stored row, however short (rows of older
versions included), breaks a calendar feed, the availability endpoint or a lease."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar

from raas.service.models import Reservation
from tests.service.harness import ApiEnv, api_env

H = timedelta(hours=1)
MIN = timedelta(minutes=1)


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[ApiEnv]:
    e, client = api_env(database_url, tmp_path)
    client.raise_server_exceptions = False
    with client:
        yield e
    e.state.db.dispose()


def insert_row(env: ApiEnv, email: str, start: datetime, end: datetime, **kw: object) -> int:
    """A reservation row written past the application, as an older version could have."""
    with env.state.db.write() as db:
        row = Reservation(
            robot_id=env.seeded.robots["arm-1"],
            user_id=env.seeded.users[email][0],
            starts_at=start,
            ends_at=end,
            status=kw.pop("status", "confirmed"),
            purpose=kw.pop("purpose", ""),
            created_at=env.clock.now,
            updated_at=env.clock.now,
        )
        db.add(row)
        db.flush()
        return row.id


def feeds_and_availability_answer(env: ApiEnv) -> list[Calendar]:
    robot = env.seeded.robots["arm-1"]
    out = []
    for email, path in [
        ("alice@lab", f"/robots/{robot}/calendar.ics"),
        ("bob@lab", f"/robots/{robot}/calendar.ics"),
        ("staff@lab", f"/robots/{robot}/calendar.ics"),
        ("alice@lab", f"/users/{env.seeded.users['alice@lab'][0]}/calendar.ics"),
    ]:
        r = env.client.get(path, headers=env.h(email))
        assert r.status_code == 200, (path, r.text)
        out.append(Calendar.from_ical(r.content))
    r = env.client.get(
        f"/robots/{robot}/availability",
        params={"starts_at": env.at(-29 * 24 * H), "ends_at": env.at(300 * 24 * H)},
        headers=env.h("bob@lab"),
    )
    assert r.status_code == 200, r.text
    return out


def test_sub_second_and_off_grid_bookings_are_refused(env: ApiEnv) -> None:
    start = (env.clock.now + 24 * H).replace(hour=10, minute=0)
    for end in (
        start + timedelta(microseconds=1),
        start + timedelta(seconds=0.7),
        start + timedelta(seconds=90),
    ):
        r = env.client.post(
            "/reservations",
            json={
                "robot_id": env.seeded.robots["arm-1"],
                "starts_at": start.isoformat(),
                "ends_at": end.isoformat(),
            },
            headers=env.h("alice@lab"),
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "off_granularity" and "ends_at" in r.json()["detail"]
    r = env.book("alice@lab", H + timedelta(seconds=30), 2 * H)
    assert r.status_code == 422 and r.json()["error"] == "off_granularity"
    assert env.book("alice@lab", H, H + MIN).status_code == 201  # one whole minute is fine
    feeds_and_availability_answer(env)


def test_length_limits_for_researchers_and_staff(env: ApiEnv) -> None:
    # defaults: a researcher books at most 24 h, staff 14 days
    r = env.book("alice@lab", H, 26 * H)
    assert r.status_code == 422 and r.json()["error"] == "booking_too_long", r.text
    assert env.book("staff@lab", H, 26 * H).status_code == 201
    robot = env.seeded.robots["arm-2"]
    staff = env.h("staff@lab")
    r = env.client.patch(
        f"/robots/{robot}",
        json={"min_booking_s": 1800, "max_booking_s": 3600, "staff_max_booking_s": 7200},
        headers=staff,
    )
    assert r.status_code == 200, r.text
    rules = r.json()["booking_rules"]
    assert rules == {
        "granularity_s": 60,
        "min_s": 1800,
        "max_s": 3600,
        "staff_max_s": 7200,
        "buffer_s": 0,
    }
    r = env.book("alice@lab", H, H + 10 * MIN, robot="arm-2")
    assert r.status_code == 422 and r.json()["error"] == "booking_too_short"
    r = env.book("alice@lab", H, 3 * H, robot="arm-2")
    assert r.status_code == 422 and r.json()["error"] == "booking_too_long"
    assert env.book("alice@lab", H, 2 * H, robot="arm-2").status_code == 201
    r = env.book("staff@lab", 3 * H, 6 * H, robot="arm-2")
    assert r.status_code == 422 and r.json()["error"] == "booking_too_long"
    assert env.book("staff@lab", 3 * H, 5 * H, robot="arm-2").status_code == 201
    # null returns a rule to the service default
    r = env.client.patch(f"/robots/{robot}", json={"max_booking_s": None}, headers=staff)
    assert r.json()["booking_rules"]["max_s"] == 24 * 3600
    # a minimum off the grid contradicts it
    r = env.client.patch(
        f"/robots/{robot}",
        json={"booking_granularity_s": 900, "min_booking_s": 1000},
        headers=staff,
    )
    assert r.status_code == 422 and r.json()["error"] == "invalid_booking_rules"


def test_the_rules_are_checked_merged_with_the_stored_and_default_ones(env: ApiEnv) -> None:
    """A PATCH of one rule is judged with the rules in force: the robot's stored values and the
    service's defaults for what neither sets (the default minimum is 60 s)."""
    robot, staff = env.seeded.robots["arm-2"], env.h("staff@lab")
    r = env.client.patch(f"/robots/{robot}", json={"booking_granularity_s": 7}, headers=staff)
    assert r.status_code == 422 and r.json()["error"] == "invalid_booking_rules", r.text
    r = env.client.patch(f"/robots/{robot}", json={"min_booking_s": 900}, headers=staff)
    assert r.status_code == 200
    r = env.client.patch(f"/robots/{robot}", json={"booking_granularity_s": 600}, headers=staff)
    assert r.status_code == 422 and "900" in r.json()["detail"]
    assert env.client.get(f"/robots/{robot}", headers=staff).json()["booking_rules"] == {
        "granularity_s": 60,
        "min_s": 900,
        "max_s": 24 * 3600,
        "staff_max_s": 14 * 24 * 3600,
        "buffer_s": 0,
    }
    # a grid coarser than the default minimum lifts it (one grid step): no contradiction
    r = env.client.patch(
        f"/robots/{robot}",
        json={"min_booking_s": None, "booking_granularity_s": 300},
        headers=staff,
    )
    assert r.status_code == 200 and r.json()["booking_rules"]["min_s"] == 300
    r = env.client.post(
        "/robots", json={"name": "arm-9", "kind": "hand", "booking_granularity_s": 7}, headers=staff
    )
    assert r.status_code == 422 and r.json()["error"] == "invalid_booking_rules"


def test_a_robot_grid_and_buffer(env: ApiEnv) -> None:
    robot = env.seeded.robots["arm-2"]
    r = env.client.patch(
        f"/robots/{robot}",
        json={"booking_granularity_s": 900, "buffer_s": 600},
        headers=env.h("staff@lab"),
    )
    assert r.status_code == 200, r.text
    base = (env.clock.now + 24 * H).replace(hour=8, minute=0) - env.clock.now
    r = env.book("alice@lab", base + 5 * MIN, base + H, robot="arm-2")
    assert r.status_code == 422 and r.json()["error"] == "off_granularity"
    assert env.book("alice@lab", base, base + H, robot="arm-2").status_code == 201
    # back to back leaves no time for the reset: refused, by name
    r = env.book("bob@lab", base + H, base + 2 * H, robot="arm-2")
    assert r.status_code == 409 and r.json()["error"] == "buffer_conflict", r.text
    r = env.book("bob@lab", base - H, base, robot="arm-2")
    assert r.status_code == 409 and r.json()["error"] == "buffer_conflict"
    # an overlap is still an overlap
    r = env.book("bob@lab", base + 30 * MIN, base + 2 * H, robot="arm-2")
    assert r.json()["error"] == "reservation_conflict"
    assert env.book("bob@lab", base + H + 15 * MIN, base + 2 * H, robot="arm-2").status_code == 201


@pytest.mark.parametrize("length", [timedelta(microseconds=1), timedelta(seconds=0.7)])
def test_rows_of_older_versions_never_break_a_feed_or_a_lease(
    env: ApiEnv, length: timedelta
) -> None:
    start = (env.clock.now + 24 * H).replace(hour=10, minute=0)
    rid = insert_row(env, "alice@lab", start, start + length, purpose="tiny")
    cals = feeds_and_availability_answer(env)
    event = next(e for e in cals[0].walk("VEVENT") if str(e["uid"]) == f"reservation-{rid}@raas")
    assert event.decoded("dtend") > event.decoded("dtstart")
    # a lease would have nbf after exp: refused by name instead
    r = env.client.post(f"/reservations/{rid}/lease", json={}, headers=env.h("alice@lab"))
    assert r.status_code == 409 and r.json()["error"] == "reservation_too_short", r.text
    # cancelling works and the feed still renders (the cancelled event stays in it)
    r = env.client.post(f"/reservations/{rid}/cancel", headers=env.h("alice@lab"))
    assert r.status_code == 200, r.text
    cals = feeds_and_availability_answer(env)
    statuses = {str(e["uid"]): str(e["status"]) for e in cals[0].walk("VEVENT")}
    assert statuses[f"reservation-{rid}@raas"] == "CANCELLED"


def test_leases_lie_inside_their_booking(env: ApiEnv) -> None:
    r = env.book("alice@lab", MIN, 2 * MIN)
    assert r.status_code == 201, r.text
    lease = env.client.post(
        f"/reservations/{r.json()['id']}/lease", json={}, headers=env.h("alice@lab")
    ).json()
    nbf = datetime.fromisoformat(lease["not_before"])
    exp = datetime.fromisoformat(lease["expires_at"])
    assert nbf < exp and nbf.tzinfo is not None and exp - nbf == MIN
    assert nbf.astimezone(UTC) == datetime.fromisoformat(r.json()["starts_at"])
