"""200 concurrent clients book overlapping slots of one robot through a real server over
real sockets: exactly one success per conflict set, every other answer 409, no double booking
in the database. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from raas.service.db import Database
from raas.service.models import Reservation, Role
from tests.service.harness import Seeded, ServerProcess, seed, settings_for

CLIENTS = 200
SETS = 10  # conflict sets of CLIENTS // SETS requests each
USERS = 20


@pytest.fixture
def running(database_url: str, tmp_path: Path) -> Iterator[tuple[Seeded, ServerProcess]]:
    settings = settings_for(database_url, tmp_path)
    users = {f"user{i}@lab": Role.researcher for i in range(USERS)}
    seeded = seed(settings, users=users, robots=("arm-1",), unlimited=True)
    server = ServerProcess(settings, tmp_path / "server.log").start()
    try:
        yield seeded, server
    finally:
        server.stop()


def _requests(robot_id: int) -> list[tuple[int, dict[str, str | int]]]:
    """CLIENTS bookings in SETS sets; every booking in set k contains the instant
    base + k*2h + 30min (so any two in one set overlap), and the sets are 2 h apart."""
    base = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    out = []
    for i in range(CLIENTS):
        k, j = i % SETS, i // SETS
        start = base + k * timedelta(hours=2) + timedelta(minutes=j)  # offsets 0..19 min
        end = start + timedelta(minutes=40 + j)  # ends after base + k*2h + 40 min
        body: dict[str, str | int] = {
            "robot_id": robot_id,
            "starts_at": start.isoformat(),
            "ends_at": end.isoformat(),
            "purpose": f"set {k} client {i}",
        }
        out.append((k, body))
    return out


async def _storm(base_url: str, seeded: Seeded) -> list[tuple[int, int, dict[str, object]]]:
    requests = _requests(seeded.robots["arm-1"])
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120.0) as client:
        start = asyncio.Event()

        async def one(
            i: int, k: int, body: dict[str, str | int]
        ) -> tuple[int, int, dict[str, object]]:
            await start.wait()
            headers = seeded.headers(f"user{i % USERS}@lab")
            r = await client.post("/reservations", json=body, headers=headers)
            return k, r.status_code, r.json()

        tasks = [asyncio.create_task(one(i, k, b)) for i, (k, b) in enumerate(requests)]
        await asyncio.sleep(0)
        start.set()
        return await asyncio.gather(*tasks)


@pytest.mark.system
def test_200_concurrent_overlapping_bookings(running: tuple[Seeded, ServerProcess]) -> None:
    seeded, server = running
    t0 = time.perf_counter()
    answers = asyncio.run(_storm(server.base_url, seeded))
    elapsed = time.perf_counter() - t0
    statuses = [s for _, s, _ in answers]
    wins = {k: [b for kk, s, b in answers if kk == k and s == 201] for k in range(SETS)}
    print(
        f"\n{seeded.settings.database_url.split(':')[0]}: {CLIENTS} concurrent bookings in "
        f"{elapsed:.2f} s: {statuses.count(201)} x 201, {statuses.count(409)} x 409, "
        f"others {[s for s in statuses if s not in (201, 409)]}"
    )
    assert set(statuses) <= {201, 409}, statuses
    assert all(len(w) == 1 for w in wins.values()), {k: len(w) for k, w in wins.items()}
    assert statuses.count(409) == CLIENTS - SETS
    # The database agrees: exactly the acknowledged bookings, none overlapping.
    db = Database(seeded.settings.database_url)
    try:
        with db.read() as s:
            rows = s.scalars(
                select(Reservation)
                .where(Reservation.status == "confirmed")
                .order_by(Reservation.starts_at)
            ).all()
    finally:
        db.dispose()
    assert sorted(r.id for r in rows) == sorted(int(w[0]["id"]) for w in wins.values())  # type: ignore[call-overload]
    for a, b in itertools.pairwise(rows):
        assert a.ends_at <= b.starts_at, "double booking in the database"
