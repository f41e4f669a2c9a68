"""A failed post-session health check, sent as the heartbeat's structured `health` report,
blocks booking (409 robot_not_bookable) and names the failed checks, until staff clear it; the
daemon repeating the same report in later heartbeats does not undo the clearing. The last
reported supervisor state is shown on the robot. SQLite and PostgreSQL."""

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
        self.robot = seeded.robots["arm-1"]
        self.daemon = {"Authorization": f"Bearer {seeded.robot_tokens['arm-1']}"}

    def beat(self, **body: Any) -> Any:
        r = self.client.post(
            f"/robots/{self.robot}/heartbeat",
            json={"status": "available", **body},
            headers=self.daemon,
        )
        assert r.status_code == 200, r.text
        return r.json()

    def book(self, hours_ahead: float) -> Any:
        start = self.clock.now + hours_ahead * H
        return self.client.post(
            "/reservations",
            json={
                "robot_id": self.robot,
                "starts_at": start.isoformat(),
                "ends_at": (start + H).isoformat(),
            },
            headers=self.seeded.headers("alice@lab"),
        )


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = settings_for(database_url, tmp_path)
    seeded = seed(settings, users=ROLES, robots=("arm-1",), unlimited=True)
    clock = Clock()
    client, state = make_client(settings, clock)
    with client:
        yield Env(client, seeded, clock)
    state.db.dispose()


def report(ok: bool, at: str, *failed: str) -> dict[str, Any]:
    checks = [{"name": "temperature", "ok": True, "detail": "max 41 C"}]
    checks += [{"name": name, "ok": False, "detail": f"{name} detail"} for name in failed]
    return {"ok": ok, "at": at, "checks": checks}


def test_failed_health_report_blocks_booking_until_staff_clear(env: Env) -> None:
    assert env.book(1).status_code == 201
    robot = env.beat(
        health=report(False, "2031-01-01T10:00:00Z", "reach", "camera_frozen"),
        health_ok=True,  # the structured report decides
        safety={"state": "idle", "reason": "home_reached"},
    )
    assert robot["health_blocked"] is True and robot["bookable"] is False
    assert "reach: reach detail" in robot["health_note"]
    assert "camera_frozen" in robot["health_note"] and "temperature" not in robot["health_note"]
    assert [c["name"] for c in robot["health_report"]["checks"]] == [
        "temperature",
        "reach",
        "camera_frozen",
    ]
    assert (robot["safety_state"], robot["safety_reason"]) == ("idle", "home_reached")

    r = env.book(3)
    assert r.status_code == 409 and r.json()["error"] == "robot_not_bookable"
    assert "camera_frozen" in r.json()["detail"]

    # nobody but staff lifts the block
    url = f"/robots/{env.robot}/clear-health"
    assert env.client.post(url, json={}, headers=env.daemon).status_code == 403
    alice = env.seeded.headers("alice@lab")
    assert env.client.post(url, json={}, headers=alice).status_code == 403
    staff = env.seeded.headers("staff@lab")
    cleared = env.client.post(url, json={"note": "camera re-seated"}, headers=staff)
    assert cleared.status_code == 200 and cleared.json()["bookable"] is True

    # the daemon keeps sending its latest (failed) report: already applied, stays cleared
    for _ in range(3):
        repeated = report(False, "2031-01-01T10:00:00Z", "reach", "camera_frozen")
        assert env.beat(health=repeated)["health_blocked"] is False
    assert env.book(3).status_code == 201
    assert env.beat(health=report(True, "2031-01-01T11:00:00Z"))["health_blocked"] is False

    # a new failed check blocks again (audited again); a later passing one does not lift it:
    # staff look at the robot first
    robot = env.beat(health=report(False, "2031-01-02T10:00:00Z", "mocap_markers"))
    assert robot["health_blocked"] is True and "mocap_markers" in robot["health_note"]
    assert env.beat(health=report(True, "2031-01-02T11:00:00Z"))["health_blocked"] is True
    assert env.book(6).status_code == 409
    audit = env.client.get("/audit", headers=staff).json()
    assert sum(e["action"] == "robot.health_failed" for e in audit) == 2
    assert sum(e["action"] == "robot.health_cleared" for e in audit) == 1


def test_failed_health_check_refuses_control_leases_of_existing_bookings(env: Env) -> None:
    """A booking made before the check failed gets no control lease until staff clear it (an
    observe lease still works: staff may watch)."""
    booking = env.book(1 / 60)  # one minute ahead (bookings fall on whole minutes)
    assert booking.status_code == 201, booking.text
    rid = booking.json()["id"]
    alice = env.seeded.headers("alice@lab")
    env.beat(
        health={
            "ok": False,
            "at": "2026-11-21T09:00:00Z",
            "checks": [{"name": "joints_range", "ok": False, "detail": "A_MFJ2 off by 0.47 rad"}],
        }
    )
    r = env.client.post(f"/reservations/{rid}/lease", json={"scope": "control"}, headers=alice)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "robot_not_bookable" and "A_MFJ2" in r.text
    r = env.client.post(f"/reservations/{rid}/lease", json={"scope": "observe"}, headers=alice)
    assert r.status_code == 201, r.text
    staff = env.seeded.headers("staff@lab")
    cleared = env.client.post(
        f"/robots/{env.robot}/clear-health", json={"note": "encoder reseated"}, headers=staff
    )
    assert cleared.status_code == 200, cleared.text
    r = env.client.post(f"/reservations/{rid}/lease", json={"scope": "control"}, headers=alice)
    assert r.status_code == 201, r.text
