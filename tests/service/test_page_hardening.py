"""The booking page's hardening and conveniences (issue 15, item 7), in the system Chromium
through Playwright against `raasd serve`: security headers on every answer (and a page that
runs under its Content-Security-Policy without a single violation, and refuses to be framed),
the week grid opening at the current hour, staff seeing names, one 24-hour time format, a
favicon, and a link to each robot's live dashboard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import require
from tests.service.harness import ROLES, Seeded, ServerProcess, seed, settings_for
from tests.service.test_booking_page import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORDS,
    ZONE,
    chromium_missing,
)

DASHBOARD = "http://127.0.0.1:9180/"
DATE_TIME = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, Seeded]]:
    settings = settings_for(f"sqlite:///{tmp_path / 'raas.db'}", tmp_path)
    seeded = seed(settings, users=ROLES, robots=("shadow-1",), unlimited=True)
    proc = ServerProcess(settings, tmp_path / "server.log").start()
    try:
        with httpx.Client(base_url=proc.base_url, timeout=10.0) as api:
            for email, password in PASSWORDS.items():
                r = api.patch(
                    f"/users/{seeded.users[email][0]}",
                    json={"password": password},
                    headers=seeded.headers("admin@lab"),
                )
                assert r.status_code == 200, r.text
        yield proc, seeded
    finally:
        proc.stop()


def _assert_hardened(r: httpx.Response) -> None:
    csp = r.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, (r.url, r.headers)
    assert r.headers.get("x-frame-options") == "DENY", r.url
    assert r.headers.get("referrer-policy") == "no-referrer", r.url
    assert r.headers.get("x-content-type-options") == "nosniff", r.url


@pytest.mark.system
def test_every_answer_carries_the_security_headers(server: tuple[ServerProcess, Seeded]) -> None:
    proc, seeded = server
    robot = seeded.robots["shadow-1"]
    with httpx.Client(base_url=proc.base_url, timeout=10.0) as api:
        for path in ("/login", "/book", f"/book/robots/{robot}", "/web/static/calendar.js"):
            _assert_hardened(api.get(path))
        _assert_hardened(api.get("/auth/me"))  # 401 JSON
        _assert_hardened(api.get("/health"))
        _assert_hardened(api.post("/auth/login", json={"email": 1}))  # 422
        _assert_hardened(api.get("/openapi.json"))
        docs = api.get("/docs")
        _assert_hardened(docs)
        assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]
        page_csp = api.get("/login").headers["content-security-policy"]
        assert "script-src 'self';" in page_csp and "unsafe-inline" not in page_csp
        icon = api.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"


@pytest.mark.system
@pytest.mark.slow
def test_the_page_under_its_policy_in_a_real_browser(
    server: tuple[ServerProcess, Seeded],
) -> None:
    why = chromium_missing()
    require("Chromium", why is None, why or "")
    from playwright.sync_api import Browser, Page, expect, sync_playwright

    expect.set_options(timeout=15_000)
    proc, seeded = server
    robot_id = seeded.robots["shadow-1"]
    staff_headers = seeded.headers("staff@lab")
    r = httpx.patch(
        f"{proc.base_url}/robots/{robot_id}",
        json={"dashboard_url": DASHBOARD},
        headers=staff_headers,
        timeout=10.0,
    )
    assert r.status_code == 200, r.text
    # bob's booking next week, 10:00-12:00 in Berlin
    berlin = ZoneInfo(ZONE)
    today = datetime.now(berlin).date()
    monday = today + timedelta(days=7 - today.weekday())
    start = datetime(monday.year, monday.month, monday.day, 10, tzinfo=berlin)
    r = httpx.post(
        f"{proc.base_url}/reservations",
        json={
            "robot_id": robot_id,
            "starts_at": start.astimezone(UTC).isoformat(),
            "ends_at": (start + timedelta(hours=2)).astimezone(UTC).isoformat(),
            "purpose": "bob's run",
        },
        headers=seeded.headers("bob@lab"),
        timeout=10.0,
    )
    assert r.status_code == 201, r.text
    violations: list[str] = []

    def sign_in(browser: Browser, email: str, url: str) -> Page:
        context = browser.new_context(
            timezone_id=ZONE, locale="en-US", viewport={"width": 1360, "height": 900}
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.goto(url)
        page.fill("#email", email)
        page.fill("#password", PASSWORDS[email])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("current-user")).to_have_text(email.split("@", maxsplit=1)[0])
        return page

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # the robot list links the live dashboard; the login worked under the CSP
            staff = sign_in(browser, "staff@lab", f"{proc.base_url}/book")
            link = staff.get_by_test_id("dashboard-link")
            expect(link).to_have_attribute("href", DASHBOARD)
            expect(link).to_have_attribute("rel", "noopener noreferrer")
            icon = staff.locator("link[rel=icon]")
            expect(icon).to_have_attribute("type", "image/svg+xml")

            # the current week opens at the current hour
            staff.goto(f"{proc.base_url}/book/robots/{robot_id}")
            expect(staff.locator("#week-label")).not_to_be_empty()
            expect(staff.get_by_test_id("dashboard-link")).to_have_attribute("href", DASHBOARD)
            hour = datetime.now(berlin).hour
            expect(staff.locator("#grid")).to_have_attribute("data-opened-at", re.compile(r"\d+"))
            opened = int(staff.locator("#grid").get_attribute("data-opened-at") or "-1")
            assert opened in (hour, (hour + 1) % 24)  # the hour may turn during the test
            visible = staff.evaluate(
                """(hour) => {
                    const grid = document.getElementById("grid");
                    const label = grid.querySelector(".hours").children[hour];
                    const g = grid.getBoundingClientRect(), l = label.getBoundingClientRect();
                    return l.top >= g.top && l.bottom <= g.bottom;
                }""",
                opened,
            )
            assert visible, "the current hour is not in view"

            # staff see bob's name on his booking, times in one 24-hour format
            staff.goto(f"{proc.base_url}/book/robots/{robot_id}?week={monday.isoformat()}")
            event = staff.locator(".event.other.staff-view")
            expect(event).to_have_count(1)
            expect(event).to_contain_text("bob: bob's run")
            expect(event.locator(".time")).to_have_text("10:00–12:00")  # en-US, still 24 h
            title = event.get_attribute("title") or ""
            assert re.search(rf"{DATE_TIME} – {DATE_TIME}$", title), title
            assert "AM" not in title and "PM" not in title
            expect(staff.locator("#week-label")).to_have_text(
                re.compile(r"^\d+ \w{3} – \d+ \w{3} \d{4}$")
            )
            beat = httpx.post(
                f"{proc.base_url}/robots/{robot_id}/heartbeat",
                json={"status": "available"},
                headers={"Authorization": f"Bearer {seeded.robot_tokens['shadow-1']}"},
                timeout=10.0,
            )
            assert beat.status_code == 200
            expect(staff.locator("#status-heartbeat")).to_have_text(
                re.compile(rf"^{DATE_TIME}:\d{{2}}$")
            )

            # a researcher still sees "booked", never a name
            alice = sign_in(
                browser, "alice@lab", f"{proc.base_url}/book/robots/{robot_id}?week={monday}"
            )
            expect(alice.locator(".event.other")).to_have_count(1)
            expect(alice.locator(".event.other")).to_contain_text("booked")
            expect(alice.locator(".event.other")).not_to_contain_text("bob")

            # another site cannot frame the page (frame-ancestors 'none' / X-Frame-Options)
            framer = browser.new_page()
            framer.set_content(f'<iframe id="f" src="{proc.base_url}/login"></iframe>')
            framer.wait_for_timeout(1500)
            child = framer.frames[1] if len(framer.frames) > 1 else None
            assert (
                child is None
                or child.url.startswith("chrome-error:")
                or not child.query_selector("#login-form")
            )
        finally:
            browser.close()
    assert violations == [], violations
