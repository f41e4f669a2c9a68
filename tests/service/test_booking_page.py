"""The booking page end to end: `raasd serve` in a subprocess, the system Chromium via Playwright.

A researcher signs in, books a slot, sees it on the week calendar and cancels it; a staff member
lays a maintenance block; the researcher then cannot book over it. The final state (the
researcher's week with their booking, someone else's and the block) is saved as a screenshot:
to docs/images/booking-page.png with RAAS_UPDATE_SCREENSHOTS=1, else into the test's tmp dir
(so a test run leaves the work tree clean).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from icalendar import Calendar

from tests.conftest import require
from tests.service.harness import REPO, ROLES, Seeded, ServerProcess, seed, settings_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ZONE = "Europe/Berlin"
PASSWORDS = {email: f"pw-{email.split('@')[0]}-2026" for email in ROLES}
SCREENSHOT = REPO / "docs" / "images" / "booking-page.png"


def chromium_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        return "no chromium binary (apt-get install chromium)"
    return None


def next_monday() -> date:
    today = datetime.now(ZoneInfo(ZONE)).date()
    return today + timedelta(days=7 - today.weekday())


def local_input(day: date, hour: int) -> str:
    """A datetime-local input value."""
    return f"{day.isoformat()}T{hour:02d}:00"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, Seeded]]:
    settings = settings_for(f"sqlite:///{tmp_path / 'raas.db'}", tmp_path)
    seeded = seed(settings, users=ROLES, robots=("shadow-1",), unlimited=True)
    proc = ServerProcess(settings, tmp_path / "server.log").start()
    try:
        with httpx.Client(base_url=proc.base_url, timeout=10.0) as api:
            for email, password in PASSWORDS.items():
                user_id = seeded.users[email][0]
                r = api.patch(
                    f"/users/{user_id}",
                    json={"password": password},
                    headers=seeded.headers("admin@lab"),
                )
                assert r.status_code == 200, r.text
        yield proc, seeded
    finally:
        proc.stop()


@pytest.mark.system
@pytest.mark.slow
def test_book_cancel_and_maintenance_in_a_real_browser(
    server: tuple[ServerProcess, Seeded], tmp_path: Path
) -> None:
    why = chromium_missing()
    require("Chromium", why is None, why or "")
    from playwright.sync_api import Browser, Page, expect, sync_playwright

    expect.set_options(timeout=15_000)  # a loaded 2-core CI box; the page polls every 5 s
    proc, seeded = server
    robot_id = seeded.robots["shadow-1"]
    monday = next_monday()
    week_url = f"{proc.base_url}/book/robots/{robot_id}?week={monday.isoformat()}"
    tuesday, wednesday, thursday = (monday + timedelta(days=n) for n in (1, 2, 3))

    # Someone else's booking, so the calendar shows what is taken without saying by whom.
    berlin = ZoneInfo(ZONE)
    other_start = datetime(thursday.year, thursday.month, thursday.day, 14, tzinfo=berlin)
    r = httpx.post(
        f"{proc.base_url}/reservations",
        json={
            "robot_id": robot_id,
            "starts_at": other_start.astimezone(UTC).isoformat(),
            "ends_at": (other_start + timedelta(hours=3)).astimezone(UTC).isoformat(),
            "purpose": "bob's run",
        },
        headers=seeded.headers("bob@lab"),
        timeout=10.0,
    )
    assert r.status_code == 201, r.text

    def sign_in(browser: Browser, email: str) -> Page:
        context = browser.new_context(
            timezone_id=ZONE, locale="en-GB", viewport={"width": 1360, "height": 900}
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.goto(week_url)  # not signed in: the page sends us to /login and back
        expect(page).to_have_url(re.compile(r"/login\?next=%2Fbook%2Frobots%2F"))
        page.fill("#email", email)
        page.fill("#password", PASSWORDS[email])
        page.click("button[type=submit]")
        expect(page.locator("#week-label")).not_to_be_empty()
        expect(page.get_by_test_id("current-user")).to_have_text(email.split("@", maxsplit=1)[0])
        return page

    def book(page: Page, day: date, hour: int, hours: str, purpose: str) -> None:
        page.fill("#book-start", local_input(day, hour))
        page.select_option("#book-hours", hours)
        page.fill("#book-purpose", purpose)
        page.click("#book-submit")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            alice = sign_in(browser, "alice@lab")
            expect(alice.locator(".event.other")).to_have_count(1)
            expect(alice.locator("#status-value")).to_have_text("available")
            expect(alice.locator("#status-online")).to_have_text("no heartbeat")

            # live status: the daemon's heartbeat shows up without a reload (the page polls)
            beat = httpx.post(
                f"{proc.base_url}/robots/{robot_id}/heartbeat",
                json={"status": "available"},
                headers={"Authorization": f"Bearer {seeded.robot_tokens['shadow-1']}"},
                timeout=10.0,
            )
            assert beat.status_code == 200, beat.text
            expect(alice.locator("#status-online")).to_have_text("online")

            # book, see it, cancel it
            book(alice, tuesday, 10, "2", "grasp policy eval")
            expect(alice.locator("#message")).to_contain_text("Booked")
            mine = alice.locator(".event.mine")
            expect(mine).to_have_count(1)
            expect(mine).to_contain_text("10:00–12:00")
            expect(mine).to_contain_text("grasp policy eval")
            alice.once("dialog", lambda dialog: dialog.accept())
            mine.click()
            expect(alice.locator("#message")).to_contain_text("cancelled")
            expect(alice.locator(".event.mine")).to_have_count(0)

            # staff lays a maintenance block on Wednesday morning
            staff = sign_in(browser, "staff@lab")
            staff.fill("#maint-start", local_input(wednesday, 9))
            staff.fill("#maint-end", local_input(wednesday, 13))
            staff.fill("#maint-reason", "tendon re-tensioning")
            staff.click("#maint-submit")
            expect(staff.locator("#message")).to_contain_text("Maintenance block added")
            expect(staff.locator(".event.maintenance")).to_have_count(1)

            # the researcher sees it and cannot book over it
            alice.reload()
            expect(alice.locator(".event.maintenance")).to_contain_text("tendon re-tensioning")
            book(alice, wednesday, 10, "1", "sneak in")
            expect(alice.locator("#message")).to_contain_text("maintenance")
            expect(alice.locator(".event.mine")).to_have_count(0)

            # a booking that stays, for the picture
            book(alice, tuesday, 9, "3", "in-hand reorientation")
            expect(alice.locator(".event.mine")).to_have_count(1)
            alice.locator(".grid").evaluate("el => { el.scrollTop = 7 * 28 - 12; }")
            update = os.environ.get("RAAS_UPDATE_SCREENSHOTS") == "1"
            shot = SCREENSHOT if update else tmp_path / SCREENSHOT.name
            shot.parent.mkdir(parents=True, exist_ok=True)
            alice.screenshot(path=str(shot), full_page=True)

            # staff can take the block away again
            staff.reload()
            staff.once("dialog", lambda dialog: dialog.accept())
            staff.locator(".event.maintenance").click()
            expect(staff.locator("#message")).to_contain_text("removed")
            expect(staff.locator(".event.maintenance")).to_have_count(0)

            # across the next spring-forward (Sunday 2027-03-28 in Berlin): 3 real hours from
            # 01:00 CET end at 05:00 CEST, and the calendar feed agrees on the instants
            alice.goto(f"{proc.base_url}/book/robots/{robot_id}?week=2027-03-22")
            expect(alice.locator("#week-label")).to_contain_text("22 Mar")
            book(alice, date(2027, 3, 28), 1, "3", "over the DST change")
            dst = alice.locator(".event.mine", has_text="over the DST change")
            expect(dst).to_contain_text("01:00–05:00")
        finally:
            browser.close()

    # what the page showed is what the database holds
    r = httpx.get(
        f"{proc.base_url}/reservations",
        params={"robot_id": robot_id, "status": "confirmed"},
        headers=seeded.headers("staff@lab"),
        timeout=10.0,
    )
    kept = sorted((x["purpose"], x["starts_at"]) for x in r.json())
    assert [p for p, _ in kept] == ["bob's run", "in-hand reorientation", "over the DST change"]
    feed = httpx.get(
        f"{proc.base_url}/robots/{robot_id}/calendar.ics",
        params={"token": seeded.token("alice@lab")},
        timeout=10.0,
    )
    spans = {
        (ev.decoded("dtstart"), ev.decoded("dtend"))
        for ev in Calendar.from_ical(feed.content).walk("VEVENT")
        if str(ev["status"]) == "CONFIRMED"
    }
    assert (datetime(2027, 3, 28, 0, tzinfo=UTC), datetime(2027, 3, 28, 3, tzinfo=UTC)) in spans
