"""Job claims on the reservation service (docs/fleet.md, "Evaluation jobs"), beside its peer:
a booking on the same server, the other write that locks the robot and checks the calendar.

One `uvicorn raas.service.app:create_app` on a SQLite database (WAL, synchronous=FULL), one
robot online. Measured, one request at a time over a keep-alive connection:
- **claim**: `POST /robots/{id}/jobs/claim` with jobs queued (the claim, its hold, its lease),
  each followed (untimed) by a finish of the attempt;
- **booking** (the peer): `POST /reservations` of a free slot;
- **wake**: a worker waits in `claim?wait=10`; the time from a submit's answer to the waiting
  claim's answer (how soon an idle worker has a new job).

    python -m bench jobs_claim [-- --claims 200 --wakes 30]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.bench_service import server
from bench.common import dist_us, ratio, write_report

BUNDLE = b"bench bundle" * 100


def seed(tmp: Path) -> tuple[str, Path, str, str, int]:
    """Database URL, signing key, researcher token, robot token, robot id."""
    from raas.service.app import create_state
    from raas.service.crud import robots as robot_crud
    from raas.service.crud import tokens as token_crud
    from raas.service.crud import users as user_crud
    from raas.service.models import Role
    from raas.service.schemas import QuotaUpdate, RobotCreate, UserCreate
    from raas.service.settings import Settings

    settings = Settings(
        database_url=f"sqlite:///{tmp / 'raas.db'}", signing_key_path=tmp / "signing-key.pem"
    )
    state = create_state(settings)
    now = datetime.now(UTC)
    try:
        with state.db.write() as db:
            user = user_crud.create_user(
                db, UserCreate(email="bench@lab", name="bench", role=Role.researcher), now
            )
            user_crud.set_quota(db, user, QuotaUpdate())
            _, token = token_crud.issue(
                db, user, kind="api", name="bench", now=now, lifetime=timedelta(days=1)
            )
            robot = robot_crud.create(
                db, RobotCreate(name="shadow-1", kind="shadow-hand"), state.public_key_pem, now
            )
            _, robot_token = token_crud.issue(
                db, user, kind="robot", name="d", now=now, lifetime=None, robot_id=robot.id
            )
            robot_id = robot.id
    finally:
        state.db.dispose()
    return settings.database_url, settings.signing_key_path, token, robot_token, robot_id


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench jobs_claim", description=__doc__)
    ap.add_argument("--claims", type=int, default=200, help="claims (and bookings) timed (200)")
    ap.add_argument("--wakes", type=int, default=30, help="submits to a waiting worker (30)")
    args = ap.parse_args(argv)
    errors = 0
    with tempfile.TemporaryDirectory(prefix="raas-bench-jobs-") as tmpdir:
        tmp = Path(tmpdir)
        url, key, token, robot_token, rid = seed(tmp)
        env = {
            "RAAS_DATABASE_URL": url,
            "RAAS_SIGNING_KEY": str(key),
            "RAAS_BLOB_DIR": str(tmp / "blobs"),
        }
        with server("raas.service.app:create_app", env, tmp / "server.log") as port:
            base = f"http://127.0.0.1:{port}"
            person = {"Authorization": f"Bearer {token}"}
            robot = {"Authorization": f"Bearer {robot_token}"}
            with (
                httpx.Client(base_url=base, timeout=60.0) as c,
                httpx.Client(base_url=base, timeout=60.0) as rc,
            ):
                sha = hashlib.sha256(BUNDLE).hexdigest()
                c.put(f"/bundles/{sha}", content=BUNDLE, headers=person).raise_for_status()
                beat = {
                    "directory": {"control_endpoint": "tcp://127.0.0.1:5555", "hand_model": "h"}
                }

                def online() -> None:
                    rc.post(f"/robots/{rid}/heartbeat", json=beat, headers=robot).raise_for_status()

                def submit() -> None:
                    body = {"bundle_sha256": sha, "episodes": 1}
                    c.post("/jobs", json=body, headers=person).raise_for_status()

                online()
                for _ in range(args.claims):
                    submit()
                claims: list[int] = []
                for i in range(args.claims):
                    if i % 50 == 0:
                        online()
                    t0 = time.perf_counter_ns()
                    r = rc.post(f"/robots/{rid}/jobs/claim", headers=robot)
                    claims.append(time.perf_counter_ns() - t0)
                    if r.status_code != 200:
                        errors += 1
                        continue
                    got = r.json()
                    rc.post(
                        f"/jobs/{got['job']['id']}/attempts/{got['attempt']}/finish",
                        json={"outcome": "failed", "message": "bench"},
                        headers=robot,
                    ).raise_for_status()
                bookings: list[int] = []
                start = (datetime.now(UTC) + timedelta(days=2)).replace(
                    minute=0, second=0, microsecond=0
                )
                for i in range(args.claims):
                    s = start + timedelta(minutes=2 * i)
                    body = {
                        "robot_id": rid,
                        "starts_at": s.isoformat(),
                        "ends_at": (s + timedelta(minutes=1)).isoformat(),
                    }
                    t0 = time.perf_counter_ns()
                    r = c.post("/reservations", json=body, headers=person)
                    bookings.append(time.perf_counter_ns() - t0)
                    errors += r.status_code != 201
                wakes: list[int] = []
                for _ in range(args.wakes):
                    online()
                    answered: list[int] = []

                    def wait(answered: list[int]) -> None:
                        r = rc.post(f"/robots/{rid}/jobs/claim", params={"wait": 10}, headers=robot)
                        answered.append(time.perf_counter_ns())
                        if r.status_code == 200:
                            got = r.json()
                            rc.post(
                                f"/jobs/{got['job']['id']}/attempts/{got['attempt']}/finish",
                                json={"outcome": "failed"},
                                headers=robot,
                            )
                        else:
                            answered.append(-1)

                    waiter = threading.Thread(target=wait, args=(answered,))
                    waiter.start()
                    time.sleep(0.3)  # the claim is waiting
                    submit()
                    submitted = time.perf_counter_ns()
                    waiter.join(timeout=30)
                    if len(answered) != 1:
                        errors += 1
                        continue
                    wakes.append(answered[0] - submitted)
    results = {"claim": dist_us(claims), "booking": dist_us(bookings), "wake": dist_us(wakes)}
    for name, d in results.items():
        print(
            f"  {name:<8} p50 {d['p50'] / 1e3:>7.2f}  p99 {d['p99'] / 1e3:>7.2f}  "
            f"p99.9 {d['p999'] / 1e3:>7.2f}  max {d['max'] / 1e3:>7.2f} ms  (n={d['n']})"
        )
    summary = {
        "claim_over_booking_p50": ratio(results["claim"]["p50"], results["booking"]["p50"]),
        "claim_over_booking_p99": ratio(results["claim"]["p99"], results["booking"]["p99"]),
    }
    print(f"== machine load (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"== claim / booking: p50 x{summary['claim_over_booking_p50']}  "
        f"p99 x{summary['claim_over_booking_p99']}"
    )
    report: dict[str, Any] = {
        "settings": {
            "claims": args.claims,
            "wakes": args.wakes,
            "database": "sqlite (WAL, synchronous=FULL)",
        },
        "results": results,
        "claim_over_booking": summary,
    }
    write_report("jobs_claim", report)
    if errors:
        print(f"{errors} requests answered with an unexpected status", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
