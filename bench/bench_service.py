"""Reservation service throughput and latency against bare FastAPI, in one run.

Two workloads, each against both servers (uvicorn in a subprocess, identical settings: one
worker, h11, asyncio loop, no access log, on 127.0.0.1), the peer first, never at the same time:
  availability   GET /robots/{id}/availability for a one-week window (the calendar's read);
                 the service answers from a database holding `--prebooked` bookings
  booking        POST /reservations, each a new non-overlapping slot; the service checks the
                 robot, maintenance, quota and overlap, writes, audits and commits (fsync'd,
                 synchronous=FULL) before it answers 201
The peer (bench/peer_fastapi.py) has the same routes and models; its availability read does no
work (bare FastAPI GET) and its booking inserts the same one row with the same durability (SQLite
WAL, synchronous=FULL, commit before the 201), so the ratios say what authentication, the ORM and
the booking rules cost on top of the framework and of the write itself. With `--db postgresql`
both sides use one throwaway PostgreSQL server (tests/service/pg_server.py, fsync on), a
database each; the report is then bench/results/service_postgresql.json.

A closed loop: N keep-alive connections (`--concurrency`, default 1 and 8: 1 shows the latency of
one request alone, 8 the throughput under load), each sending its next request when the last
answer arrived, for `--duration` seconds after a short warm-up. Latency is per request,
send to last byte, in microseconds; the client is a minimal HTTP/1.1 reader on asyncio streams,
so it is not the bottleneck it would be with a full client library on 2 shared cores.

    python -m bench service -- [--duration S] [--concurrency 1,8] [--prebooked N] [--db D]
                               [--workloads availability,booking]
    python -m bench.bench_service [same options]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import dist_us, python, ratio, write_report

REPO = Path(__file__).resolve().parents[1]
UVICORN_ARGS = [
    "--host",
    "127.0.0.1",
    "--workers",
    "1",
    "--http",
    "h11",
    "--loop",
    "asyncio",
    "--log-level",
    "warning",
    "--no-access-log",
]
#: Everything is booked relative to this (a Monday, so weeks line up).
EPOCH = (datetime.now(UTC) + timedelta(days=7 - datetime.now(UTC).weekday())).replace(
    hour=0, minute=0, second=0, microsecond=0
)
PREBOOK_DAYS = 56
BOOKING_OFFSET = timedelta(days=120)
SLOT = timedelta(minutes=30)


# ---------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(app: str, env: dict[str, str], log: Path, timeout: float = 60.0) -> Iterator[int]:
    """`uvicorn --factory app` on a free port; yields the port once /health answers."""
    port = free_port()
    argv = [python(), "-m", "uvicorn", "--factory", app, "--port", str(port), *UVICORN_ARGS]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{app} exited ({proc.returncode}): {log.read_text()[-3000:]}")
            try:
                status, _ = asyncio.run(_get_once(port, "/health"))
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{app} did not answer /health in {timeout} s")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


# ---------------------------------------------------------------------------- database


@dataclass
class Seeded:
    database_url: str
    signing_key: Path
    token: str
    robot_id: int


def seed(tmp: Path, prebooked: int, database_url: str | None = None) -> Seeded:
    """A database (`database_url`, a SQLite file in `tmp` by default) with a researcher
    (unlimited quota, API token), a robot, and `prebooked` bookings by another user spread over
    the first PREBOOK_DAYS days."""
    from raas.service.app import create_state
    from raas.service.crud import robots as robot_crud
    from raas.service.crud import tokens as token_crud
    from raas.service.crud import users as user_crud
    from raas.service.models import Reservation, Role
    from raas.service.schemas import QuotaUpdate, RobotCreate, UserCreate
    from raas.service.settings import Settings

    settings = Settings(
        database_url=database_url or f"sqlite:///{tmp / 'raas.db'}",
        signing_key_path=tmp / "signing-key.pem",
    )
    state = create_state(settings)
    now = datetime.now(UTC)
    try:
        with state.db.write() as db:
            bench = user_crud.create_user(
                db, UserCreate(email="bench@lab", name="bench", role=Role.researcher), now
            )
            other = user_crud.create_user(
                db, UserCreate(email="other@lab", name="other", role=Role.researcher), now
            )
            user_crud.set_quota(db, bench, QuotaUpdate())
            _, token = token_crud.issue(
                db, bench, kind="api", name="bench", now=now, lifetime=timedelta(days=1)
            )
            robot = robot_crud.create(
                db, RobotCreate(name="shadow-1", kind="shadow-hand"), state.public_key_pem, now
            )
            step = timedelta(days=PREBOOK_DAYS) / max(prebooked, 1)
            for i in range(prebooked):
                start = EPOCH + i * step
                db.add(
                    Reservation(
                        robot_id=robot.id,
                        user_id=other.id,
                        starts_at=start,
                        ends_at=start + min(step, timedelta(hours=2)),
                        status="confirmed",
                        purpose="prebooked",
                        created_at=now,
                        updated_at=now,
                    )
                )
            robot_id = robot.id
    finally:
        state.db.dispose()
    return Seeded(settings.database_url, settings.signing_key_path, token, robot_id)


@contextmanager
def databases(kind: str, tmp: Path) -> Iterator[tuple[str | None, dict[str, str]]]:
    """The service's database URL (None: a SQLite file in `tmp`) and the peer's environment.
    `postgresql`: a throwaway server as the tests start it (tests/service/pg_server.py) but
    with PostgreSQL's durable defaults (fsync, synchronous_commit on), one database per side."""
    if kind == "sqlite":
        yield None, {"PEER_DATABASE": str(tmp / "peer.db")}
        return
    from tests.service.pg_server import start_pg_server, unavailable_reason

    why = unavailable_reason()
    if why is not None:
        raise RuntimeError(f"--db postgresql: {why}")
    pg = start_pg_server(durable=True)
    try:
        raas_url = pg.create_database("raas_bench")
        peer_url = pg.create_database("peer_bench").replace("postgresql+psycopg", "postgresql")
        yield raas_url, {"PEER_DATABASE_URL": peer_url}
    finally:
        pg.stop()


