"""Bookings a lab expects (issue 15, item 6), on SQLite and PostgreSQL: moving a booking,
weekly series with per-occurrence refusals, Idempotency-Key on create, and the quota week in
the lab's time zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from raas.leases import load_public_key, verify_lease
from tests.service.harness import ApiEnv, Clock, api_env

H = timedelta(hours=1)
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[ApiEnv]:
    e, client = api_env(database_url, tmp_path)
    with client:
        yield e
    e.state.db.dispose()


def test_move_is_checked_like_a_new_booking_and_reissues_leases(env: ApiEnv) -> None:
    alice = env.h("alice@lab")
    rid = env.book("alice@lab", H, 2 * H).json()["id"]
    env.book("bob@lab", 4 * H, 5 * H)
    lease = env.client.post(f"/reservations/{rid}/lease", json={}, headers=alice).json()
    # onto bob's booking: refused like a new booking, nothing changes
    r = env.client.patch(
        f"/reservations/{rid}",
        json={"starts_at": env.at(4 * H), "ends_at": env.at(5 * H)},
        headers=alice,
    )
    assert r.status_code == 409 and r.json()["error"] == "reservation_conflict"
    r = env.client.patch(
        f"/reservations/{rid}",
        json={"ends_at": env.at(2 * H + 30 * timedelta(seconds=1))},
        headers=alice,
    )
    assert r.status_code == 422 and r.json()["error"] == "off_granularity"
    # overlapping its own old slot is fine
    r = env.client.patch(
        f"/reservations/{rid}",
        json={"starts_at": env.at(H + H / 2), "ends_at": env.at(3 * H)},
        headers=alice,
    )
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["starts_at"] == (env.clock.now + 1.5 * H).isoformat().replace("+00:00", "Z")
    assert moved["revision"] == 1
    [new] = moved["reissued_leases"]
    assert new["scope"] == "control" and new["jti"] != lease["jti"]
    robot = env.client.get(f"/robots/{env.seeded.robots['arm-1']}", headers=alice).json()
    key = load_public_key(robot["lease_public_key"].encode())
    when = env.clock.now + 2 * H
    claims = verify_lease(new["token"], key, robot="arm-1", scope="control", now=when.timestamp())
    assert claims.nbf == int((env.clock.now + 1.5 * H).timestamp())
    feed = env.client.get(
        f"/robots/{env.seeded.robots['arm-1']}/revocations",
        params={"since": 0, "wait": 0},
        headers={"Authorization": f"Bearer {env.seeded.robot_tokens['arm-1']}"},
    ).json()["revocations"]
    assert [(x["jti"], x["reason"]) for x in feed] == [(lease["jti"], "moved")]
    # staff may move anyone's booking, others may not see it
    r = env.client.patch(
        f"/reservations/{rid}", json={"ends_at": env.at(3 * H + H / 2)}, headers=env.h("staff@lab")
    )
    assert r.status_code == 200, r.text
    r = env.client.patch(
        f"/reservations/{rid}", json={"ends_at": env.at(4 * H)}, headers=env.h("bob@lab")
    )
    assert r.status_code == 404


def test_a_weekly_series_reports_each_occurrence(env: ApiEnv) -> None:
    base = (env.clock.now + 24 * H).replace(hour=9, minute=0)
    # bob already holds the third week's slot
    r = env.client.post(
        "/reservations",
        json={
            "robot_id": env.seeded.robots["arm-1"],
            "starts_at": (base + timedelta(weeks=2)).isoformat(),
            "ends_at": (base + timedelta(weeks=2) + H).isoformat(),
        },
        headers=env.h("bob@lab"),
    )
    assert r.status_code == 201
    series = {
        "robot_id": env.seeded.robots["arm-1"],
        "starts_at": base.isoformat(),
        "ends_at": (base + 2 * H).isoformat(),
        "purpose": "course",
        "weeks": 4,
    }
    staff = env.h("staff@lab")
    r = env.client.post("/reservations/series", json=series, headers=staff)
    assert r.status_code == 409 and r.json()["error"] == "series_conflict", r.text
    errors = [o["error"] for o in r.json()["occurrences"]]
    assert errors == [None, None, "reservation_conflict", None]
    # times written like every other answer's (Z), not Python's +00:00
    for o in r.json()["occurrences"]:
        assert o["starts_at"].endswith("Z") and o["ends_at"].endswith("Z"), o
    mine = env.client.get(
        "/reservations", params={"user_id": env.seeded.users["staff@lab"][0]}, headers=staff
    ).json()
    assert mine == []  # all or nothing
    r = env.client.post("/reservations/series", json=series | {"mode": "available"}, headers=staff)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["booked"], body["refused"]) == (3, 1)
    booked = env.client.get(
        "/reservations", params={"series_id": body["series_id"]}, headers=staff
    ).json()
    assert [b["starts_at"] for b in booked] == [
        (base + timedelta(weeks=w)).isoformat().replace("+00:00", "Z") for w in (0, 1, 3)
    ]


def test_idempotency_key_returns_the_first_booking(env: ApiEnv) -> None:
    body = {
        "robot_id": env.seeded.robots["arm-1"],
        "starts_at": env.at(H),
        "ends_at": env.at(2 * H),
        "purpose": "retry me",
    }
    headers = env.h("alice@lab") | {"Idempotency-Key": "0c1d5c52-booking-1"}
    first = env.client.post("/reservations", json=body, headers=headers)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = env.client.post("/reservations", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    # the same key for another request is refused; without a key the slot is simply taken
    r = env.client.post("/reservations", json=body | {"purpose": "other"}, headers=headers)
    assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"
    r = env.client.post("/reservations", json=body, headers=env.h("alice@lab"))
    assert r.status_code == 409
    # keys are per user: bob's same key is his own
    r = env.client.post(
        "/reservations",
        json=body | {"starts_at": env.at(3 * H), "ends_at": env.at(4 * H)},
        headers=env.h("bob@lab") | {"Idempotency-Key": "0c1d5c52-booking-1"},
    )
    assert r.status_code == 201
    assert (
        env.client.post(
            "/reservations", json=body, headers=env.h("alice@lab") | {"Idempotency-Key": "a b"}
        ).status_code
        == 422
    )
    assert len(env.client.get("/reservations", headers=env.h("alice@lab")).json()) == 1


def test_the_quota_week_follows_the_lab_time_zone(database_url: str, tmp_path: Path) -> None:
    # Sunday 2031-03-09 21:00 UTC is already Monday 00:00 in Istanbul (UTC+3 all year)
    sunday = datetime(2031, 3, 9, 12, tzinfo=UTC)
    env, client = api_env(
        database_url, tmp_path, clock=Clock(sunday), lab_timezone="Europe/Istanbul"
    )
    with client:
        staff = env.h("staff@lab")
        alice = env.seeded.users["alice@lab"][0]
        r = env.client.put(f"/users/{alice}/quota", json={"hours_per_week": 3}, headers=staff)
        assert r.status_code == 200
        # 18:00-21:00 UTC Sunday: three hours of the Istanbul week that ends at 21:00 UTC
        assert env.book("alice@lab", 6 * H, 9 * H).status_code == 201
        # 21:00-23:00 UTC Sunday is Monday in Istanbul: a new week (in UTC it would be refused)
        r = env.book("alice@lab", 9 * H, 11 * H)
        assert r.status_code == 201, r.text
        r = env.book("alice@lab", 11 * H, 13 * H, robot="arm-2")
        assert r.status_code == 403 and "week of 2031-03-10" in r.json()["detail"]
    env.state.db.dispose()
