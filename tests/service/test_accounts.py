"""Accounts (issue 15, item 5), on SQLite and PostgreSQL: login throttling and lockout with a
429 and Retry-After; a new password ends the user's other sessions; deactivating a user
cancels their bookings that have not ended and revokes their leases, audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from raas.service.crud import users as user_crud
from raas.service.schemas import UserUpdate
from tests.service.harness import ApiEnv, api_env

H = timedelta(hours=1)
PASSWORD = "right-password"


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[ApiEnv]:
    e, client = api_env(
        database_url,
        tmp_path,
        login_max_failures=3,
        login_lockout_s=60.0,
        login_lockout_max_s=600.0,
    )
    with client:
        with e.state.db.write() as db:
            for email in ("alice@lab", "bob@lab"):
                user = user_crud.get_user(db, e.seeded.users[email][0])
                user_crud.update_user(db, user, UserUpdate(password=PASSWORD))
        yield e
    e.state.db.dispose()


def login(env: ApiEnv, email: str, password: str) -> httpx.Response:
    env.client.cookies.clear()
    return env.client.post("/auth/login", json={"email": email, "password": password})


def test_failed_logins_lock_the_email_with_429_and_retry_after(env: ApiEnv) -> None:
    for _ in range(3):
        r = login(env, "alice@lab", "wrong")
        assert r.status_code == 401
    r = login(env, "alice@lab", PASSWORD)  # even the right password waits
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "too_many_logins"
    assert r.headers["Retry-After"] == "60"
    # another account is not affected; case does not dodge the lock
    assert login(env, "bob@lab", PASSWORD).status_code == 200
    assert login(env, "ALICE@lab", PASSWORD).status_code == 429
    env.clock.advance(timedelta(seconds=30))
    r = login(env, "alice@lab", PASSWORD)
    assert r.headers["Retry-After"] == "30"
    env.clock.advance(timedelta(seconds=31))
    # a further failure after a lockout doubles the wait
    assert login(env, "alice@lab", "wrong").status_code == 401
    assert login(env, "alice@lab", PASSWORD).headers["Retry-After"] == "120"
    env.clock.advance(timedelta(seconds=121))
    assert login(env, "alice@lab", PASSWORD).status_code == 200
    # success forgets the failures
    assert login(env, "alice@lab", "wrong").status_code == 401
    assert login(env, "alice@lab", PASSWORD).status_code == 200
    audit = env.client.get("/audit", headers=env.h("staff@lab")).json()
    assert sum(a["action"] == "login.failed" for a in audit) == 5


def test_unknown_emails_are_throttled_the_same(env: ApiEnv) -> None:
    for _ in range(3):
        assert login(env, "nobody@lab", "x").status_code == 401
    assert login(env, "nobody@lab", "x").status_code == 429


def test_a_new_password_ends_the_other_sessions(env: ApiEnv) -> None:
    first = login(env, "alice@lab", PASSWORD).json()["access_token"]
    second = login(env, "alice@lab", PASSWORD).json()["access_token"]
    env.client.cookies.clear()
    alice = env.seeded.users["alice@lab"][0]
    r = env.client.patch(
        f"/users/{alice}",
        json={"password": "another-password"},
        headers={"Authorization": f"Bearer {second}"},
    )
    assert r.status_code == 200, r.text
    me = "/auth/me"
    assert env.client.get(me, headers={"Authorization": f"Bearer {second}"}).status_code == 200
    r = env.client.get(me, headers={"Authorization": f"Bearer {first}"})
    assert r.status_code == 401 and r.json()["error"] == "token_revoked"
    # API tokens (scripts) are not sessions: they stay
    assert env.client.get(me, headers=env.h("alice@lab")).status_code == 200
    # an admin's reset ends every session of the user
    third = login(env, "alice@lab", "another-password").json()["access_token"]
    env.client.cookies.clear()
    r = env.client.patch(
        f"/users/{alice}", json={"password": "third-password"}, headers=env.h("admin@lab")
    )
    assert r.status_code == 200
    assert env.client.get(me, headers={"Authorization": f"Bearer {third}"}).status_code == 401
    audit = env.client.get("/audit", headers=env.h("staff@lab")).json()
    assert [a for a in audit if a["action"] == "user.sessions_ended"]


def test_deactivation_cancels_future_bookings_and_revokes_leases(env: ApiEnv) -> None:
    running = env.book("alice@lab", timedelta(0), H).json()["id"]
    later = env.book("alice@lab", 2 * H, 3 * H).json()["id"]
    others = env.book("bob@lab", 4 * H, 5 * H).json()["id"]
    lease = env.client.post(
        f"/reservations/{running}/lease", json={}, headers=env.h("alice@lab")
    ).json()
    env.clock.advance(timedelta(minutes=10))
    alice = env.seeded.users["alice@lab"][0]
    r = env.client.patch(f"/users/{alice}", json={"active": False}, headers=env.h("admin@lab"))
    assert r.status_code == 200 and r.json()["active"] is False
    staff = env.h("staff@lab")
    for rid in (running, later):
        got = env.client.get(f"/reservations/{rid}", headers=staff).json()
        assert got["status"] == "cancelled" and "deactivated" in got["cancel_reason"]
    assert env.client.get(f"/reservations/{others}", headers=staff).json()["status"] == "confirmed"
    robot = env.seeded.robots["arm-1"]
    feed = env.client.get(
        f"/robots/{robot}/revocations",
        params={"since": 0, "wait": 0},
        headers={"Authorization": f"Bearer {env.seeded.robot_tokens['arm-1']}"},
    ).json()
    assert lease["jti"] in {x["jti"] for x in feed["revocations"]}
    audit = env.client.get("/audit", headers=staff).json()
    deactivate = next(a for a in audit if a["action"] == "user.deactivate")
    assert json.loads(deactivate["detail"])["cancelled"] == [running, later]
    assert sum(a["action"] == "reservation.cancel" for a in audit) == 2
    # the account cannot sign in or use its tokens
    assert env.client.get("/auth/me", headers=env.h("alice@lab")).status_code == 401


@pytest.mark.system
def test_concurrent_failures_for_a_new_email_are_all_counted(
    database_url: str, tmp_path: Path
) -> None:
    """32 wrong passwords at once for an email never seen: each answers 401 or 429 (none trips
    over another's first insert), and the email ends up locked."""
    import asyncio

    from tests.service.harness import ROLES, ServerProcess, seed, settings_for

    seeded = seed(settings_for(database_url, tmp_path), users=ROLES)
    server = ServerProcess(seeded.settings, tmp_path / "server.log").start()
    try:

        async def storm() -> list[tuple[int, str]]:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0) as client:
                answers = await asyncio.gather(
                    *(
                        client.post("/auth/login", json={"email": "new@lab", "password": "x"})
                        for _ in range(32)
                    )
                )
            return [(r.status_code, r.text) for r in answers]

        answers = asyncio.run(storm())
        codes = [code for code, _ in answers]
        assert set(codes) <= {401, 429}, answers
        assert codes.count(401) >= 5  # the default limit: 5 failures before the lock
        r = httpx.post(f"{server.base_url}/auth/login", json={"email": "new@lab", "password": "x"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    finally:
        server.stop()


def test_two_first_failures_for_a_new_email_racing_are_both_counted(env: ApiEnv) -> None:
    """Two transactions (two requests, or two service processes) record the first failure of
    one email at once: the second waits for the first and counts on top of it; it never fails
    on the first one's insert (PostgreSQL: a unique violation, answered 409, lost the count)."""
    import threading
    import time

    from raas.service.crud import logins as login_crud
    from raas.service.models import LoginThrottle

    state, settings, now = env.state, env.state.settings, env.clock.now
    first = state.db.writer()
    login_crud.record_failure(first, "race@lab", now, settings)  # inserted, not committed
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with state.db.writer() as db:
                login_crud.record_failure(db, "race@lab", now, settings)
                db.commit()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.5)  # the second now waits (row lock, unique index or SQLite's write lock)
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert not errors, errors
    with state.db.read() as db:
        row = db.get(LoginThrottle, "race@lab")
        assert row is not None and row.failures == 2
