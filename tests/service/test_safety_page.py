"""The booking page's safety panel in the system Chromium (Playwright) against `raasd serve`:
staff see a wear alert, press E-STOP (the daemon's command feed gets it), clear it, reset the
worn actuator and clear a failed health check; a researcher without a running booking gets no
E-STOP button. The final staff view is saved as a screenshot (docs/images/safety-panel.png with
RAAS_UPDATE_SCREENSHOTS=1, else into the test's tmp dir)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require
from tests.service.harness import REPO, ROLES, Seeded, ServerProcess, seed, settings_for
from tests.service.test_booking_page import CHROMIUM, CHROMIUM_ARGS, PASSWORDS, ZONE
from tests.service.test_booking_page import chromium_missing as _chromium_missing

SCREENSHOT = REPO / "docs" / "images" / "safety-panel.png"


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


def _wear(travel: float) -> dict[str, Any]:
    joints = {"A_FFJ3": travel, "A_MFJ3": 2.0, "A_THJ5": 1.0}
    return {
        "actuators": {
            name: {"travel_rad": t, "load_s": 30.0, "peak_effort": 0.4, "hours_run": 0.5}
            for name, t in joints.items()
        }
    }


@pytest.mark.system
@pytest.mark.slow
def test_staff_see_wear_alerts_and_use_estop_in_a_real_browser(
    server: tuple[ServerProcess, Seeded], tmp_path: Path
) -> None:
    why = _chromium_missing()
    require("Chromium", why is None, why or "")
    from playwright.sync_api import Browser, Page, expect, sync_playwright

    expect.set_options(timeout=15_000)  # a loaded 2-core box; the page polls every 5 s
    proc, seeded = server
    robot = seeded.robots["shadow-1"]
    staff_h = seeded.headers("staff@lab")
    daemon_h = {"Authorization": f"Bearer {seeded.robot_tokens['shadow-1']}"}
    api = httpx.Client(base_url=proc.base_url, timeout=10.0)
    r = api.put(f"/robots/{robot}/wear/thresholds", json={"travel_rad": 100.0}, headers=staff_h)
    assert r.status_code == 200, r.text
    for travel in (40.0, 80.0, 120.0):  # the third heartbeat crosses the threshold
        beat = api.post(
            f"/robots/{robot}/heartbeat",
            json={"wear": _wear(travel), "safety": {"state": "running", "reason": "first_action"}},
            headers=daemon_h,
        )
        assert beat.status_code == 200, beat.text
    head = api.get(f"/robots/{robot}/commands", headers=daemon_h).json()["head"]

    def sign_in(browser: Browser, email: str, url: str) -> Page:
        context = browser.new_context(
            timezone_id=ZONE, locale="en-GB", viewport={"width": 1360, "height": 1000}
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.goto(url)
        expect(page).to_have_url(re.compile(r"/login\?next="))
        page.fill("#email", email)
        page.fill("#password", PASSWORDS[email])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("current-user")).to_have_text(email.split("@", maxsplit=1)[0])
        return page

    week_url = f"{proc.base_url}/book/robots/{robot}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # the robots list flags the alert
            staff = sign_in(browser, "staff@lab", f"{proc.base_url}/book")
            expect(staff.get_by_test_id("wear-alerts")).to_have_text("1 wear alert")

            staff.goto(week_url)
            expect(staff.locator("#status-safety")).to_contain_text("running")
            expect(staff.locator("#wear-alerts li")).to_have_count(1)
            expect(staff.locator("#wear-alerts li")).to_contain_text("A_FFJ3: travel_rad 120")
            staff.locator("#wear-details summary").click()
            row = staff.locator('#wear-table tr[data-actuator="A_FFJ3"]')
            expect(row.locator("td.over")).to_have_count(1)
            expect(staff.locator("#wear-table tbody tr")).to_have_count(3)

            # E-STOP: the daemon's feed carries it, the page shows the latch
            expect(staff.locator("#estop-button")).to_be_visible()
            staff.click("#estop-button")
            expect(staff.locator("#message")).to_contain_text("E-stop sent")
            expect(staff.locator("#estop-state")).to_be_visible()
            feed = api.get(
                f"/robots/{robot}/commands", params={"since": head}, headers=daemon_h
            ).json()
            assert [(c["kind"], c["by"]) for c in feed["commands"]] == [("estop", "staff@lab")]
            update = os.environ.get("RAAS_UPDATE_SCREENSHOTS") == "1"
            shot = SCREENSHOT if update else tmp_path / SCREENSHOT.name
            shot.parent.mkdir(parents=True, exist_ok=True)
            staff.screenshot(path=str(shot), full_page=True)

            staff.once("dialog", lambda dialog: dialog.accept())
            staff.click("#clear-estop")
            expect(staff.locator("#message")).to_contain_text("E-stop cleared")
            expect(staff.locator("#estop-state")).to_be_hidden()

            # reset the worn actuator after maintenance: the alert goes
            staff.once("dialog", lambda dialog: dialog.accept())
            row.get_by_role("button", name="reset").click()
            expect(staff.locator("#message")).to_contain_text("Wear reset")
            expect(staff.locator("#wear-alerts li")).to_have_count(0)
            expect(staff.locator("#wear-none")).to_be_visible()
            expect(row.locator("td.over")).to_have_count(0)

            # a failed health check shows up with the poll; staff clear it on the page
            beat = api.post(
                f"/robots/{robot}/heartbeat",
                json={
                    "health": {
                        "ok": False,
                        "at": "2031-01-01T10:00:00Z",
                        "checks": [{"name": "camera_black", "ok": False, "detail": "cam0"}],
                    }
                },
                headers=daemon_h,
            )
            assert beat.status_code == 200, beat.text
            expect(staff.locator("#health-state")).to_contain_text("Blocked")
            expect(staff.locator("#health-state")).to_contain_text("camera_black")
            expect(staff.locator("#status-bookable")).to_have_text("closed")
            staff.once("dialog", lambda dialog: dialog.accept("lens cap removed"))
            staff.click("#clear-health")
            expect(staff.locator("#message")).to_contain_text("Health block cleared")
            expect(staff.locator("#clear-health")).to_be_hidden()
            assert api.get(f"/robots/{robot}", headers=staff_h).json()["bookable"] is True

            # a researcher without a booking running now has no E-STOP button
            alice = sign_in(browser, "alice@lab", week_url)
            expect(alice.locator("#health-state")).to_be_visible()
            expect(alice.locator("#estop-button")).to_have_count(0)
            expect(alice.locator("#clear-health")).to_have_count(0)
        finally:
            browser.close()
            api.close()
