"""Hostile and loose request bodies (issue 15, defects 1 and 4), on SQLite and PostgreSQL.

Every refusal is an encodable 4xx (a lone surrogate in a JSON string used to make the 422
handler itself fail: a 500 even before login), and request bodies are strictly typed:
`true` is no robot id, a number is no time.
"""

from __future__ import annotations

import hashlib
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


# -- sizes: a body over the limit is refused before it is read, a 422 echoes little ------------

MIB = 1024 * 1024


def test_a_body_over_the_limit_is_refused_before_it_is_read(env: ApiEnv) -> None:
    headers = {**JSON, **env.h("alice@lab")}
    big = b'{"purpose": "' + b"x" * (2 * MIB) + b'"}'
    r = env.client.post("/reservations", content=big, headers=headers)
    body = _refused(r, 413)
    assert body["error"] == "body_too_large" and len(r.content) < 500
    # a chunked body (no Content-Length) is counted as it arrives
    chunks = (b"x" * 65536 for _ in range(40))
    r = env.client.post("/reservations", content=chunks, headers=headers)
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert _refused(r, 413)["error"] == "body_too_large"
    # a body under the limit is judged as before
    r = env.book("alice@lab", H, 2 * H, purpose="x" * 1000)
    assert r.status_code == 201, r.text


def test_the_upload_routes_keep_their_own_limits(database_url: str, tmp_path: Path) -> None:
    e, client = api_env(database_url, tmp_path, blob_dir=tmp_path / "blobs")
    data = bytes(range(256)) * (6 * 1024)  # 1.5 MiB, over the JSON routes' limit
    digest = hashlib.sha256(data).hexdigest()
    with client:
        r = e.client.put(f"/bundles/{digest}", content=data, headers=e.h("alice@lab"))
        assert r.status_code == 201, r.text
    e.state.db.dispose()


def test_the_body_limit_is_a_setting(database_url: str, tmp_path: Path) -> None:
    e, client = api_env(database_url, tmp_path, max_body_bytes=100)
    with client:
        r = e.client.post("/auth/tokens", json={"name": "n" * 100}, headers=e.h("alice@lab"))
        assert _refused(r, 413)["error"] == "body_too_large"
        assert "100 bytes" in r.json()["detail"]
        r = e.client.post("/auth/tokens", json={"name": "short"}, headers=e.h("alice@lab"))
        assert r.status_code == 201
    e.state.db.dispose()


def test_a_422_echoes_a_short_prefix_of_the_input(env: ApiEnv) -> None:
    long = "y" * 500_000
    r = env.book("alice@lab", H, 2 * H, purpose=long)
    body = _refused(r)
    assert len(r.content) < 2000, len(r.content)
    [error] = body["detail"]
    assert error["loc"] == ["body", "purpose"]
    assert error["input"].startswith("y" * 200) and "500000 characters" in error["input"]
    # a body that is a huge list comes back as a few items, not the list
    r = env.client.post("/reservations", json=list(range(50_000)), headers=env.h("alice@lab"))
    assert len(_refused(r)["detail"][0]["input"]) <= 11 and len(r.content) < 2000


# -- the framework's own refusals have the documented shape ------------------------------------


def test_framework_refusals_are_detail_and_error(env: ApiEnv) -> None:
    headers = env.h("alice@lab")
    r = env.client.get("/reservations/..%2F..%2Fetc%2Fpasswd", headers=headers)
    assert _refused(r, 404)["error"] == "not_found"
    r = env.client.get("/no/such/route", headers=headers)
    assert _refused(r, 404)["error"] == "not_found"
    r = env.client.delete("/reservations", headers=headers)
    assert _refused(r, 405)["error"] == "method_not_allowed"
    assert "GET" in r.headers["allow"] and "POST" in r.headers["allow"]
    nested = "[" * 100_000 + "]" * 100_000
    r = env.client.post("/reservations", content=nested, headers={**JSON, **headers})
    assert _refused(r, 400)["error"] == "malformed_body"


# -- a key given twice is refused, not resolved by the last one --------------------------------


def test_a_duplicate_key_is_refused(env: ApiEnv) -> None:
    arm1, arm2 = env.seeded.robots["arm-1"], env.seeded.robots["arm-2"]
    raw = (
        f'{{"robot_id": {arm1}, "robot_id": {arm2}, '
        f'"starts_at": "{env.at(H)}", "ends_at": "{env.at(2 * H)}"}}'
    )
    r = env.client.post("/reservations", content=raw, headers={**JSON, **env.h("alice@lab")})
    body = _refused(r)
    assert body["error"] == "invalid_request"
    assert body["detail"][0]["loc"] == ["body", "robot_id"]
    assert "duplicate key 'robot_id'" in body["detail"][0]["msg"]
    assert env.client.get("/reservations", headers=env.h("alice@lab")).json() == []
    # nested objects too (a heartbeat's report ignores unknown fields, not repeated ones)
    raw = '{"status": "available", "health_ok": true, "safety": {"state": "ok", "state": "x"}}'
    r = env.client.post(
        f"/robots/{arm1}/heartbeat", content=raw, headers={**JSON, **env.h("staff@lab")}
    )
    assert _refused(r)["detail"][0]["loc"] == ["body", "state"]


def test_a_robot_token_refusal_says_what_it_may_do(env: ApiEnv) -> None:
    token = env.seeded.robot_tokens["arm-1"]
    r = env.client.get("/reservations", headers={"Authorization": f"Bearer {token}"})
    detail = _refused(r, 403)["detail"]
    assert "claim" in detail and "lease key" in detail and "command" in detail
