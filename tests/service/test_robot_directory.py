"""The robot directory: a daemon registers its endpoints, server key, hand, devices and
capabilities in its heartbeats (robot token); researchers read them by name; `connect` answers
the entry and a control lease for the caller's booking running now, or says plainly why not
(unknown name with the names there are, offline with the heartbeat's age, no booking now with
when the next one starts). SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq
from fastapi.testclient import TestClient

from raas.leases import load_public_key, verify_lease
from tests.service.harness import ROLES, Clock, Seeded, make_client, seed, settings_for

H = timedelta(hours=1)
KEY = zmq.curve_keypair()[0].decode()
ENTRY: dict[str, Any] = {
    "control_endpoint": "tcp://10.0.0.5:5555",
    "stream_endpoint": "tcp://10.0.0.5:5556",
    "server_public_key": KEY,
    "hand_model": "shadow-dexterous",
    "devices": [{"key": "hand", "driver": "sim"}, {"key": "cameras.left", "driver": "sim"}],
    "capabilities": ["observe", "remote_step", "run_bundle", "cameras", "lockstep"],
}


class Env:
    def __init__(self, client: TestClient, seeded: Seeded, clock: Clock) -> None:
        self.client, self.seeded, self.clock = client, seeded, clock
        self.robot = seeded.robots["arm-1"]
        self.daemon = {"Authorization": f"Bearer {seeded.robot_tokens['arm-1']}"}

    def beat(self, status: str = "available", **entry: Any) -> Any:
        r = self.client.post(
            f"/robots/{self.robot}/heartbeat",
            json={"status": status, "directory": {**ENTRY, **entry}},
            headers=self.daemon,
        )
        return r

    def book(self, who: str, hours_ahead: float, hours: float = 1) -> int:
        start = self.clock.now + hours_ahead * H
        r = self.client.post(
            "/reservations",
            json={
                "robot_id": self.robot,
                "starts_at": start.isoformat(),
                "ends_at": (start + hours * H).isoformat(),
            },
            headers=self.seeded.headers(who),
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def connect(self, who: str, name: str = "arm-1") -> Any:
        return self.client.post(f"/robots/by-name/{name}/connect", headers=self.seeded.headers(who))


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = settings_for(database_url, tmp_path)
    seeded = seed(settings, users=ROLES, robots=("arm-1", "arm-2"), unlimited=True)
    clock = Clock()
    client, state = make_client(settings, clock)
    with client:
        yield Env(client, seeded, clock)
    state.db.dispose()


def test_the_daemon_registers_and_researchers_read_it_by_name(env: Env) -> None:
    alice = env.seeded.headers("alice@lab")
    before = env.client.get("/robots/by-name/arm-1", headers=alice).json()
    assert (before["control_endpoint"], before["online"], before["heartbeat_age_s"]) == (
        "",
        False,
        None,
    )
    assert env.beat().status_code == 200
    env.clock.advance(timedelta(seconds=5))
    for who in ("alice@lab", "staff@lab"):
        got = env.client.get("/robots/by-name/arm-1", headers=env.seeded.headers(who)).json()
        for field, value in ENTRY.items():
            assert got[field] == value, field
        assert got["online"] is True and got["heartbeat_age_s"] == 5.0
        assert got["registered_at"] is not None
    # a restarted daemon on new ports with a new key is current after its next heartbeat
    key2 = zmq.curve_keypair()[0].decode()
    env.beat(control_endpoint="tcp://10.0.0.5:6000", server_public_key=key2)
    got = env.client.get(f"/robots/{env.robot}", headers=alice).json()
    assert (got["control_endpoint"], got["server_public_key"]) == ("tcp://10.0.0.5:6000", key2)
    # the list shows the directory too
    listed = env.client.get("/robots", headers=alice).json()
    assert next(r for r in listed if r["name"] == "arm-1")["hand_model"] == ENTRY["hand_model"]


def test_only_the_robots_own_token_registers_it(env: Env) -> None:
    other = env.seeded.robots["arm-2"]
    r = env.client.post(
        f"/robots/{other}/heartbeat",
        json={"status": "available", "directory": ENTRY},
        headers=env.daemon,
    )
    assert r.status_code in (403, 404), r.text
    got = env.client.get("/robots/by-name/arm-2", headers=env.seeded.headers("alice@lab"))
    assert got.json()["control_endpoint"] == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("server_public_key", "not-a-z85-key"),
        ("control_endpoint", "tcp://x\x00"),
        ("hand_model", ""),
    ],
)
def test_a_bad_entry_is_refused_naming_the_field(env: Env, field: str, value: str) -> None:
    r = env.beat(**{field: value})
    assert r.status_code == 422, r.text
    assert field in r.text


def test_unknown_name_lists_the_robots(env: Env) -> None:
    for r in (
        env.client.get("/robots/by-name/arm-9", headers=env.seeded.headers("alice@lab")),
        env.connect("alice@lab", "arm-9"),
    ):
        assert r.status_code == 404, r.text
        body = r.json()
        assert body["error"] == "unknown_robot"
        assert "arm-9" in body["detail"] and "arm-1, arm-2" in body["detail"]


def test_connect_gives_the_pinned_key_and_a_lease_for_the_booking_running_now(env: Env) -> None:
    rid = env.book("alice@lab", 0)  # from now (the app's clock is on the minute just begun)
    env.beat()
    r = env.connect("alice@lab")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reservation_id"] == rid
    assert body["robot"]["server_public_key"] == KEY
    assert body["robot"]["control_endpoint"] == ENTRY["control_endpoint"]
    lease = body["lease"]
    assert (lease["robot"], lease["scope"]) == ("arm-1", "control")
    key = load_public_key(body["robot"]["lease_public_key"])
    claims = verify_lease(
        lease["token"], key, robot="arm-1", now=env.clock.now.timestamp(), scope="control"
    )
    assert (claims.rid, claims.sub) == (rid, "alice@lab")
    # bob holds no booking of arm-1 now: alice's booking is not his
    r = env.connect("bob@lab")
    assert (r.status_code, r.json()["error"]) == (409, "no_current_booking")


def test_offline_says_how_long_ago_the_last_heartbeat_was(env: Env) -> None:
    env.book("alice@lab", 1)
    env.clock.advance(H)
    r = env.connect("alice@lab")
    assert (r.status_code, r.json()["error"]) == (409, "robot_offline")
    assert "never sent a heartbeat" in r.json()["detail"]
    env.beat()
    env.clock.advance(timedelta(seconds=95))
    r = env.connect("alice@lab")
    assert (r.status_code, r.json()["error"]) == (409, "robot_offline")
    assert "95 s ago" in r.json()["detail"]
    env.beat(status="offline")  # the daemon's last heartbeat as it stops
    r = env.connect("alice@lab")
    assert (r.status_code, r.json()["error"]) == (409, "robot_offline")
    assert "stopping" in r.json()["detail"]


def test_no_current_booking_says_when_the_next_one_starts(env: Env) -> None:
    env.beat()
    r = env.connect("alice@lab")
    assert (r.status_code, r.json()["error"]) == (409, "no_current_booking")
    assert "none ahead" in r.json()["detail"]
    rid = env.book("alice@lab", 2)
    r = env.connect("alice@lab")
    detail = r.json()["detail"]
    assert (r.status_code, r.json()["error"]) == (409, "no_current_booking")
    start = (env.clock.now + 2 * H).isoformat()
    assert f"reservation {rid}" in detail and start in detail and "in 2 h 0 min" in detail


def test_a_robot_token_cannot_take_a_lease_by_name(env: Env) -> None:
    env.beat()
    r = env.client.post("/robots/by-name/arm-1/connect", headers=env.daemon)
    assert r.status_code in (401, 403), r.text
