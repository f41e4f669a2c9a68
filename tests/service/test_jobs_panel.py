"""The Jobs panel on /book and job holds on the week grid, in a real browser.

`raasd serve` in a subprocess, the system Chromium via Playwright (as test_booking_page.py).
Alice has a finished job (three episodes, run over the robot routes by shadow-2), a running
one (claimed by shadow-1, one episode done) and a queued one; Bob has one naming a policy
server. Alice sees only her three, with status, policy (the bundle's digest), robot, episodes
done and the
episode's successes, and cancels the queued one from the page; staff see all three with names;
the week grid of shadow-1 shows the running job's hold as busy. The page keeps its
Content-Security-Policy (no violation in the console). The picture goes to
docs/images/jobs-panel.png with RAAS_UPDATE_SCREENSHOTS=1 (else the test's tmp dir).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from raas.service.security_headers import PAGE_CSP
from tests.conftest import require
from tests.service.harness import REPO, ROLES, Seeded, ServerProcess, seed, settings_for
from tests.service.robot_side import RobotSide
from tests.service.test_booking_page import CHROMIUM, CHROMIUM_ARGS, chromium_missing

PASSWORDS = {email: f"pw-{email.split('@')[0]}-2026" for email in ROLES}
SCREENSHOT = REPO / "docs" / "images" / "jobs-panel.png"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, Seeded]]:
    settings = settings_for(f"sqlite:///{tmp_path / 'raas.db'}", tmp_path)
    seeded = seed(settings, users=ROLES, robots=("shadow-1", "shadow-2"), unlimited=True)
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


def submit(base: str, seeded: Seeded, who: str, bundle: bytes, **job: object) -> int:
    sha = hashlib.sha256(bundle).hexdigest()
    h = seeded.headers(who)
    r = httpx.put(
        f"{base}/bundles/{sha}",
        content=bundle,
        headers={**h, "Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert r.status_code in (200, 201), r.text
    r = httpx.post(
        f"{base}/jobs",
        json={"bundle_sha256": sha, "task": "reorientation", **job},
        headers=h,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@pytest.mark.system
@pytest.mark.slow
def test_jobs_panel_in_a_real_browser(server: tuple[ServerProcess, Seeded], tmp_path: Path) -> None:
    why = chromium_missing()
    require("Chromium", why is None, why or "")
    from playwright.sync_api import Browser, Page, expect, sync_playwright

    expect.set_options(timeout=15_000)
    proc, seeded = server
    base = proc.base_url
    running = submit(base, seeded, "alice@lab", b"policy A", episodes=3, robot="shadow-1")
    queued = submit(base, seeded, "alice@lab", b"policy B", episodes=2, robot="shadow-1")
    done = submit(base, seeded, "alice@lab", b"policy D", episodes=3, robot="shadow-2")
    one, two = (
        RobotSide(base, seeded.robots[name], seeded.robot_tokens[name], name)
        for name in ("shadow-1", "shadow-2")
    )
    try:
        for robot in (one, two):
            robot.heartbeat()
        claim = two.claim()  # a finished job: three episodes
        assert claim.job_id == done
        for index, successes in enumerate((2, 7, 5)):
            two.episode(claim, index, successes)
        two.finish(claim, "succeeded")
        claim = one.claim()  # a running job: one episode of three
        assert claim.job_id == running
        one.episode(claim, 0, 4)
    finally:
        one.close()
        two.close()
    # Bob's names a policy server instead of a bundle (the AutoEval pattern)
    server_key = ">r{dG?>dd{bhp.aHh)l%.J%I!Uxv+#xXGJitS6+H"
    r = httpx.post(
        f"{base}/jobs",
        json={
            "policy_server": {"endpoint": "tcp://gpu.lab:7000", "server_key": server_key},
            "task": "reorientation",
            "episodes": 1,
            "robot": "shadow-2",
        },
        headers=seeded.headers("bob@lab"),
        timeout=10,
    )
    assert r.status_code == 201, r.text
    bobs = int(r.json()["id"])

    # the page itself: the one policy, no inline script
    page_html = httpx.get(
        f"{base}/book", cookies={"raas_session": seeded.token("alice@lab")}, timeout=10
    )
    assert page_html.headers["content-security-policy"] == PAGE_CSP
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page_html.text)

    def sign_in(browser: Browser, email: str, errors: list[str]) -> Page:
        context = browser.new_context(
            timezone_id="Europe/Berlin", locale="en-GB", viewport={"width": 1360, "height": 900}
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{base}/book")
        page.fill("#email", email)
        page.fill("#password", PASSWORDS[email])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("current-user")).to_have_text(email.split("@", maxsplit=1)[0])
        return page

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            alice = sign_in(browser, "alice@lab", errors)
            panel = alice.locator("#jobs-panel")
            expect(panel.locator("h2")).to_have_text("Your jobs")
            rows = panel.locator("tbody tr")
            expect(rows).to_have_count(3)  # hers only
            done_row = panel.locator(f"tr[data-job-id='{done}']")
            expect(done_row.locator(".job-status")).to_have_text("succeeded")
            expect(done_row.locator(".job-results")).to_have_text("2 7 5")
            expect(done_row.locator(".job-episodes")).to_have_text("3/3")
            expect(done_row.locator("button.job-cancel")).to_have_count(0)
            # the policy it ran: the bundle's digest, the full one as the tooltip
            digest = hashlib.sha256(b"policy D").hexdigest()
            expect(done_row.locator(".job-policy")).to_have_text(f"bundle {digest[:12]}")
            expect(done_row.locator(".job-policy")).to_have_attribute(
                "title", f"bundle sha256 {digest}"
            )
            run_row = panel.locator(f"tr[data-job-id='{running}']")
            expect(run_row.locator(".job-status")).to_have_text("running")
            expect(run_row.locator(".job-robot")).to_have_text("shadow-1")
            expect(run_row.locator(".job-episodes")).to_have_text("1/3")
            expect(run_row.locator(".job-results")).to_have_text("4")
            expect(panel.locator(f"tr[data-job-id='{bobs}']")).to_have_count(0)
            q_row = panel.locator(f"tr[data-job-id='{queued}']")
            expect(q_row.locator(".job-status")).to_have_text("queued")
            expect(q_row.locator(".job-episodes")).to_have_text("0/2")

            # cancel the queued one from the page
            alice.once("dialog", lambda dialog: dialog.accept())
            q_row.locator("button.job-cancel").click()
            expect(alice.locator("#jobs-message")).to_have_text(f"Job #{queued} cancelled.")
            expect(q_row.locator(".job-status")).to_have_text("cancelled")
            expect(q_row.locator("button.job-cancel")).to_have_count(0)
            alice.select_option("#jobs-filter", "active")
            expect(rows).to_have_count(1)
            alice.select_option("#jobs-filter", "all")
            expect(rows).to_have_count(3)
            update = os.environ.get("RAAS_UPDATE_SCREENSHOTS") == "1"
            shot = SCREENSHOT if update else tmp_path / SCREENSHOT.name
            shot.parent.mkdir(parents=True, exist_ok=True)
            panel.screenshot(path=str(shot))

            # the running job holds shadow-1 on its week grid, like a booking
            alice.goto(f"{base}/book/robots/{seeded.robots['shadow-1']}")
            hold = alice.locator(".event.job")
            expect(hold.first).to_contain_text("evaluation job")

            # staff see everyone's, with names
            staff = sign_in(browser, "staff@lab", errors)
            spanel = staff.locator("#jobs-panel")
            expect(spanel.locator("h2")).to_have_text("Jobs (everyone's)")
            expect(spanel.locator("tbody tr")).to_have_count(4)
            bob_cell = spanel.locator(f"tr[data-job-id='{bobs}'] .job-user")
            expect(bob_cell).to_have_text("bob")  # the name; the email is its tooltip
            expect(bob_cell).to_have_attribute("title", "bob@lab")
            bob_policy = spanel.locator(f"tr[data-job-id='{bobs}'] .job-policy")
            expect(bob_policy).to_have_text("server tcp://gpu.lab:7000")
            expect(bob_policy).to_have_attribute(
                "title", f"policy server key {server_key}, H=16, newest"
            )
            expect(spanel.locator(f"tr[data-job-id='{running}'] .job-user")).to_contain_text(
                "alice"
            )
        finally:
            browser.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
    r = httpx.get(f"{base}/jobs/{queued}", headers=seeded.headers("alice@lab"), timeout=10)
    assert r.json()["status"] == "cancelled"
