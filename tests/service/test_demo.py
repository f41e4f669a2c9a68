"""`raasd serve --demo` seeds one login per role and two robots, once."""

from __future__ import annotations

from pathlib import Path

from raas.service.seed import DEMO_USERS, seed_demo
from tests.service.harness import make_client, settings_for


def test_demo_seed_is_idempotent_and_logins_work(tmp_path: Path) -> None:
    client, state = make_client(settings_for(f"sqlite:///{tmp_path / 'demo.db'}", tmp_path))
    with client:
        assert seed_demo(state) == seed_demo(state) == list(DEMO_USERS)
        for login in DEMO_USERS:
            r = client.post("/auth/login", json={"email": login.email, "password": login.password})
            assert r.status_code == 200 and r.json()["user"]["role"] == login.role
        robots = client.get("/robots").json()  # the cookie of the last login
        assert [r["name"] for r in robots] == ["shadow-1", "shadow-2"]
    state.db.dispose()