# ---------------------------------------------------------------------------- load


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, bytes(body)
        body += chunk[:-2]


async def _get_once(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        return await _read_response(reader)
    finally:
        writer.close()


def get_request(path: str, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()


def post_request(path: str, body: dict[str, Any], token: str | None) -> bytes:
    data = json.dumps(body).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


@dataclass
class Phase:
    latencies_ns: list[int] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    first_error: str = ""
    seconds: float = 0.0


async def _drive(
    port: int,
    make: Callable[[int], bytes],
    ok: int,
    counter: Iterator[int],
    concurrency: int,
    duration: float,
    phase: Phase | None,
) -> None:
    stop = time.perf_counter() + duration

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                request = make(next(counter))
                t0 = time.perf_counter_ns()
                writer.write(request)
                status, body = await _read_response(reader)
                elapsed = time.perf_counter_ns() - t0
                if phase is None:
                    continue
                phase.latencies_ns.append(elapsed)
                if status != ok:
                    phase.errors[status] = phase.errors.get(status, 0) + 1
                    phase.first_error = phase.first_error or body[:300].decode(errors="replace")
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))


def run_phase(
    port: int,
    make: Callable[[int], bytes],
    ok: int,
    counter: Iterator[int],
    concurrency: int,
    duration: float,
    warmup: float,
) -> dict[str, Any]:
    asyncio.run(_drive(port, make, ok, counter, concurrency, warmup, None))
    phase = Phase()
    t0 = time.perf_counter()
    asyncio.run(_drive(port, make, ok, counter, concurrency, duration, phase))
    phase.seconds = time.perf_counter() - t0
    n = len(phase.latencies_ns)
    return {
        "requests": n,
        "seconds": round(phase.seconds, 3),
        "per_second": round(n / phase.seconds, 1) if phase.seconds > 0 else 0.0,
        "latency_us": dist_us(phase.latencies_ns),
        "errors": {str(k): v for k, v in sorted(phase.errors.items())},
        "first_error": phase.first_error or None,
    }


