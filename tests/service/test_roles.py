"""Every route against every role: anonymous, a researcher (who owns the objects in the path),
another researcher, staff, admin, and a robot daemon's token. No role may get a 2xx it is not
listed for. A new route fails this test until it is added to ALLOWED below."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from raas.service.crud import jobs as job_crud
from raas.service.crud import tokens as token_crud
from raas.service.crud import users as user_crud
from raas.service.models import Robot
from raas.service.schemas import QuotaUpdate
from raas.service.state import ServiceState
from tests.service.harness import ROLES, Clock, Seeded, make_client, seed, settings_for

ROLE_NAMES = ("anonymous", "researcher", "other_researcher", "staff", "admin", "robot")
PEOPLE = {"researcher", "other_researcher", "staff", "admin"}
STAFF = {"staff", "admin"}
OWNER_OR_STAFF = {"researcher", "staff", "admin"}
EVERYONE = set(ROLE_NAMES)

#: (method, path) -> roles that may get a 2xx.
ALLOWED: dict[tuple[str, str], set[str]] = {
    ("GET", "/health"): EVERYONE,
    ("GET", "/metrics"): STAFF,  # Prometheus scrapes with a staff API token
    ("POST", "/auth/login"): EVERYONE,  # public: the body's credentials decide
    ("POST", "/auth/logout"): PEOPLE | {"robot"},
    ("GET", "/auth/me"): PEOPLE,
    ("GET", "/auth/tokens"): PEOPLE,
    ("POST", "/auth/tokens"): PEOPLE,
    ("DELETE", "/auth/tokens/{token_id}"): {"researcher", "admin"},
    ("GET", "/users"): STAFF,
    ("POST", "/users"): {"admin"},
    ("GET", "/users/{user_id}"): OWNER_OR_STAFF,
    ("PATCH", "/users/{user_id}"): {"researcher", "admin"},
    ("GET", "/users/{user_id}/quota"): OWNER_OR_STAFF,
    ("PUT", "/users/{user_id}/quota"): STAFF,
    ("DELETE", "/users/{user_id}/quota"): STAFF,
    ("GET", "/robots"): PEOPLE,
    ("POST", "/robots"): STAFF,
    ("GET", "/robots/{robot_id}"): PEOPLE | {"robot"},
    ("PATCH", "/robots/{robot_id}"): STAFF,
    ("GET", "/robots/by-name/{name}"): PEOPLE,
    ("POST", "/robots/by-name/{name}/connect"): PEOPLE,
    ("POST", "/robots/{robot_id}/heartbeat"): STAFF | {"robot"},
    ("POST", "/robots/{robot_id}/clear-health"): STAFF,
    ("POST", "/robots/{robot_id}/tokens"): STAFF,
    ("GET", "/robots/{robot_id}/tokens"): STAFF,
    ("GET", "/robots/{robot_id}/availability"): PEOPLE,
    ("GET", "/robots/{robot_id}/lease-key"): PEOPLE | {"robot"},
    ("GET", "/robots/{robot_id}/revocations"): STAFF | {"robot"},
    ("GET", "/robots/{robot_id}/revocations/stream"): STAFF | {"robot"},
    # the researcher's booking of this robot is in the future: only staff may e-stop it now
    ("POST", "/robots/{robot_id}/estop"): STAFF,
    ("POST", "/robots/{robot_id}/clear-estop"): STAFF,
    ("GET", "/robots/{robot_id}/commands"): STAFF | {"robot"},
    ("GET", "/robots/{robot_id}/wear"): PEOPLE,
    ("PUT", "/robots/{robot_id}/wear/thresholds"): STAFF,
    ("POST", "/robots/{robot_id}/wear/reset"): STAFF,
    ("GET", "/reservations"): PEOPLE,
    ("POST", "/reservations"): PEOPLE,
    ("POST", "/reservations/series"): PEOPLE,
    ("GET", "/reservations/{reservation_id}"): OWNER_OR_STAFF,
    ("PATCH", "/reservations/{reservation_id}"): {"researcher"},
    ("POST", "/reservations/{reservation_id}/cancel"): OWNER_OR_STAFF,
    ("POST", "/reservations/{reservation_id}/lease"): OWNER_OR_STAFF,
    ("GET", "/maintenance"): PEOPLE,
    ("POST", "/maintenance"): STAFF,
    ("DELETE", "/maintenance/{block_id}"): STAFF,
    ("GET", "/audit"): STAFF,
    ("GET", "/robots/{robot_id}/calendar.ics"): PEOPLE,
    ("GET", "/users/{user_id}/calendar.ics"): OWNER_OR_STAFF,
    # evaluation jobs: the researcher submitted the job (and its bundle); the robot runs it
    ("PUT", "/bundles/{sha256}"): PEOPLE,
    ("HEAD", "/bundles/{sha256}"): PEOPLE | {"robot"},
    ("GET", "/bundles/{sha256}"): OWNER_OR_STAFF | {"robot"},
    ("POST", "/jobs"): PEOPLE,
    ("GET", "/jobs"): PEOPLE,
    ("GET", "/jobs/{job_id}"): OWNER_OR_STAFF,
    ("POST", "/jobs/{job_id}/cancel"): OWNER_OR_STAFF,
    ("GET", "/jobs/{job_id}/logs"): OWNER_OR_STAFF,
    ("GET", "/jobs/{job_id}/episodes/{index}/recording"): OWNER_OR_STAFF,
    ("POST", "/robots/{robot_id}/jobs/claim"): {"robot"},
    ("POST", "/jobs/{job_id}/attempts/{attempt}/heartbeat"): {"robot"},
    ("PUT", "/jobs/{job_id}/attempts/{attempt}/episodes/{index}/recording"): {"robot"},
    ("POST", "/jobs/{job_id}/attempts/{attempt}/episodes"): {"robot"},
    ("POST", "/jobs/{job_id}/attempts/{attempt}/finish"): {"robot"},
}
BUNDLE = b"roles bundle"
BUNDLE_SHA = hashlib.sha256(BUNDLE).hexdigest()
#: Endless responses: only the refusals are requested (an allowed role would never return).
STREAMS = {("GET", "/robots/{robot_id}/revocations/stream")}

_n = itertools.count()
#: One booking slot per world (2 h apart), counted apart from the requests' numbers.
_slots = itertools.count()


@dataclass
class World:
    """Objects owned by the researcher, and a fresh credential per role."""

    headers: dict[str, dict[str, str]]
    params: dict[str, int | str]
    clock: Clock


def _build_world(state: ServiceState, seeded: Seeded, client: TestClient, clock: Clock) -> World:
    now = clock.now
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    emails = {
        "researcher": "alice@lab",
        "other_researcher": "bob@lab",
        "staff": "staff@lab",
        "admin": "admin@lab",
    }
    with state.db.write() as db:
        for role, email in emails.items():
            user = user_crud.get_user(db, seeded.users[email][0])
            _, secret = token_crud.issue(db, user, kind="api", name="r", now=now, lifetime=None)
            headers[role] = {"Authorization": f"Bearer {secret}"}
        alice = user_crud.get_user(db, seeded.users["alice@lab"][0])
        # unlimited again (a DELETE of her quota earlier restores the 20 h week)
        user_crud.set_quota(db, alice, QuotaUpdate())
        token, _ = token_crud.issue(db, alice, kind="api", name="x", now=now, lifetime=None)
        token_id = token.id
        robot_token = _robot_token(db, alice, seeded.robots["arm-1"], now)
    headers["robot"] = {"Authorization": f"Bearer {robot_token}"}
    slot = next(_slots)
    start = now + timedelta(hours=2 * slot + 1)
    r = client.post(
        "/reservations",
        json={
            "robot_id": seeded.robots["arm-1"],
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=1)).isoformat(),
        },
        headers=headers["researcher"],
    )
    assert r.status_code == 201, r.text
    block = client.post(
        "/maintenance",
        json={
            "robot_id": seeded.robots["arm-2"],
            "starts_at": (now + timedelta(days=300 + slot)).isoformat(),
            "ends_at": (now + timedelta(days=300 + slot, hours=1)).isoformat(),
        },
        headers=headers["admin"],
    )
    assert block.status_code == 201, block.text
    params = {
        "user_id": seeded.users["alice@lab"][0],
        "reservation_id": r.json()["id"],
        "token_id": token_id,
        "robot_id": seeded.robots["arm-1"],
        "block_id": block.json()["id"],
        "name": "arm-1",
        **_running_job(state, client, headers, seeded),
    }
    return World(headers=headers, params=params, clock=clock)


def _running_job(
    state: ServiceState, client: TestClient, headers: dict[str, dict[str, str]], seeded: Seeded
) -> dict[str, int | str]:
    """A job of the researcher's, claimed by arm-1 (the robot role) with one episode recorded
    (and its recording stored); the previous world's job is cancelled to free the robot."""
    with state.db.write() as db:
        for job in job_crud.list_jobs(db, user_id=None, status="running", limit=100, offset=0):
            job_crud.cancel(db, job, user_crud.get_user(db, job.user_id), state.clock())
        # earlier routes' e-stops, maintenance or health reports would keep arm-1 from claiming
        arm = db.get_one(Robot, seeded.robots["arm-1"])
        arm.estop_latched, arm.health_blocked, arm.status = False, False, "available"
    robot = seeded.robots["arm-1"]
    beat = {"directory": {"control_endpoint": "tcp://127.0.0.1:5555", "hand_model": "h"}}
    assert client.post(f"/robots/{robot}/heartbeat", json=beat, headers=headers["robot"]).is_success
    put = client.put(f"/bundles/{BUNDLE_SHA}", content=BUNDLE, headers=headers["researcher"])
    assert put.status_code in (200, 201), put.text
    job = client.post(
        "/jobs",
        json={"bundle_sha256": BUNDLE_SHA, "episodes": 2, "robot": "arm-1"},
        headers=headers["researcher"],
    )
    assert job.status_code == 201, job.text
    claimed = client.post(f"/robots/{robot}/jobs/claim", headers=headers["robot"])
    assert claimed.status_code == 200, claimed.text
    return {
        "job_id": job.json()["id"],
        "attempt": claimed.json()["attempt"],
        "index": 0,
        "sha256": BUNDLE_SHA,
    }


