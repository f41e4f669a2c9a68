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


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def test_every_operation_declares_the_refusals_it_may_answer(tmp_path: Path) -> None:
    """What an acceptance tester writes tests from: each operation lists the statuses it may
    answer, each refusal as `{detail, error}` (tests/service/test_schemathesis.py checks the
    answers against it)."""
    doc = _doc(tmp_path)
    error = {"$ref": "#/components/schemas/ErrorPublic"}
    invalid = {"anyOf": [{"$ref": "#/components/schemas/InvalidRequestPublic"}, error]}
    assert "HTTPValidationError" not in str(doc)
    for method, path, op in _operations(doc):
        responses = op["responses"]
        where = f"{method.upper()} {path}"
        if op.get("security"):
            assert "401" in responses, where
            assert {"not_authenticated", "token_expired", "token_revoked"} <= set(
                responses["401"]["description"].replace(",", " ").split()
            ), where
        if "{" in path and (method, path) != ("put", "/bundles/{sha256}"):
            assert "404" in responses, where
        if "application/json" in op.get("requestBody", {}).get("content", {}):
            assert "body_too_large" in responses["413"]["description"], where
            assert responses["413"]["content"]["application/json"]["schema"] == error, where
        if "422" in responses:
            schema = responses["422"]["content"]["application/json"]["schema"]
            assert schema == invalid, where
            assert "invalid_request" in responses["422"]["description"], where
        for status, response in responses.items():
            if status >= "400" and "content" in response:
                assert response["content"]["application/json"]["schema"] in (
                    error,
                    invalid,
                    {"$ref": "#/components/schemas/SeriesConflictPublic"},
                ), (where, status)


def test_role_checks_and_handler_refusals_are_declared(tmp_path: Path) -> None:
    doc = _doc(tmp_path)
    paths = doc["paths"]
    # a role dependency (Staff, Admin, Person: robot tokens refused) shows as a 403
    for method, path in [
        ("get", "/users"),  # staff
        ("post", "/users"),  # admin
        ("patch", "/robots/{robot_id}"),
        ("post", "/maintenance"),
        ("get", "/audit"),
        ("get", "/metrics"),  # an included router's route
        ("get", "/reservations"),  # person
        ("get", "/robots/{robot_id}/calendar.ics"),  # the feeds' own reader check
    ]:
        assert "forbidden" in paths[path][method]["responses"]["403"]["description"], path
    # only this robot's daemon or staff (the handler checks)
    for path in ("/heartbeat", "/commands", "/revocations", "/revocations/stream"):
        ops = paths[f"/robots/{{robot_id}}{path}"]
        [op] = ops.values()
        assert "forbidden" in op["responses"]["403"]["description"], path
    # any valid token, the robot's own checked by hiding others (404, not 403)
    assert "403" not in paths["/robots/{robot_id}"]["get"]["responses"]
    # the conflicts only a handler knows
    for method, path, code in [
        ("post", "/users", "already_exists"),
        ("post", "/robots", "already_exists"),
        ("patch", "/users/{user_id}", "last_admin"),
        ("post", "/reservations/{reservation_id}/cancel", "reservation_not_active"),
    ]:
        assert code in paths[path][method]["responses"]["409"]["description"], path
    # an id in the body that may not exist
    for path in ("/reservations", "/reservations/series", "/maintenance"):
        assert "404" in paths[path]["post"]["responses"], path
    assert (
        "invalid_booking_rules"
        in paths["/robots/{robot_id}"]["patch"]["responses"]["422"]["description"]
    )
    assert "invalid_time_range" in paths["/reservations"]["post"]["responses"]["422"]["description"]
