"""Hostile and loose request bodies (issue 15, defects 1 and 4), on SQLite and PostgreSQL.

Every refusal is an encodable 4xx (a lone surrogate in a JSON string used to make the 422
handler itself fail: a 500 even before login), and request bodies are strictly typed:
`true` is no robot id, a number is no time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.service.harness import ApiEnv, api_env

H = timedelta(hours=1)
JSON = {"content-type": "application/json"}


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[ApiEnv]:
    e, client = api_env(database_url, tmp_path)
    client.raise_server_exceptions = False  # a 500 must show as a 500, not as a raise
    with client:
        yield e
    e.state.db.dispose()


def _refused(r: Any, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body: dict[str, Any] = json.loads(r.content.decode("utf-8"))  # valid UTF-8, valid JSON
    assert body["error"]
    return body


@pytest.mark.parametrize(
    "raw",
    [
        '{"email": "\\ud800", "password": "x"}',
        '{"email": "a@lab", "password": "\\udfff"}',
        '{"email": "\\ud800\\udc00\\ud800", "password": "x"}',
        '{"email": "a@lab", "password": "x", "\\ud800": 1}',
    ],
)
def test_a_lone_surrogate_at_login_is_a_422_not_a_500(env: ApiEnv, raw: str) -> None:
    body = _refused(env.client.post("/auth/login", content=raw, headers=JSON))
    assert body["error"] == "invalid_request"
    assert "password" not in json.dumps([d.get("input") for d in body["detail"]])


def test_the_password_is_never_echoed_in_a_refusal(env: ApiEnv) -> None:
    r = env.client.post("/auth/login", json={"email": "a@lab", "password": "hunter2-" * 40})
    body = _refused(r)
    assert "hunter2" not in r.text and body["detail"][0]["loc"] == ["body", "password"]


def test_a_lone_surrogate_in_a_booking_is_a_422(env: ApiEnv) -> None:
    booking = {
        "robot_id": env.seeded.robots["arm-1"],
        "starts_at": env.at(H),
        "ends_at": env.at(2 * H),
    }
    raw = json.dumps(booking)[:-1] + ', "purpose": "\\ud800 run"}'
    headers = {**JSON, **env.h("alice@lab")}
    body = _refused(env.client.post("/reservations", content=raw, headers=headers))
    assert body["detail"][0]["loc"] == ["body", "purpose"]
    assert "\\ud800" in body["detail"][0]["input"]  # named, as an escape
    # and on every other string field a person can send
    for path, payload in [
        ("/auth/tokens", '{"name": "\\ud800"}'),
        ("/reservations/1", '{"purpose": "\\udc00"}'),
    ]:
        method = env.client.patch if path.startswith("/reservations/") else env.client.post
        assert method(path, content=payload, headers=headers).status_code in (404, 422)


def test_nan_and_broken_json_are_422(env: ApiEnv) -> None:
    headers = {**JSON, **env.h("staff@lab")}
    r = env.client.put(
        f"/robots/{env.seeded.robots['arm-1']}/wear/thresholds",
        content='{"hours_run": NaN}',
        headers=headers,
    )
    _refused(r)
    _refused(env.client.post("/auth/login", content='{"email": ', headers=JSON))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("robot_id", True),
        ("robot_id", "1"),
        ("robot_id", 1.0),
        ("starts_at", 1_900_000_000),
        ("starts_at", "1900000000"),
        ("starts_at", "2030-01-01"),
        ("starts_at", "2030-01-01T10:00:00"),  # no zone
        ("starts_at", "2030-01-01 10:00:00Z"),
        ("ends_at", 1_900_003_600.5),
        ("purpose", 7),
        ("porpuse", "typo"),  # unknown fields are refused, not dropped
    ],
)
def test_loose_booking_fields_are_refused(env: ApiEnv, field: str, value: object) -> None:
    booking: dict[str, object] = {
        "robot_id": env.seeded.robots["arm-1"],
        "starts_at": env.at(H),
        "ends_at": env.at(2 * H),
    }
    booking[field] = value
    r = env.client.post("/reservations", json=booking, headers=env.h("alice@lab"))
    body = _refused(r)
    assert body["detail"][0]["loc"][-1] == field, body
    assert env.client.get("/reservations", headers=env.h("alice@lab")).json() == []


def test_loose_fields_elsewhere_are_refused(env: ApiEnv) -> None:
    admin, staff = env.h("admin@lab"), env.h("staff@lab")
    alice = env.seeded.users["alice@lab"][0]
    for method, path, body, headers in [
        ("PATCH", f"/users/{alice}", {"active": "false"}, admin),
        ("PATCH", f"/users/{alice}", {"active": 0}, admin),
        ("PUT", f"/users/{alice}/quota", {"hours_per_week": True}, staff),
        ("PUT", f"/users/{alice}/quota", {"max_days_ahead": "10"}, staff),
        ("POST", "/auth/tokens", {"name": "t", "expires_in_days": "30"}, admin),
        (
            "POST",
            "/maintenance",
            {"robot_id": True, "starts_at": env.at(H), "ends_at": env.at(2 * H)},
            staff,
        ),
        ("POST", "/robots", {"name": "r9", "kind": "k", "buffer_s": "60"}, staff),
        ("POST", f"/robots/{env.seeded.robots['arm-1']}/heartbeat", {"health_ok": "no"}, staff),
    ]:
        r = env.client.request(method, path, json=body, headers=headers)
        _refused(r)
    # nothing changed
    assert env.client.get(f"/users/{alice}", headers=admin).json()["active"] is True


def test_well_formed_times_in_any_zone_are_accepted(env: ApiEnv) -> None:
    start = env.clock.now + H
    r = env.client.post(
        "/reservations",
        json={
            "robot_id": env.seeded.robots["arm-1"],
            "starts_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ends_at": (start + H).astimezone().isoformat(),
        },
        headers=env.h("alice@lab"),
    )
    assert r.status_code == 201, r.text
