"""The booking page's server side: who gets which page, redirects that stay on this site."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.service.harness import ROLES, Seeded, make_client, seed, settings_for


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[TestClient, Seeded]]:
    settings = settings_for(f"sqlite:///{tmp_path / 'raas.db'}", tmp_path)
    seeded = seed(settings, users=ROLES, robots=("shadow-1",))
    client, state = make_client(settings)
    with client:
        yield client, seeded
    state.db.dispose()


def sign_in(client: TestClient, seeded: Seeded, email: str) -> None:
    client.cookies.set("raas_session", seeded.token(email))


def test_pages_send_strangers_to_login_and_back(site: tuple[TestClient, Seeded]) -> None:
    client, seeded = site
    r = client.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/book")
    r = client.get("/book/robots/1?week=2026-03-23", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fbook%2Frobots%2F1%3Fweek%3D2026-03-23"
    page = client.get(r.headers["location"])
    assert page.status_code == 200 and '"/book/robots/1?week=2026-03-23"' in page.text
    # a robot daemon's token is no person: it gets the login page too
    client.cookies.set("raas_session", seeded.robot_tokens["shadow-1"])
    assert client.get("/book", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil", "x"])
def test_login_never_redirects_off_site(site: tuple[TestClient, Seeded], target: str) -> None:
    client, _ = site
    page = client.get("/login", params={"next": target})
    assert page.status_code == 200
    assert 'data-next="/book"' in page.text


def test_signed_in_pages(site: tuple[TestClient, Seeded]) -> None:
    client, seeded = site
    sign_in(client, seeded, "alice@lab")
    robots = client.get("/book")
    assert robots.status_code == 200 and "shadow-1" in robots.text
    week = client.get(f"/book/robots/{seeded.robots['shadow-1']}")
    assert week.status_code == 200
    assert 'data-staff="false"' in week.text and 'id="maint-form"' not in week.text
    assert client.get("/book/robots/999").status_code == 404
    sign_in(client, seeded, "staff@lab")
    week = client.get(f"/book/robots/{seeded.robots['shadow-1']}")
    assert 'data-staff="true"' in week.text and 'id="maint-form"' in week.text


def test_static_files_are_a_fixed_list(site: tuple[TestClient, Seeded]) -> None:
    client, _ = site
    js = client.get("/web/static/calendar.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert client.get("/web/static/booking.css").status_code == 200
    for name in ("app.py", "..%2F..%2Fraas%2Fservice%2Fapp.py", "week.html"):
        assert client.get(f"/web/static/{name}").status_code == 404


def test_the_robots_page_has_the_jobs_panel(site: tuple[TestClient, Seeded]) -> None:
    """A researcher's panel lists their jobs; staff's says everyone's and has a user column."""
    client, seeded = site
    sign_in(client, seeded, "alice@lab")
    page = client.get("/book")
    assert 'id="jobs-panel"' in page.text and 'data-staff="false"' in page.text
    assert "Your jobs" in page.text and "<th>User</th>" not in page.text
    assert '<script src="/web/static/jobs.js?v=' in page.text
    js = client.get("/web/static/jobs.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    sign_in(client, seeded, "staff@lab")
    page = client.get("/book")
    assert 'data-staff="true"' in page.text and "<th>User</th>" in page.text
    assert "Jobs (everyone&#39;s)" in page.text
    # a missing robot's page has no panel
    assert 'id="jobs-panel"' not in client.get("/book/robots/999").text
