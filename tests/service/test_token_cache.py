"""The per-process token cache (raas/service/token_cache.py) never lets a token outlive what
should end it: each way a token stops working is tried on a token the cache already holds, and
the very next request must be refused (another process's change: within the cache's TTL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from raas.service.app import create_state
from raas.service.crud import tokens as token_crud
from raas.service.crud import users as user_crud
from raas.service.schemas import UserUpdate
from raas.service.security import hash_token
from raas.service.token_cache import TTL_S
from tests.service.harness import ApiEnv, api_env

PASSWORD = "right-password"


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[ApiEnv]:
    e, client = api_env(database_url, tmp_path)
    with client:
        with e.state.db.write() as db:
            user = user_crud.get_user(db, e.seeded.users["alice@lab"][0])
            user_crud.update_user(db, user, UserUpdate(password=PASSWORD))
        yield e
    e.state.db.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(env: ApiEnv, token: str) -> httpx.Response:
    r: httpx.Response = env.client.get("/auth/me", headers=bearer(token))
    return r


def cached(env: ApiEnv, token: str) -> bool:
    return env.state.db.token_cache.lookup(hash_token(token), env.clock.now) is not None


def warm(env: ApiEnv, token: str) -> None:
    """Use the token until the cache holds it (so the test proves the cache lets go)."""
    assert me(env, token).status_code == 200
    assert me(env, token).status_code == 200
    assert cached(env, token), "the token should be cached after a successful request"


def session_token(env: ApiEnv) -> str:
    env.client.cookies.clear()
    r = env.client.post("/auth/login", json={"email": "alice@lab", "password": PASSWORD})
    assert r.status_code == 200, r.text
    env.client.cookies.clear()
    token: str = r.json()["access_token"]
    return token


def test_a_cached_token_answers_without_reading_it_again(env: ApiEnv) -> None:
    token = env.seeded.token("alice@lab")
    warm(env, token)
    assert me(env, token).json()["email"] == "alice@lab"


def test_a_revoked_token_stops_at_once(env: ApiEnv) -> None:
    token = env.seeded.token("alice@lab")
    warm(env, token)
    token_id = next(t["id"] for t in env.client.get("/auth/tokens", headers=bearer(token)).json())
    session = session_token(env)
    r = env.client.delete(f"/auth/tokens/{token_id}", headers=bearer(session))
    assert r.status_code == 200, r.text
    r = me(env, token)
    assert r.status_code == 401
    assert r.json()["error"] == "token_revoked"


def test_logout_ends_the_session_at_once(env: ApiEnv) -> None:
    session = session_token(env)
    warm(env, session)
    assert env.client.post("/auth/logout", headers=bearer(session)).status_code == 204
    assert me(env, session).status_code == 401


def test_a_password_change_ends_the_other_sessions_at_once(env: ApiEnv) -> None:
    other, changing = session_token(env), session_token(env)
    warm(env, other)
    alice = env.seeded.users["alice@lab"][0]
    r = env.client.patch(
        f"/users/{alice}", json={"password": "a-new-password"}, headers=bearer(changing)
    )
    assert r.status_code == 200, r.text
    r = me(env, other)
    assert r.status_code == 401
    assert r.json()["error"] == "token_revoked"
    assert me(env, changing).status_code == 200  # the session that changed it stays


def test_a_deactivated_account_stops_at_once(env: ApiEnv) -> None:
    token = env.seeded.token("bob@lab")
    warm(env, token)
    bob = env.seeded.users["bob@lab"][0]
    r = env.client.patch(f"/users/{bob}", json={"active": False}, headers=env.h("admin@lab"))
    assert r.status_code == 200, r.text
    assert me(env, token).status_code == 401


def test_a_demoted_user_loses_the_role_at_once(env: ApiEnv) -> None:
    token = env.seeded.token("staff@lab")
    warm(env, token)
    assert env.client.get("/users", headers=bearer(token)).status_code == 200
    staff = env.seeded.users["staff@lab"][0]
    r = env.client.patch(f"/users/{staff}", json={"role": "researcher"}, headers=env.h("admin@lab"))
    assert r.status_code == 200, r.text
    assert env.client.get("/users", headers=bearer(token)).status_code == 403


def test_an_expired_token_stops_at_its_expiry(env: ApiEnv) -> None:
    r = env.client.post(
        "/auth/tokens", json={"name": "short", "expires_in_days": 1}, headers=env.h("bob@lab")
    )
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    warm(env, token)
    env.clock.advance(timedelta(days=1))
    r = me(env, token)
    assert r.status_code == 401
    assert r.json()["error"] == "token_expired"


def test_a_revocation_by_another_process_holds_within_the_ttl(env: ApiEnv) -> None:
    """A second service process (or a script) writing to the same database: this process
    cannot hear of it, so it re-reads a cached token after TTL_S."""
    token = env.seeded.token("bob@lab")
    warm(env, token)
    other = create_state(env.seeded.settings)
    try:
        with other.db.write() as db:
            row, _ = token_crud.authenticate(db, token, env.clock.now)
            token_crud.revoke(db, db.merge(row), env.clock.now)
    finally:
        other.db.dispose()
    time.sleep(TTL_S + 0.5)
    r = me(env, token)
    assert r.status_code == 401
    assert r.json()["error"] == "token_revoked"


def test_a_read_that_raced_a_revocation_is_not_kept(env: ApiEnv) -> None:
    """A lookup that read the token before a revocation committed must not store it after."""
    cache = env.state.db.token_cache
    token = env.seeded.token("bob@lab")
    generation = cache.generation
    with env.state.db.read() as db:
        row, user = token_crud.authenticate(db, token, env.clock.now)
    token_id = row.id
    r = env.client.delete(f"/auth/tokens/{token_id}", headers=env.h("bob@lab"))
    assert r.status_code == 200, r.text
    cache.put(hash_token(token), (row, user), generation)
    assert not cached(env, token)
    assert me(env, token).status_code == 401
