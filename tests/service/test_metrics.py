"""The service's GET /metrics: staff only, Prometheus text format, and the figures follow what
happened (requests by route template and status, bookings, robots, leases issued and revoked)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.service.harness import ROLES, Clock, Seeded, make_client, seed, settings_for


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[TestClient, Seeded, Clock]]:
    settings = settings_for(f"sqlite:///{tmp_path / 'metrics.db'}", tmp_path)
    seeded = seed(settings, users=ROLES, robots=("arm-1", "arm-2"), unlimited=True)
    clock = Clock()
    client, state = make_client(settings, clock)
    with client:
        yield client, seeded, clock
    state.db.dispose()


def scrape(client: TestClient, seeded: Seeded) -> dict[str, Metric]:
    r = client.get("/metrics", headers=seeded.headers("staff@lab"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(families: dict[str, Metric], family: str, sample: str, **labels: str) -> float:
    for s in families[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise AssertionError(f"no sample {sample}{labels} in {family}")


def test_only_staff_and_admins_may_scrape(service: tuple[TestClient, Seeded, Clock]) -> None:
    client, seeded, _ = service
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/metrics", headers=seeded.headers("alice@lab")).status_code == 403
    robot = {"Authorization": f"Bearer {seeded.robot_tokens['arm-1']}"}
    assert client.get("/metrics", headers=robot).status_code == 403
    assert client.get("/metrics", headers=seeded.headers("admin@lab")).status_code == 200


def test_metrics_parse_and_follow_requests_bookings_and_leases(
    service: tuple[TestClient, Seeded, Clock],
) -> None:
    client, seeded, clock = service
    alice = seeded.headers("alice@lab")
    before = scrape(client, seeded)
    assert not [n for n in before if n.endswith("_created")]  # no start-time families
    assert value(before, "raas_reservations", "raas_reservations", status="confirmed") == 0
    assert value(before, "raas_robots", "raas_robots", status="available") == 2
    assert value(before, "raas_leases_issued", "raas_leases_issued_total") == 0

    for _ in range(3):
        assert client.get("/health").status_code == 200
    assert client.get("/reservations/999999", headers=alice).status_code == 404
    assert client.get("/no/such/page").status_code == 404

    # A booking running now (it began a moment ago, inside the service's start grace), a lease
    # on it, then cancelled: the lease is revoked.
    start = clock.now - timedelta(minutes=2)
    r = client.post(
        "/reservations",
        json={
            "robot_id": seeded.robots["arm-1"],
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=1)).isoformat(),
        },
        headers=alice,
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    mid = scrape(client, seeded)
    assert value(mid, "raas_reservations", "raas_reservations", status="confirmed") == 1
    assert value(mid, "raas_reservations_running", "raas_reservations_running") == 1
    r = client.post(f"/reservations/{rid}/lease", json={"scope": "control"}, headers=alice)
    assert r.status_code == 201, r.text
    assert client.post(f"/reservations/{rid}/cancel", headers=alice).status_code == 200
    robot = {"Authorization": f"Bearer {seeded.robot_tokens['arm-2']}"}
    beat = client.post(
        f"/robots/{seeded.robots['arm-2']}/heartbeat", json={"status": "available"}, headers=robot
    )
    assert beat.status_code == 200, beat.text

    after = scrape(client, seeded)
    req = "raas_http_requests_total"
    assert value(after, "raas_http_requests", req, method="GET", route="/health", status="200") == 3
    assert (
        value(
            after,
            "raas_http_requests",
            req,
            method="GET",
            route="/reservations/{reservation_id}",
            status="404",
        )
        == 1
    )
    assert value(after, "raas_http_requests", req, route="<unmatched>", status="404") == 1
    # the route label is the template, never a raw path
    routes = {s.labels["route"] for s in after["raas_http_requests"].samples}
    assert not any(str(rid) in route for route in routes)
    assert (
        value(
            after,
            "raas_http_request_duration_seconds",
            "raas_http_request_duration_seconds_count",
            method="GET",
            route="/health",
        )
        == 3
    )
    assert value(after, "raas_reservations", "raas_reservations", status="confirmed") == 0
    assert value(after, "raas_reservations", "raas_reservations", status="cancelled") == 1
    assert value(after, "raas_leases_issued", "raas_leases_issued_total") == 1
    assert value(after, "raas_leases_revoked", "raas_leases_revoked_total") == 1
    assert value(after, "raas_lease_revocations", "raas_lease_revocations_total") == 1
    assert value(after, "raas_robots_online", "raas_robots_online") == 1
    # the earlier scrapes were counted too (by the staff token's request)
    assert value(after, "raas_http_requests", req, route="/metrics", status="200") == 2
