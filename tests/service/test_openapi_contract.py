"""The OpenAPI document describes what issue 15 added (acceptance tests are written from it):
new routes, the Idempotency-Key header, the 429 with Retry-After, refusal bodies and fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raas.service.app import create_app
from raas.service.settings import Settings


def _doc(tmp_path: Path) -> dict[str, Any]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'raas.db'}", signing_key_path=tmp_path / "k.pem"
    )
    app = create_app(settings)
    try:
        doc: dict[str, Any] = app.openapi()
        return doc
    finally:
        app.state.service.db.dispose()


def test_the_document_describes_issue_15(tmp_path: Path) -> None:
    doc = _doc(tmp_path)
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    create = paths["/reservations"]["post"]
    [key] = [p for p in create["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and key["required"] is False
    assert "Idempotent-Replayed" in create["responses"]["201"]["headers"]
    assert {"403", "409", "422"} <= set(create["responses"])
    assert "off_granularity" in create["responses"]["422"]["description"]
    series = paths["/reservations/series"]["post"]
    assert series["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SeriesConflictPublic"
    }
    assert {"weeks", "mode"} <= set(schemas["ReservationSeriesCreate"]["properties"])
    assert {"starts_at", "ends_at"} <= set(schemas["ReservationUpdate"]["properties"])
    assert "reissued_leases" in schemas["ReservationMoved"]["properties"]
    assert {"revision", "series_id"} <= set(schemas["ReservationPublic"]["properties"])
    login = paths["/auth/login"]["post"]["responses"]["429"]
    assert "Retry-After" in login["headers"]
    robot = schemas["RobotPublic"]["properties"]
    assert {"booking_rules", "dashboard_url"} <= set(robot)
    rules = {"booking_granularity_s", "min_booking_s", "max_booking_s", "buffer_s"}
    assert rules <= set(schemas["RobotUpdate"]["properties"])
    # request bodies refuse unknown fields
    assert schemas["ReservationCreate"]["additionalProperties"] is False
    assert "series_id" in {p["name"] for p in paths["/reservations"]["get"]["parameters"]}


def test_the_document_describes_evaluation_jobs(tmp_path: Path) -> None:
    doc = _doc(tmp_path)
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    routes = {
        ("put", "/bundles/{sha256}"),
        ("head", "/bundles/{sha256}"),
        ("get", "/bundles/{sha256}"),
        ("post", "/jobs"),
        ("get", "/jobs"),
        ("get", "/jobs/{job_id}"),
        ("post", "/jobs/{job_id}/cancel"),
        ("get", "/jobs/{job_id}/logs"),
        ("get", "/jobs/{job_id}/episodes/{index}/recording"),
        ("post", "/robots/{robot_id}/jobs/claim"),
        ("post", "/jobs/{job_id}/attempts/{attempt}/heartbeat"),
        ("put", "/jobs/{job_id}/attempts/{attempt}/episodes/{index}/recording"),
        ("post", "/jobs/{job_id}/attempts/{attempt}/episodes"),
        ("post", "/jobs/{job_id}/attempts/{attempt}/finish"),
    }
    for method, path in routes:
        assert method in paths.get(path, {}), (method, path)
    put = paths["/bundles/{sha256}"]["put"]
    assert "application/octet-stream" in put["requestBody"]["content"]
    assert "bundle_hash_mismatch" in put["responses"]["422"]["description"]
    assert "bundle_too_large" in put["responses"]["413"]["description"]
    submit = paths["/jobs"]["post"]["responses"]
    assert "bundle_not_found" in submit["404"]["description"]
    assert {"unknown_robot", "no_qualifying_robot"} <= set(
        submit["422"]["description"].replace(",", " ").split()
    )
    claim = paths["/robots/{robot_id}/jobs/claim"]["post"]
    assert "204" in claim["responses"] and "wait" in {p["name"] for p in claim["parameters"]}
    for route in ("heartbeat", "episodes", "finish"):
        stale = paths[f"/jobs/{{job_id}}/attempts/{{attempt}}/{route}"]["post"]["responses"]
        assert "stale_attempt" in stale["409"]["description"]
    assert schemas["JobCreate"]["additionalProperties"] is False
    assert schemas["EpisodeReport"]["additionalProperties"] is False
    assert {"hold_until", "lease", "endpoint", "server_key", "attempt", "job"} <= set(
        schemas["JobClaimed"]["properties"]
    )
    job = set(schemas["JobPublic"]["properties"])
    assert {"episodes_done", "claimed_by", "results", "status", "attempt"} <= job
    kinds = schemas["BusyInterval"]["properties"]["kind"]["enum"]
    assert "job" in kinds
