"""iCalendar feeds through the HTTP API, on SQLite and a real PostgreSQL: what a calendar app
reads must be what the database holds, also for bookings around the 2026-03-29 Berlin DST change."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy import select

from raas.service.models import MaintenanceBlock, Reservation
from raas.service.state import ServiceState
from tests.service.harness import ROLES, Clock, Seeded, make_client, seed, settings_for

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in Berlin in March 2026 (the clocks spring forward on the 29th)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=BERLIN)


@dataclass
class Env:
    client: TestClient
    seeded: Seeded
    clock: Clock
    state: ServiceState

    def book(self, email: str, start: datetime, end: datetime, purpose: str = "") -> int:
        r = self.client.post(
            "/reservations",
            json={
                "robot_id": self.seeded.robots["shadow-1"],
                "starts_at": start.isoformat(),
                "ends_at": end.isoformat(),
                "purpose": purpose,
            },
            headers=self.seeded.headers(email),
        )
        assert r.status_code == 201, r.text
        ident: int = r.json()["id"]
        return ident

    def feed(self, path: str, **kwargs: Any) -> dict[str, Any]:
        r = self.client.get(path, **kwargs)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/calendar")
        return {str(ev["uid"]): ev for ev in Calendar.from_ical(r.content).walk("VEVENT")}


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = settings_for(database_url, tmp_path)
    seeded = seed(settings, users=ROLES, robots=("shadow-1",), unlimited=True)
    clock = Clock(datetime(2026, 3, 20, 12, tzinfo=UTC))
    client, state = make_client(settings, clock)
    with client:
        yield Env(client, seeded, clock, state)
    state.db.dispose()


@pytest.mark.system
def test_robot_feed_matches_the_database_across_the_dst_change(env: Env) -> None:
    late = env.book("alice@lab", berlin(28, 22), berlin(29, 1), "night run")  # 21:00Z-00:00Z
    across = env.book("alice@lab", berlin(29, 1, 30), berlin(29, 3, 30))  # one real hour
    summer = env.book("alice@lab", berlin(29, 10), berlin(29, 12))  # 08:00Z-10:00Z
    dropped = env.book("alice@lab", berlin(30, 9), berlin(30, 10))
    env.book("bob@lab", berlin(27, 9), berlin(27, 10))
    env.clock.advance(timedelta(hours=1))
    r = env.client.post(f"/reservations/{dropped}/cancel", headers=env.seeded.headers("alice@lab"))
    assert r.status_code == 200, r.text
    r = env.client.post(
        "/maintenance",
        json={
            "robot_id": env.seeded.robots["shadow-1"],
            "starts_at": berlin(31, 8).isoformat(),
            "ends_at": berlin(31, 12).isoformat(),
            "reason": "tendon re-tensioning",
        },
        headers=env.seeded.headers("staff@lab"),
    )
    assert r.status_code == 201, r.text

    events = env.feed(
        f"/robots/{env.seeded.robots['shadow-1']}/calendar.ics",
        headers=env.seeded.headers("bob@lab"),
    )
    with env.state.db.read() as db:
        reservations = list(db.scalars(select(Reservation)))
        blocks = list(db.scalars(select(MaintenanceBlock)))
    expected = {
        f"reservation-{x.id}@raas": (x.starts_at, x.ends_at, x.status.upper()) for x in reservations
    }
    expected |= {f"maintenance-{b.id}@raas": (b.starts_at, b.ends_at, "CONFIRMED") for b in blocks}
    got = {
        uid: (ev.decoded("dtstart"), ev.decoded("dtend"), str(ev["status"]))
        for uid, ev in events.items()
    }
    assert got == expected
    assert len(got) == 6

    # the wall-clock times a Berlin calendar shows are the ones that were booked
    def local(uid: str) -> tuple[str, str]:
        ev = events[uid]
        return (
            ev.decoded("dtstart").astimezone(BERLIN).strftime("%d %H:%M %Z"),
            ev.decoded("dtend").astimezone(BERLIN).strftime("%d %H:%M %Z"),
        )

    assert local(f"reservation-{late}@raas") == ("28 22:00 CET", "29 01:00 CET")
    assert local(f"reservation-{across}@raas") == ("29 01:30 CET", "29 03:30 CEST")
    assert local(f"reservation-{summer}@raas") == ("29 10:00 CEST", "29 12:00 CEST")
    across_ev = events[f"reservation-{across}@raas"]
    assert across_ev.decoded("dtend") - across_ev.decoded("dtstart") == timedelta(hours=1)
    # bob reads alice's bookings as busy blocks; staff see who booked
    assert str(events[f"reservation-{late}@raas"]["summary"]) == "shadow-1: booked"
    assert "night run" not in str(events[f"reservation-{late}@raas"].get("description", ""))
    assert str(events[f"reservation-{dropped}@raas"]["status"]) == "CANCELLED"
    staff = env.feed(
        f"/robots/{env.seeded.robots['shadow-1']}/calendar.ics",
        headers=env.seeded.headers("staff@lab"),
    )
    assert str(staff[f"reservation-{late}@raas"]["summary"]) == "alice: reservation"


@pytest.mark.system
def test_a_cancellation_is_a_newer_revision_of_the_same_event(env: Env) -> None:
    ident = env.book("alice@lab", berlin(29, 1), berlin(29, 4))
    path = f"/users/{env.seeded.users['alice@lab'][0]}/calendar.ics"
    uid = f"reservation-{ident}@raas"
    before = env.feed(path, headers=env.seeded.headers("alice@lab"))[uid]
    env.clock.advance(timedelta(minutes=10))
    r = env.client.post(f"/reservations/{ident}/cancel", headers=env.seeded.headers("alice@lab"))
    assert r.status_code == 200, r.text
    after = env.feed(path, headers=env.seeded.headers("alice@lab"))[uid]
    assert str(before["status"]) == "CONFIRMED"
    assert str(after["status"]) == "CANCELLED"
    assert int(after["sequence"]) > int(before["sequence"])
    assert after.decoded("last-modified") == env.clock.now
    assert after.decoded("last-modified") > before.decoded("last-modified")
    assert (
        after.decoded("dtstart") == before.decoded("dtstart") == datetime(2026, 3, 29, tzinfo=UTC)
    )


@pytest.mark.system
def test_user_feed_for_calendar_apps_and_who_may_read_it(env: Env) -> None:
    mine = env.book("alice@lab", berlin(29, 10), berlin(29, 11))
    env.book("bob@lab", berlin(29, 12), berlin(29, 13))
    alice_id = env.seeded.users["alice@lab"][0]
    path = f"/users/{alice_id}/calendar.ics"
    env.client.cookies.clear()

    # a calendar app: no cookie, no header, the API token in the URL
    events = env.feed(path, params={"token": env.seeded.token("alice@lab")})
    assert list(events) == [f"reservation-{mine}@raas"]
    assert str(events[f"reservation-{mine}@raas"]["summary"]) == "shadow-1: reservation"
    assert env.feed(path, headers=env.seeded.headers("staff@lab")).keys() == events.keys()

    assert env.client.get(path).status_code == 401
    assert env.client.get(path, params={"token": "raas_not-a-token"}).status_code == 401
    assert env.client.get(path, params={"token": env.seeded.token("bob@lab")}).status_code == 404
    robot = env.seeded.robot_tokens["shadow-1"]
    assert env.client.get(path, params={"token": robot}).status_code == 403
    # a login session's secret never belongs in a URL
    session = _session_token(env, "alice@lab")
    env.client.cookies.clear()
    assert env.client.get(path, params={"token": session}).status_code == 403


def _session_token(env: Env, email: str) -> str:
    from raas.service.crud import tokens as token_crud
    from raas.service.crud import users as user_crud

    with env.state.db.write() as db:
        user = user_crud.get_by_email(db, email)
        assert user is not None
        _, secret = token_crud.issue(
            db, user, kind="session", name="login", now=env.clock.now, lifetime=timedelta(hours=1)
        )
    return secret
