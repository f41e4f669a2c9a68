"""200 concurrent clients book overlapping slots of one robot through a real server over
real sockets: exactly one success per conflict set, every other answer 409, no double booking
in the database. Runs on SQLite and on PostgreSQL, and on PostgreSQL also against two service
processes at once: `raasd serve --workers 2`, and two replicas the clients alternate between."""

from __future__ import annotations

import asyncio
import itertools
import os
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
from tests.service.pg_server import PgServer

CLIENTS = 200
SETS = 10  # conflict sets of CLIENTS // SETS requests each
USERS = 20


@pytest.fixture
def running(database_url: str, tmp_path: Path) -> Iterator[tuple[Seeded, list[str]]]:
    settings = settings_for(database_url, tmp_path)
    users = {f"user{i}@lab": Role.researcher for i in range(USERS)}
    seeded = seed(settings, users=users, robots=("arm-1",), unlimited=True)
    server = ServerProcess(settings, tmp_path / "server.log").start()
    try:
        yield seeded, [server.base_url]
    finally:
        server.stop()


_DB = itertools.count(1)


@pytest.fixture(params=["workers", "replicas"])
def two_processes(
    request: pytest.FixtureRequest, pg_server: PgServer, tmp_path: Path
) -> Iterator[tuple[Seeded, list[str]]]:
    """One PostgreSQL database behind two service processes: `--workers 2` (one socket, the
    kernel spreads the connections) or two replicas (each client picks one, alternating)."""
    url = pg_server.create_database(f"race_{os.getpid()}_{next(_DB)}")
    settings = settings_for(url, tmp_path)
    users = {f"user{i}@lab": Role.researcher for i in range(USERS)}
    seeded = seed(settings, users=users, robots=("arm-1",), unlimited=True)
    if request.param == "workers":
        servers = [ServerProcess(settings, tmp_path / "s.log", args=("--workers", "2"))]
    else:
        servers = [ServerProcess(settings, tmp_path / f"s{i}.log") for i in range(2)]
    try:
        for server in servers:
            server.start()
        if request.param == "workers":
            assert _worker_processes(servers[0]) == 2
        yield seeded, [s.base_url for s in servers]
    finally:
        for server in servers:
            server.stop()


def _worker_processes(server: ServerProcess) -> int:
    """Children of the server process that are uvicorn workers (multiprocessing spawns)."""
    assert server.proc is not None
    found = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        found += ppid == server.proc.pid and b"spawn_main" in cmdline
    return found


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


async def _storm(base_urls: list[str], seeded: Seeded) -> list[tuple[int, int, dict[str, object]]]:
    """Every request at once; request i goes to server i mod len(base_urls)."""
    requests = _requests(seeded.robots["arm-1"])
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(limits=limits, timeout=120.0) as client:
        start = asyncio.Event()

        async def one(
            i: int, k: int, body: dict[str, str | int]
        ) -> tuple[int, int, dict[str, object]]:
            await start.wait()
            headers = seeded.headers(f"user{i % USERS}@lab")
            url = f"{base_urls[i % len(base_urls)]}/reservations"
            r = await client.post(url, json=body, headers=headers)
            return k, r.status_code, r.json()

        tasks = [asyncio.create_task(one(i, k, b)) for i, (k, b) in enumerate(requests)]
        await asyncio.sleep(0)
        start.set()
        return await asyncio.gather(*tasks)


@pytest.mark.system
def test_200_concurrent_overlapping_bookings(running: tuple[Seeded, list[str]]) -> None:
    _no_double_booking(*running, label="one process")


@pytest.mark.system
def test_200_concurrent_overlapping_bookings_on_two_service_processes(
    two_processes: tuple[Seeded, list[str]],
) -> None:
    kind = "--workers 2" if len(two_processes[1]) == 1 else "two replicas"
    _no_double_booking(*two_processes, label=kind)


def _no_double_booking(seeded: Seeded, base_urls: list[str], label: str) -> None:
    t0 = time.perf_counter()
    answers = asyncio.run(_storm(base_urls, seeded))
    elapsed = time.perf_counter() - t0
    statuses = [s for _, s, _ in answers]
    wins = {k: [b for kk, s, b in answers if kk == k and s == 201] for k in range(SETS)}
    print(
        f"\n{seeded.settings.database_url.split(':')[0]}, {label}: "
        f"{CLIENTS} concurrent bookings in "
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
