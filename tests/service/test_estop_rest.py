"""E-stop over REST: who may stop a robot, who may clear it, and the command feed its daemon
follows (a long-poll woken at once by the POST, resumable from a cursor). SQLite and
PostgreSQL."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.service.harness import (
    ROLES,
    Clock,
    Seeded,
    ServerProcess,
    make_client,
    seed,
    settings_for,
)

H = timedelta(hours=1)
#: The POST -> feed answer bound we assert: the push takes milliseconds, the database
#: fallback poll 0.25 s; 1 s is a wide margin for a loaded 2-core box.
WAKE_BOUND_S = 1.0


class Env:
    def __init__(self, client: TestClient, seeded: Seeded, clock: Clock) -> None:
        self.client = client
        self.seeded = seeded
        self.clock = clock

    def h(self, email: str) -> dict[str, str]:
        return self.seeded.headers(email)

    def daemon(self, robot: str = "arm-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.seeded.robot_tokens[robot]}"}

    def url(self, robot: str, action: str) -> str:
        return f"/robots/{self.seeded.robots[robot]}/{action}"

    def estop(self, headers: dict[str, str], robot: str = "arm-1", note: str = "x") -> Any:
        return self.client.post(self.url(robot, "estop"), json={"note": note}, headers=headers)


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = settings_for(database_url, tmp_path)
    seeded = seed(settings, users=ROLES, robots=("arm-1", "arm-2"), unlimited=True)
    clock = Clock()
    client, state = make_client(settings, clock)
    with client:
        yield Env(client, seeded, clock)
    state.db.dispose()


def test_who_may_estop_and_clear(env: Env) -> None:
    # alice books arm-1 for the next hour and a half; it is not running yet
    r = env.client.post(
        "/reservations",
        json={
            "robot_id": env.seeded.robots["arm-1"],
            "starts_at": (env.clock.now + H).isoformat(),
            "ends_at": (env.clock.now + 2.5 * H).isoformat(),
        },
        headers=env.h("alice@lab"),
    )
    assert r.status_code == 201, r.text
    assert env.estop(env.h("alice@lab")).status_code == 403  # booked, but not now

    staff = env.estop(env.h("staff@lab"), note="cable snag")
    assert staff.status_code == 202, staff.text
    assert env.client.get(env.url("arm-1", ""), headers=env.h("staff@lab")).json()["estop_latched"]

    env.clock.advance(1.5 * H)  # alice's booking runs now
    alice = env.estop(env.h("alice@lab"), note="finger stuck")
    assert alice.status_code == 202, alice.text
    assert alice.json()["seq"] > staff.json()["seq"]
    assert env.estop(env.h("bob@lab")).status_code == 403  # no booking of his runs now
    assert env.estop(env.h("alice@lab"), robot="arm-2").status_code == 403  # not her robot
    r = env.estop(env.daemon())  # a daemon token is no person
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert env.client.post(env.url("arm-1", "estop"), json={}).status_code == 401

    # only staff clear
    for who in (env.h("alice@lab"), env.daemon()):
        assert (
            env.client.post(env.url("arm-1", "clear-estop"), json={}, headers=who).status_code
            == 403
        )
    clear = env.client.post(
        env.url("arm-1", "clear-estop"), json={"note": "checked"}, headers=env.h("staff@lab")
    )
    assert clear.status_code == 202, clear.text
    robot = env.client.get(env.url("arm-1", ""), headers=env.h("alice@lab")).json()
    assert robot["estop_latched"] is False

    # after her booking ends, alice may not stop the robot any more
    env.clock.advance(H)
    assert env.estop(env.h("alice@lab")).status_code == 403

    # clear errors: unknown robot, bad bodies
    assert (
        env.client.post("/robots/999/estop", json={}, headers=env.h("staff@lab")).status_code == 404
    )
    for bad in ({"note": "x" * 2001}, {"note": 5}, ["note"]):
        r = env.client.post(env.url("arm-1", "estop"), json=bad, headers=env.h("staff@lab"))
        assert r.status_code == 422, (bad, r.text)

    # audited, with who and the note
    audit = env.client.get("/audit", headers=env.h("staff@lab")).json()
    actions = [(a["action"], a["actor_id"]) for a in audit if a["action"].endswith("estop")]
    assert sorted(actions) == sorted(
        [
            ("robot.estop", env.seeded.users["staff@lab"][0]),
            ("robot.estop", env.seeded.users["alice@lab"][0]),
            ("robot.clear_estop", env.seeded.users["staff@lab"][0]),
        ]
    )
    assert any("finger stuck" in a["detail"] for a in audit)


def test_command_feed_cursor(env: Env) -> None:
    feed = env.url("arm-1", "commands")
    empty = env.client.get(feed, headers=env.daemon()).json()
    assert empty == {
        "robot_id": env.seeded.robots["arm-1"],
        "cursor": 0,
        "head": 0,
        "latched": False,
        "commands": [],
    }
    first = env.estop(env.h("staff@lab"), note="one").json()["seq"]
    env.estop(env.h("staff@lab"), robot="arm-2", note="other robot")
    second = env.client.post(
        env.url("arm-1", "clear-estop"), json={"note": "two"}, headers=env.h("admin@lab")
    ).json()["seq"]

    batch = env.client.get(feed, params={"since": 0}, headers=env.daemon()).json()
    assert [(c["seq"], c["kind"], c["by"], c["note"]) for c in batch["commands"]] == [
        (first, "estop", "staff@lab", "one"),
        (second, "clear_estop", "admin@lab", "two"),
    ]
    assert batch["cursor"] == batch["head"] == second and batch["latched"] is False
    # resume: from the first entry's cursor only the second comes; from the end, nothing
    resumed = env.client.get(feed, params={"since": first}, headers=env.daemon()).json()
    assert [c["seq"] for c in resumed["commands"]] == [second]
    done = env.client.get(feed, params={"since": second}, headers=env.daemon()).json()
    assert done["commands"] == [] and done["cursor"] == second

    # who may read it: the robot's own daemon and staff
    assert env.client.get(feed, headers=env.h("staff@lab")).status_code == 200
    assert env.client.get(feed, headers=env.h("alice@lab")).status_code == 403
    assert env.client.get(feed, headers=env.daemon("arm-2")).status_code == 403
    assert env.client.get("/robots/999/commands", headers=env.h("staff@lab")).status_code == 404
    assert env.client.get(feed, params={"since": -1}, headers=env.daemon()).status_code == 422


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, Seeded]]:
    seeded = seed(settings_for(database_url, tmp_path), users=ROLES, robots=("arm-1",))
    proc = ServerProcess(seeded.settings, tmp_path / "server.log").start()
    try:
        yield proc, seeded
    finally:
        proc.stop()


@pytest.mark.system
def test_a_held_feed_poll_answers_at_once_when_staff_press_estop(
    server: tuple[ServerProcess, Seeded],
) -> None:
    proc, seeded = server
    robot = seeded.robots["arm-1"]
    daemon = {"Authorization": f"Bearer {seeded.robot_tokens['arm-1']}"}
    feed = f"{proc.base_url}/robots/{robot}/commands"
    answers: list[tuple[float, dict[str, Any]]] = []

    def follow(since: int) -> None:
        r = httpx.get(feed, params={"since": since, "wait": 20}, headers=daemon, timeout=30)
        answers.append((time.monotonic(), r.json()))

    with httpx.Client(base_url=proc.base_url, timeout=10) as api:
        head = api.get(feed, headers=daemon).json()["head"]
        latencies = []
        cursor = head
        for _ in range(3):
            answers.clear()
            thread = threading.Thread(target=follow, args=(cursor,), daemon=True)
            thread.start()
            time.sleep(0.5)  # let the poll park (if it has not, it answers at once: also fine)
            t0 = time.monotonic()
            r = api.post(
                f"/robots/{robot}/estop", json={"note": "stop"}, headers=seeded.headers("staff@lab")
            )
            assert r.status_code == 202, r.text
            thread.join(timeout=20)
            assert answers, "the held poll never answered"
            at, batch = answers[0]
            assert [c["seq"] for c in batch["commands"]] == [r.json()["seq"]]
            latencies.append(at - t0)
            cursor = batch["cursor"]
        print(f"\nestop -> feed answer: {[f'{x * 1000:.1f} ms' for x in latencies]}")
        assert max(latencies) < WAKE_BOUND_S

        # a follower that was away resumes from its cursor and misses nothing, in order
        staff = seeded.headers("staff@lab")
        missed = [
            api.post(f"/robots/{robot}/clear-estop", json={}, headers=staff).json()["seq"],
            api.post(f"/robots/{robot}/estop", json={}, headers=staff).json()["seq"],
        ]
        batch = api.get(feed, params={"since": cursor, "wait": 5}, headers=daemon).json()
        assert [(c["seq"], c["kind"]) for c in batch["commands"]] == [
            (missed[0], "clear_estop"),
            (missed[1], "estop"),
        ]
        assert batch["latched"] is True and batch["head"] == missed[1]
        # nothing newer: a short wait answers empty with the cursor unchanged
        t0 = time.monotonic()
        quiet = api.get(feed, params={"since": batch["cursor"], "wait": 0.3}, headers=daemon)
        assert quiet.json()["commands"] == [] and quiet.json()["cursor"] == missed[1]
        assert time.monotonic() - t0 >= 0.25


@pytest.mark.system
def test_a_poll_whose_client_left_ends_and_does_not_hold_shutdown(
    server: tuple[ServerProcess, Seeded],
) -> None:
    """A daemon that stopped mid-poll leaves no request parked in the service: the poll ends
    once the client is gone, so stopping the service is quick and cancels nothing."""
    proc, seeded = server
    robot = seeded.robots["arm-1"]
    token = seeded.robot_tokens["arm-1"]
    for path in ("commands", "revocations"):
        with socket.create_connection(("127.0.0.1", proc.port)) as sock:
            sock.sendall(
                f"GET /robots/{robot}/{path}?since=999999&wait=60 HTTP/1.1\r\n"
                f"Host: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
            )
            time.sleep(0.5)  # parked: nothing newer than the cursor
    time.sleep(1.0)  # the polls notice within a fallback poll (0.25 s)
    t0 = time.monotonic()
    proc.stop()
    took = time.monotonic() - t0
    log = proc.log.read_text()
    assert "CancelledError" not in log, log[-3000:]
    assert took < 10, f"the service took {took:.1f} s to stop"  # held polls wait up to 60 s
