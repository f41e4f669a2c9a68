"""`raasd create-admin`: a new database gets its first admin without the demo's published
passwords, and a locked-out admin gets a new password (their old sessions end)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from raas.service.models import AuditEntry
from tests.service.harness import make_client, settings_for


def _raasd(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RAAS_ADMIN_PASSWORD"}
    if password is not None:
        env["RAAS_ADMIN_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "raas.cli", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_first_admin_logs_in_and_makes_accounts(database_url: str, tmp_path: Path) -> None:
    made = _raasd(
        "create-admin", "Root@Lab.org", "--database-url", database_url, password="s3cret-pass"
    )
    assert made.returncode == 0, made.stderr
    assert "admin root@lab.org" in made.stdout and "created" in made.stdout
    again = _raasd("create-admin", "root@lab.org", "--database-url", database_url, password="x" * 9)
    assert again.returncode == 2 and "exists" in again.stderr and "--reset-password" in again.stderr

    client, state = make_client(settings_for(database_url, tmp_path))
    with client:
        login = client.post(
            "/auth/login", json={"email": "root@lab.org", "password": "s3cret-pass"}
        )
        assert login.status_code == 200 and login.json()["user"]["role"] == "admin"
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        made_user = client.post(
            "/users",
            json={"email": "r@lab.org", "name": "R", "password": "another-one"},
            headers=auth,
        )
        assert made_user.status_code == 201, made_user.text
    with state.db.read() as db:
        actions = [e.action for e in db.query(AuditEntry).order_by(AuditEntry.id)]
    assert actions[0] == "user.create"
    state.db.dispose()


def test_reset_password_restores_a_locked_out_admin(database_url: str, tmp_path: Path) -> None:
    assert (
        _raasd(
            "create-admin", "a@lab.org", "--database-url", database_url, password="first-pass"
        ).returncode
        == 0
    )
    client, state = make_client(settings_for(database_url, tmp_path))
    with client:
        old = client.post("/auth/login", json={"email": "a@lab.org", "password": "first-pass"})
        old_auth = {"Authorization": f"Bearer {old.json()['access_token']}"}
        assert client.get("/auth/me", headers=old_auth).status_code == 200

        missing = _raasd(
            "create-admin",
            "b@lab.org",
            "--reset-password",
            "--database-url",
            database_url,
            password="whatever-1",
        )
        assert missing.returncode == 2 and "no account" in missing.stderr
        reset = _raasd(
            "create-admin",
            "a@lab.org",
            "--reset-password",
            "--database-url",
            database_url,
            password="second-pass",
        )
        assert reset.returncode == 0 and "1 sessions ended" in reset.stdout, reset.stdout
        state.db.token_cache.invalidate()  # what its TTL (1 s by default) does in a running service
        assert client.get("/auth/me", headers=old_auth).status_code == 401
        new = client.post("/auth/login", json={"email": "a@lab.org", "password": "second-pass"})
        assert new.status_code == 200 and new.json()["user"]["role"] == "admin"
    state.db.dispose()


def test_a_refused_password_says_why_and_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'raas.db'}"
    short = _raasd("create-admin", "a@lab.org", "--database-url", url, password="short")
    assert short.returncode == 2 and "password" in short.stderr
    none = _raasd("create-admin", "a@lab.org", "--database-url", url)
    assert none.returncode == 2 and "RAAS_ADMIN_PASSWORD" in none.stderr
    (tmp_path / "pw").write_text("from-a-file\n")
    ok = _raasd(
        "create-admin", "a@lab.org", "--database-url", url, "--password-file", str(tmp_path / "pw")
    )
    assert ok.returncode == 0, ok.stderr
    client, state = make_client(settings_for(url, tmp_path))
    with client:
        r = client.post("/auth/login", json={"email": "a@lab.org", "password": "from-a-file"})
        assert r.status_code == 200
    state.db.dispose()