def _robot_token(db: Any, issuer: Any, robot_id: int, now: Any) -> str:
    _, secret = token_crud.issue(
        db, issuer, kind="robot", name="d", now=now, lifetime=None, robot_id=robot_id
    )
    return secret


def _request(method: str, path: str, role: str, world: World, seeded: Seeded) -> dict[str, Any]:
    """Keyword arguments for a valid request to this route (the role decides, not the input)."""
    now = world.clock.now
    n = next(_n)
    start = now + timedelta(days=1, hours=n)
    booking = {
        "robot_id": seeded.robots["arm-2"],
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=1)).isoformat(),
    }
    window = {"starts_at": now.isoformat(), "ends_at": (now + timedelta(days=1)).isoformat()}
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/auth/login"): {"email": "carol@lab", "password": "carol-password"},
        ("POST", "/auth/tokens"): {"name": "t"},
        ("POST", "/users"): {"email": f"u{n}@lab", "name": "u"},
        ("PATCH", "/users/{user_id}"): {"name": "Alice"},
        ("PUT", "/users/{user_id}/quota"): {"hours_per_week": 30, "max_days_ahead": 60},
        ("POST", "/robots"): {"name": f"robot-{n}", "kind": "k"},
        ("PATCH", "/robots/{robot_id}"): {"endpoint": "tcp://x"},
        ("POST", "/robots/{robot_id}/heartbeat"): {"status": "available"},
        ("POST", "/robots/{robot_id}/clear-health"): {},
        ("POST", "/robots/{robot_id}/estop"): {"note": "role check"},
        ("POST", "/robots/{robot_id}/clear-estop"): {},
        ("PUT", "/robots/{robot_id}/wear/thresholds"): {"hours_run": 100},
        ("POST", "/robots/{robot_id}/wear/reset"): {},
        ("POST", "/robots/{robot_id}/tokens"): {"name": "daemon"},
        ("POST", "/reservations"): booking,
        ("POST", "/reservations/series"): booking | {"weeks": 1},
        ("PATCH", "/reservations/{reservation_id}"): {"purpose": "p"},
        ("POST", "/reservations/{reservation_id}/lease"): {"scope": "observe"},
        ("POST", "/jobs"): {"bundle_sha256": BUNDLE_SHA, "episodes": 1},
        ("POST", "/jobs/{job_id}/attempts/{attempt}/episodes"): {
            "index": 0,
            "successes": 1,
            "end_reason": "goal_timeout",
        },
        ("POST", "/jobs/{job_id}/attempts/{attempt}/finish"): {"outcome": "interrupted"},
        ("POST", "/maintenance"): {
            "robot_id": seeded.robots["arm-2"],
            "starts_at": (now + timedelta(days=100 + n)).isoformat(),
            "ends_at": (now + timedelta(days=100 + n, hours=1)).isoformat(),
        },
    }
    query: dict[tuple[str, str], Any] = {("GET", "/robots/{robot_id}/availability"): window}
    kwargs: dict[str, Any] = {"headers": world.headers[role]}
    if (method, path) in bodies:
        kwargs["json"] = bodies[(method, path)]
    if (method, path) in query:
        kwargs["params"] = query[(method, path)]
    if method == "PUT" and path.endswith(("/recording", "/bundles/{sha256}")):
        kwargs["content"] = BUNDLE
    return kwargs


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[TestClient, ServiceState, Seeded, Clock]]:
    settings = settings_for(f"sqlite:///{tmp_path / 'roles.db'}", tmp_path)
    seeded = seed(settings, users=ROLES, robots=("arm-1", "arm-2"), unlimited=True)
    clock = Clock()
    client, state = make_client(settings, clock)
    with client:
        admin = seeded.headers("admin@lab")
        r = client.post(
            "/users",
            json={"email": "carol@lab", "name": "c", "password": "carol-password"},
            headers=admin,
        )
        assert r.status_code == 201
        yield client, state, seeded, clock
    state.db.dispose()


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Every operation of the API, as the OpenAPI document lists them."""
    paths = client.get("/openapi.json").json()["paths"]
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


def test_every_route_is_classified(service: tuple[TestClient, ServiceState, Seeded, Clock]) -> None:
    routes = _routes(service[0])
    missing = [r for r in routes if r not in ALLOWED]
    assert not missing, f"add these routes to ALLOWED in {__file__}: {missing}"
    stale = [r for r in ALLOWED if r not in routes]
    assert not stale, f"ALLOWED lists routes that no longer exist: {stale}"


def test_no_role_gets_an_unexpected_2xx(
    service: tuple[TestClient, ServiceState, Seeded, Clock],
) -> None:
    client, state, seeded, clock = service
    unexpected: list[str] = []
    refused_allowed: list[str] = []
    calls = 0
    for method, path in _routes(client):
        allowed = ALLOWED[(method, path)]
        world = _build_world(state, seeded, client, clock)
        url = path.format(**world.params)
        # refusals first: the allowed roles' calls may change what is there (cancel, delete)
        order = sorted(ROLE_NAMES, key=lambda role: role in allowed)
        for role in order:
            if role in allowed and (method, path) in STREAMS:
                continue
            client.cookies.clear()  # a login above set a session cookie: roles use headers only
            r = client.request(method, url, **_request(method, path, role, world, seeded))
            calls += 1
            if 200 <= r.status_code < 300 and role not in allowed:
                unexpected.append(f"{role} {method} {path} -> {r.status_code}")
            if role in allowed and r.status_code in (401, 403):
                refused_allowed.append(f"{role} {method} {path} -> {r.status_code} {r.text}")
    print(f"\n{calls} requests, {len(unexpected)} unexpected 2xx")
    assert unexpected == []
    assert refused_allowed == []