def workloads(robot_id: int, token: str | None) -> dict[str, tuple[Callable[[int], bytes], int]]:
    def availability(i: int) -> bytes:
        start = EPOCH + timedelta(weeks=i % (PREBOOK_DAYS // 7))
        end = start + timedelta(days=7)
        query = f"starts_at={start:%Y-%m-%dT%H:%M:%SZ}&ends_at={end:%Y-%m-%dT%H:%M:%SZ}"
        return get_request(f"/robots/{robot_id}/availability?{query}", token)

    def booking(i: int) -> bytes:
        start = EPOCH + BOOKING_OFFSET + i * SLOT
        body = {
            "robot_id": robot_id,
            "starts_at": f"{start:%Y-%m-%dT%H:%M:%SZ}",
            "ends_at": f"{start + SLOT:%Y-%m-%dT%H:%M:%SZ}",
            "purpose": "bench",
        }
        return post_request("/reservations", body, token)

    return {"availability": (availability, 200), "booking": (booking, 201)}


# ---------------------------------------------------------------------------- report

DATABASES = {
    "sqlite": "sqlite (WAL, synchronous=FULL), a file per side",
    "postgresql": "postgresql (fsync, synchronous_commit on), one server, a database per side",
}


def _line(label: str, r: dict[str, Any]) -> str:
    d = r["latency_us"]
    errors = f"  errors {r['errors']}" if r["errors"] else ""
    return (
        f"  {label:<16} {r['per_second']:>8.1f} req/s   p50 {d['p50'] / 1e3:>7.2f}  "
        f"p99 {d['p99'] / 1e3:>7.2f}  p99.9 {d['p999'] / 1e3:>7.2f}  max {d['max'] / 1e3:>7.2f} ms"
        f"  (n={d['n']}){errors}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench service", description=__doc__)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per phase (10)")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds before each phase (1)")
    ap.add_argument(
        "--concurrency", default="1,8", help="keep-alive connections, a comma list (1,8)"
    )
    ap.add_argument("--prebooked", type=int, default=500, help="bookings already held (500)")
    ap.add_argument(
        "--workloads",
        default="availability,booking",
        help="a comma list of availability, booking (both)",
    )
    ap.add_argument(
        "--db",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="both sides' database: a SQLite file each (default) or one throwaway PostgreSQL "
        "server (fsync on), a database each",
    )
    args = ap.parse_args(argv)
    levels = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    chosen = [w.strip() for w in str(args.workloads).split(",") if w.strip()]
    unknown = sorted(set(chosen) - {"availability", "booking"})
    if unknown or not chosen:
        ap.error(f"--workloads: unknown {', '.join(unknown) or '(none given)'}")

    results: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="raas-bench-service-") as tmpdir,
        databases(args.db, Path(tmpdir)) as (raas_url, peer_env),
    ):
        tmp = Path(tmpdir)
        seeded = seed(tmp, args.prebooked, raas_url)
        sides = {
            "bare": ("bench.peer_fastapi:create_app", peer_env, None),
            "raas": (
                "raas.service.app:create_app",
                {
                    "RAAS_DATABASE_URL": seeded.database_url,
                    "RAAS_SIGNING_KEY": str(seeded.signing_key),
                },
                seeded.token,
            ),
        }
        for side, (app, env, token) in sides.items():
            print(f"== {side}: {app}", flush=True)
            with server(app, env, tmp / f"{side}.log") as port:
                counter = itertools.count()
                for name, (make, ok) in workloads(seeded.robot_id, token).items():
                    if name not in chosen:
                        continue
                    for level in levels:
                        row = run_phase(port, make, ok, counter, level, args.duration, args.warmup)
                        key = f"{name} c={level}"
                        results.setdefault(key, {})[side] = row
                        print(_line(key, row), flush=True)

    summary: dict[str, Any] = {}
    print(f"== database: {DATABASES[args.db]}")
    print(f"== machine load (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("== raas / bare")
    for name, sides_result in results.items():
        ours, bare = sides_result["raas"], sides_result["bare"]
        summary[name] = {
            "throughput_ratio": ratio(ours["per_second"], bare["per_second"]),
            "p50_ratio": ratio(ours["latency_us"]["p50"], bare["latency_us"]["p50"]),
            "p99_ratio": ratio(ours["latency_us"]["p99"], bare["latency_us"]["p99"]),
        }
        s = summary[name]
        print(
            f"  {name:<16} throughput x{s['throughput_ratio']}  p50 x{s['p50_ratio']}  "
            f"p99 x{s['p99_ratio']}"
        )
    write_report(
        "service" if args.db == "sqlite" else f"service_{args.db}",
        {
            "settings": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "concurrency": levels,
                "prebooked": args.prebooked,
                "workloads": chosen,
                "database": DATABASES[args.db],
                "uvicorn": UVICORN_ARGS,
            },
            "results": results,
            "raas_over_bare": summary,
        },
    )
    errors = sum(sum(r["errors"].values()) for sides in results.values() for r in sides.values())
    if errors:
        print(f"{errors} requests answered with an unexpected status", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
