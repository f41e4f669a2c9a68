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
