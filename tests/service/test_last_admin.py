"""A lab never loses its last active admin: demoting or deactivating them is refused (409)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from raas.service.app import create_app
from raas.service.models import Role
from tests.service.harness import seed, settings_for


def test_last_admin_cannot_be_demoted_or_deactivated(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    seeded = seed(settings, users={"admin@lab": Role.admin, "admin2@lab": Role.admin})
    (a1, t1), (a2, _) = seeded.users["admin@lab"], seeded.users["admin2@lab"]
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            h = {"Authorization": f"Bearer {t1}"}
            # Two admins: one may step down.
            r = client.patch(f"/users/{a2}", json={"role": "staff"}, headers=h)
            assert r.status_code == 200, r.text
            # Now a1 is the last: neither demotion nor deactivation passes, and nothing changes.
            for body in ({"role": "researcher"}, {"active": False}):
                r = client.patch(f"/users/{a1}", json=body, headers=h)
                assert r.status_code == 409, r.text
                assert r.json()["error"] == "last_admin"
            me = client.get(f"/users/{a1}", headers=h).json()
            assert me["role"] == "admin" and me["active"] is True
            # Other changes to the last admin still work.
            r = client.patch(f"/users/{a1}", json={"name": "Still Admin"}, headers=h)
            assert r.status_code == 200, r.text
    finally:
        app.state.service.db.dispose()
