"""Hypothesis state machine: create, cancel, maintenance and quotas against a simple model.

The model works in whole hours from a Monday 00:00 UTC (the service's clock is pinned there).
After every step: no two confirmed reservations of a robot overlap, no user's week holds more
hours than their quota, cancelled reservations are never active (no lease, not listed as
confirmed), and the service's reservations equal the model's.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from raas.service.models import Role
from tests.service.harness import Clock, Seeded, make_client, seed, settings_for

MONDAY = datetime(2031, 1, 6, tzinfo=UTC)  # a Monday
HOURS = 24 * 10  # bookings start within the first 10 days
_ids = itertools.count()


def at(hour: int) -> str:
    return (MONDAY + timedelta(hours=hour)).isoformat()


@dataclass
class ModelBooking:
    id: int
    user: int
    robot: int
    start: int
    end: int
    confirmed: bool = True


@dataclass
class Model:
    bookings: dict[int, ModelBooking] = field(default_factory=dict)
    maintenance: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    quota: dict[int, tuple[int, int]] = field(default_factory=dict)  # user -> (h/week, days)

    def week_hours(self, user: int) -> dict[int, int]:
        out: dict[int, int] = {}
        for b in self.bookings.values():
            if b.user == user and b.confirmed:
                for h in range(b.start, b.end):
                    out[h // 168] = out.get(h // 168, 0) + 1
        return out

    def expect_create(self, user: int, robot: int, start: int, end: int) -> tuple[int, str]:
        if any(s < end and start < e for s, e in self.maintenance.get(robot, [])):
            return 409, "maintenance_conflict"
        hours, days = self.quota[user]
        if end > days * 24:
            return 403, "too_far_ahead"
        booked = self.week_hours(user)
        for h in range(start, end):
            booked[h // 168] = booked.get(h // 168, 0) + 1
        if any(v > hours for v in booked.values()):
            return 403, "quota_exceeded"
        for b in self.bookings.values():
            if b.robot == robot and b.confirmed and b.start < end and start < b.end:
                return 409, "reservation_conflict"
        return 201, ""


def make_machine(client: TestClient, seeded: Seeded) -> type[RuleBasedStateMachine]:
    staff = seeded.headers("staff@lab")
    admin = seeded.headers("admin@lab")

    class Bookings(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model = Model()
            self.users: list[tuple[int, dict[str, str]]] = []
            self.robots: list[int] = []

        @initialize(
            quotas=st.lists(
                st.tuples(st.integers(1, 8), st.integers(1, 10)), min_size=2, max_size=2
            )
        )
        def setup(self, quotas: list[tuple[int, int]]) -> None:
            n = next(_ids)
            for i, (hours, days) in enumerate(quotas):
                r = client.post(
                    "/users",
                    json={"email": f"m{n}-{i}@lab", "name": f"m{n}-{i}", "role": "researcher"},
                    headers=admin,
                )
                uid = r.json()["id"]
                r = client.put(
                    f"/users/{uid}/quota",
                    json={"hours_per_week": hours, "max_days_ahead": days},
                    headers=staff,
                )
                assert r.status_code == 200
                self.users.append((uid, self._token_for(uid)))
                self.model.quota[uid] = (hours, days)
            for i in range(2):
                r = client.post(
                    "/robots", json={"name": f"m{n}-r{i}", "kind": "model"}, headers=staff
                )
                self.robots.append(r.json()["id"])

        def _token_for(self, uid: int) -> dict[str, str]:
            from raas.service.crud import tokens as token_crud
            from raas.service.crud import users as user_crud

            state = client.app.state.service  # type: ignore[attr-defined]
            with state.db.write() as db:
                _, secret = token_crud.issue(
                    db, user_crud.get_user(db, uid), kind="api", name="m", now=MONDAY, lifetime=None
                )
            return {"Authorization": f"Bearer {secret}"}

        @rule(
            u=st.integers(0, 1),
            r=st.integers(0, 1),
            start=st.integers(0, HOURS),
            duration=st.integers(1, 5),
        )
        def create(self, u: int, r: int, start: int, duration: int) -> None:
            uid, headers = self.users[u]
            robot = self.robots[r]
            end = start + duration
            expected = self.model.expect_create(uid, robot, start, end)
            resp = client.post(
                "/reservations",
                json={"robot_id": robot, "starts_at": at(start), "ends_at": at(end)},
                headers=headers,
            )
            body: dict[str, Any] = resp.json()
            assert (resp.status_code, body.get("error", "")) == expected, body
            if resp.status_code == 201:
                self.model.bookings[body["id"]] = ModelBooking(body["id"], uid, robot, start, end)

        @rule(pick=st.integers(0, 10_000), by_staff=st.booleans())
        def cancel(self, pick: int, by_staff: bool) -> None:
            if not self.model.bookings:
                return
            ids = sorted(self.model.bookings)
            booking = self.model.bookings[ids[pick % len(ids)]]
            owner = next(h for uid, h in self.users if uid == booking.user)
            resp = client.post(
                f"/reservations/{booking.id}/cancel", headers=staff if by_staff else owner
            )
            if booking.confirmed:
                assert resp.status_code == 200, resp.text
                booking.confirmed = False
            else:
                assert resp.status_code == 409
            lease = client.post(f"/reservations/{booking.id}/lease", json={}, headers=owner)
            assert lease.status_code == 409  # cancelled is never active

        @rule(r=st.integers(0, 1), start=st.integers(0, HOURS), duration=st.integers(1, 12))
        def maintenance(self, r: int, start: int, duration: int) -> None:
            robot = self.robots[r]
            end = start + duration
            resp = client.post(
                "/maintenance",
                json={"robot_id": robot, "starts_at": at(start), "ends_at": at(end)},
                headers=staff,
            )
            assert resp.status_code == 201, resp.text
            hit = sorted(
                b.id
                for b in self.model.bookings.values()
                if b.robot == robot and b.confirmed and b.start < end and start < b.end
            )
            assert sorted(resp.json()["cancelled_reservations"]) == hit
            for i in hit:
                self.model.bookings[i].confirmed = False
            self.model.maintenance.setdefault(robot, []).append((start, end))

        @invariant()
        def service_matches_model(self) -> None:
            for robot in self.robots:
                rows = client.get("/reservations", params={"robot_id": robot}, headers=staff).json()
                got = {x["id"]: x["status"] == "confirmed" for x in rows}
                want = {b.id: b.confirmed for b in self.model.bookings.values() if b.robot == robot}
                assert got == want
                live = sorted(
                    (x["starts_at"], x["ends_at"]) for x in rows if x["status"] == "confirmed"
                )
                for (_, end), (start, _) in itertools.pairwise(live):
                    assert end <= start, "overlap"

        @invariant()
        def quotas_hold(self) -> None:
            for uid, _ in self.users:
                hours, _days = self.model.quota[uid]
                assert all(v <= hours for v in self.model.week_hours(uid).values())

    return Bookings


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Seeded]]:
    s = settings_for(database_url, tmp_path)
    seeded = seed(s, users={"admin@lab": Role.admin, "staff@lab": Role.staff}, robots=())
    client, state = make_client(s, Clock(MONDAY))
    with client:
        yield client, seeded
    state.db.dispose()


def test_bookings_follow_the_model(service: tuple[TestClient, Seeded]) -> None:
    client, seeded = service
    run_state_machine_as_test(
        make_machine(client, seeded),
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
