"""Booking rules through the HTTP API, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.harness import ROLES, Clock, Seeded, make_client, seed, settings_for

H = timedelta(hours=1)


class Env:
    def __init__(self, client: TestClient, seeded: Seeded, clock: Clock) -> None:
        self.client = client
        self.seeded = seeded
        self.clock = clock

    def h(self, email: str) -> dict[str, str]:
        return self.seeded.headers(email)

    def book(self, email: str, start: timedelta, end: timedelta, robot: str = "arm-1") -> Any:
        return self.client.post(
            "/reservations",
            json={
                "robot_id": self.seeded.robots[robot],
                "starts_at": (self.clock.now + start).isoformat(),
                "ends_at": (self.clock.now + end).isoformat(),
                "purpose": "test",
            },
            headers=self.h(email),
        )


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = settings_for(database_url, tmp_path)
    seeded = seed(settings, users=ROLES, robots=("arm-1", "arm-2"))
    clock = Clock()
    client, state = make_client(settings, clock)
    with client:
        yield Env(client, seeded, clock)
    state.db.dispose()


def test_overlapping_booking_is_refused_with_409(env: Env) -> None:
    assert env.book("alice@lab", H, 2 * H).status_code == 201
    for start, end in [(H, 2 * H), (H / 2, H * 1.5), (H * 1.5, 3 * H), (0 * H, 4 * H)]:
        r = env.book("bob@lab", start, end)
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "reservation_conflict"
    # back to back is fine ([start, end) ranges), and another robot is independent
    assert env.book("bob@lab", 2 * H, 3 * H).status_code == 201
    assert env.book("bob@lab", H, 2 * H, robot="arm-2").status_code == 201


def test_cancelled_slot_can_be_booked_again(env: Env) -> None:
    rid = env.book("alice@lab", H, 2 * H).json()["id"]
    r = env.client.post(f"/reservations/{rid}/cancel", headers=env.h("alice@lab"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    again = env.client.post(f"/reservations/{rid}/cancel", headers=env.h("alice@lab"))
    assert again.status_code == 409
    assert env.book("bob@lab", H, 2 * H).status_code == 201


def test_invalid_ranges(env: Env) -> None:
    assert env.book("alice@lab", 2 * H, H).status_code == 422
    assert env.book("alice@lab", H, H).status_code == 422
    assert env.book("alice@lab", -3 * H, -2 * H).status_code == 422
    r = env.client.post(
        "/reservations",
        json={"robot_id": 1, "starts_at": "2030-01-01T10:00:00", "ends_at": "2030-01-01T11:00"},
        headers=env.h("alice@lab"),
    )
    assert r.status_code == 422  # naive times are refused


def test_researchers_see_only_their_own(env: Env) -> None:
    rid = env.book("alice@lab", H, 2 * H).json()["id"]
    assert env.client.get(f"/reservations/{rid}", headers=env.h("bob@lab")).status_code == 404
    r = env.client.post(f"/reservations/{rid}/cancel", headers=env.h("bob@lab"))
    assert r.status_code == 404
    assert env.client.get("/reservations", headers=env.h("bob@lab")).json() == []
    mine = env.client.get("/reservations", headers=env.h("alice@lab")).json()
    assert [x["id"] for x in mine] == [rid]
    everyone = env.client.get("/reservations", headers=env.h("staff@lab")).json()
    assert [x["id"] for x in everyone] == [rid]
    # staff may cancel anyone's
    r = env.client.post(f"/reservations/{rid}/cancel", headers=env.h("staff@lab"))
    assert r.status_code == 200 and r.json()["cancel_reason"].startswith("cancelled by staff")


def test_quota_hours_per_week_and_days_ahead(env: Env) -> None:
    alice = env.seeded.users["alice@lab"][0]
    r = env.client.put(
        f"/users/{alice}/quota",
        json={"hours_per_week": 3, "max_days_ahead": 10},
        headers=env.h("staff@lab"),
    )
    assert r.status_code == 200 and r.json()["default"] is False
    # Pick a start at the beginning of next week so all bookings fall into one week.
    now = env.clock.now
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0)
    base = monday + timedelta(days=7) - now
    assert env.book("alice@lab", base + H, base + 3 * H).status_code == 201
    r = env.book("alice@lab", base + 4 * H, base + 6 * H, robot="arm-2")
    assert r.status_code == 403 and r.json()["error"] == "quota_exceeded"
    assert env.book("alice@lab", base + 4 * H, base + 5 * H, robot="arm-2").status_code == 201
    r = env.book("alice@lab", timedelta(days=11), timedelta(days=11) + H)
    assert r.status_code == 403 and r.json()["error"] == "too_far_ahead"
    # researchers may not set quotas
    r = env.client.put(f"/users/{alice}/quota", json={}, headers=env.h("alice@lab"))
    assert r.status_code == 403


def test_maintenance_cancels_overlapping_bookings_and_blocks_new_ones(env: Env) -> None:
    rid = env.book("alice@lab", H, 2 * H).json()["id"]
    keep = env.book("alice@lab", 3 * H, 4 * H).json()["id"]
    now = env.clock.now
    r = env.client.post(
        "/maintenance",
        json={
            "robot_id": env.seeded.robots["arm-1"],
            "starts_at": (now + H * 1.5).isoformat(),
            "ends_at": (now + 2.5 * H).isoformat(),
            "reason": "tendon swap",
        },
        headers=env.h("staff@lab"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["cancelled_reservations"] == [rid]
    got = env.client.get(f"/reservations/{rid}", headers=env.h("alice@lab")).json()
    assert got["status"] == "cancelled" and "maintenance" in got["cancel_reason"]
    kept = env.client.get(f"/reservations/{keep}", headers=env.h("alice@lab")).json()
    assert kept["status"] == "confirmed"
    r = env.book("bob@lab", 2 * H, 3 * H)
    assert r.status_code == 409 and r.json()["error"] == "maintenance_conflict"
    avail = env.client.get(
        f"/robots/{env.seeded.robots['arm-1']}/availability",
        params={"starts_at": now.isoformat(), "ends_at": (now + 5 * H).isoformat()},
        headers=env.h("bob@lab"),
    ).json()
    assert [b["kind"] for b in avail["busy"]] == ["maintenance", "reservation"]


def test_failed_health_check_blocks_bookings_until_staff_clear(env: Env) -> None:
    robot = env.seeded.robots["arm-1"]
    daemon = {"Authorization": f"Bearer {env.seeded.robot_tokens['arm-1']}"}
    r = env.client.post(f"/robots/{robot}/heartbeat", json={"status": "available"}, headers=daemon)
    assert r.status_code == 200 and r.json()["online"] is True
    r = env.client.post(
        f"/robots/{robot}/heartbeat",
        json={"status": "available", "health_ok": False, "note": "finger 3 encoder drift"},
        headers=daemon,
    )
    assert r.json()["health_blocked"] is True and r.json()["bookable"] is False
    r = env.book("alice@lab", H, 2 * H)
    assert r.status_code == 409 and r.json()["error"] == "robot_not_bookable"
    # the daemon cannot clear itself, nor can a researcher; a robot token is no user token
    assert (
        env.client.post(f"/robots/{robot}/clear-health", json={}, headers=daemon).status_code == 403
    )
    r = env.client.post(f"/robots/{robot}/clear-health", json={}, headers=env.h("alice@lab"))
    assert r.status_code == 403
    assert env.client.get("/reservations", headers=daemon).status_code == 403
    r = env.client.post(
        f"/robots/{robot}/clear-health", json={"note": "recalibrated"}, headers=env.h("staff@lab")
    )
    assert r.json()["health_blocked"] is False
    assert env.book("alice@lab", H, 2 * H).status_code == 201
    # another robot's daemon token does not act for this robot
    other = {"Authorization": f"Bearer {env.seeded.robot_tokens['arm-2']}"}
    assert env.client.post(f"/robots/{robot}/heartbeat", json={}, headers=other).status_code == 403
    # no heartbeat for longer than the timeout: reported offline
    env.clock.advance(timedelta(minutes=5))
    assert env.client.get(f"/robots/{robot}", headers=env.h("alice@lab")).json()["online"] is False


def test_login_cookie_tokens_and_logout(env: Env) -> None:
    admin = env.h("admin@lab")
    r = env.client.post(
        "/users",
        json={
            "email": "carol@lab",
            "name": "Carol",
            "role": "researcher",
            "password": "s3cret-pass",
        },
        headers=admin,
    )
    assert r.status_code == 201
    assert (
        env.client.post(
            "/users", json={"email": "carol@lab", "name": "C", "password": "x" * 8}, headers=admin
        ).status_code
        == 409
    )
    bad = env.client.post("/auth/login", json={"email": "carol@lab", "password": "wrong-pass"})
    assert bad.status_code == 401
    r = env.client.post("/auth/login", json={"email": "carol@lab", "password": "s3cret-pass"})
    assert r.status_code == 200
    assert env.client.cookies.get("raas_session") == r.json()["access_token"]
    # the cookie alone authenticates (the booking page)
    assert env.client.get("/auth/me").json()["email"] == "carol@lab"
    r = env.client.post("/auth/tokens", json={"name": "script", "expires_in_days": 1})
    assert r.status_code == 201
    api_token, token_id = r.json()["token"], r.json()["id"]
    bearer = {"Authorization": f"Bearer {api_token}"}
    assert env.client.get("/auth/me", headers=bearer).status_code == 200
    assert env.client.delete(f"/auth/tokens/{token_id}").status_code == 200
    r = env.client.get("/auth/me", headers=bearer)
    assert r.status_code == 401 and r.json()["error"] == "token_revoked"
    assert env.client.post("/auth/logout").status_code == 204
    env.client.cookies.clear()
    assert env.client.get("/auth/me").status_code == 401
    # expiry
    r = env.client.post(
        "/auth/tokens", json={"name": "short", "expires_in_days": 1}, headers=env.h("bob@lab")
    )
    short = {"Authorization": f"Bearer {r.json()['token']}"}
    env.clock.advance(timedelta(days=1, seconds=1))
    r = env.client.get("/auth/me", headers=short)
    assert r.status_code == 401 and r.json()["error"] == "token_expired"


def test_audit_log_records_who_did_what(env: Env) -> None:
    rid = env.book("alice@lab", H, 2 * H).json()["id"]
    env.client.post(f"/reservations/{rid}/cancel", headers=env.h("staff@lab"))
    entries = env.client.get("/audit", headers=env.h("admin@lab")).json()
    alice, staff = env.seeded.users["alice@lab"][0], env.seeded.users["staff@lab"][0]
    assert {"actor_id": staff, "action": "reservation.cancel", "target": f"reservation:{rid}"} in [
        {k: e[k] for k in ("actor_id", "action", "target")} for e in entries
    ]
    assert any(e["actor_id"] == alice and e["action"] == "reservation.create" for e in entries)
    assert env.client.get("/audit", headers=env.h("alice@lab")).status_code == 403


def test_a_daemon_cannot_lift_maintenance_status(env: Env) -> None:
    robot = env.seeded.robots["arm-1"]
    daemon = {"Authorization": f"Bearer {env.seeded.robot_tokens['arm-1']}"}
    beat = env.client.post(
        f"/robots/{robot}/heartbeat", json={"status": "maintenance"}, headers=daemon
    )
    assert beat.json()["status"] == "maintenance" and beat.json()["bookable"] is False
    assert env.book("alice@lab", H, 2 * H).json()["error"] == "robot_not_bookable"
    beat = env.client.post(
        f"/robots/{robot}/heartbeat", json={"status": "available"}, headers=daemon
    )
    assert beat.json()["status"] == "maintenance"
    r = env.client.patch(
        f"/robots/{robot}", json={"status": "available"}, headers=env.h("staff@lab")
    )
    assert r.json()["bookable"] is True
    assert env.book("alice@lab", H, 2 * H).status_code == 201
