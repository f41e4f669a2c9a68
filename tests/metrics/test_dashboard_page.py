"""The live dashboard in a real browser against a real running cell.

`raasd run --sim --clock lockstep --cameras 1 --metrics-port 0` in a subprocess (the real rig,
the real exporter), the system Chromium through Playwright. The page must show the loop
RUNNING, then show the cycle counter climbing, a camera thumbnail and new thumbnails arriving,
and filled lateness percentiles, all without a reload. The final view is saved as a screenshot:
to docs/images/dashboard.png with RAAS_UPDATE_SCREENSHOTS=1, else into the test's tmp dir.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.service.test_booking_page import CHROMIUM, CHROMIUM_ARGS, chromium_missing

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "images" / "dashboard.png"


class Cell:
    def __init__(self, proc: subprocess.Popen[str], url: str, banner: str) -> None:
        self.proc = proc
        self.url = url
        self.banner = banner


@pytest.fixture
def cell() -> Iterator[Cell]:
    cmd = [sys.executable, "-m", "raas.cli", "run", "--sim", "--clock", "lockstep"]
    cmd += ["--cameras", "1", "--rate", "12.5", "--duration", "900", "--no-rt", "--quiet"]
    cmd += ["--metrics-port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # readline on a pipe blocks: a thread, so the fixture can time out
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    url, banner = "", ""
    deadline = time.monotonic() + 120
    while not (url and banner) and time.monotonic() < deadline and proc.poll() is None:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if m := re.search(r"live dashboard on (http://\S+)", line):
            url = m.group(1)
        if "simulated cell up" in line:
            banner = line
    try:
        assert url and banner, f"the cell did not come up (exit code {proc.poll()})"
        yield Cell(proc, url, banner)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()


@pytest.mark.system
@pytest.mark.slow
def test_dashboard_shows_live_data_in_headless_chromium(cell: Cell, tmp_path: Path) -> None:
    why = chromium_missing()
    require("Chromium", why is None, why or "")
    require("offscreen GL", "renderer none" not in cell.banner, cell.banner.strip())
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # a loaded 2-core box
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(cell.url)
            page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads

            expect(page.get_by_test_id("state")).to_have_text("RUNNING")
            expect(page.get_by_test_id("connection")).to_have_text(re.compile("^live"))
            first = int(page.get_by_test_id("cycle").inner_text())
            page.wait_for_function(
                "n => Number(document.querySelector('[data-testid=cycle]').textContent) > n + 20",
                arg=first,
            )
            # a thumbnail that decoded, then a newer one
            thumb = page.locator("img[data-testid=thumbnail]")
            expect(thumb).to_have_count(1)
            page.wait_for_function(
                "() => { const i = document.querySelector('img[data-testid=thumbnail]');"
                " return i && i.complete && i.naturalWidth > 0; }"
            )
            seq = int(thumb.get_attribute("data-seq") or "0")
            assert seq > 0
            page.wait_for_function(
                "s => Number(document.querySelector('img[data-testid=thumbnail]').dataset.seq) > s",
                arg=seq,
            )
            # the newer thumbnail's data-seq is set with its src: wait until it has decoded
            page.wait_for_function(
                "() => { const i = document.querySelector('img[data-testid=thumbnail]');"
                " return i && i.complete && i.naturalWidth > 0; }"
            )
            width = page.evaluate(
                "document.querySelector('img[data-testid=thumbnail]').naturalWidth"
            )
            assert width == 67  # 200 px camera, every 3rd pixel
            # loop health is filled in: percentiles over the recent cycles, counters, sources
            n = page.locator("#pct-lateness td").first.inner_text()
            assert int(n) > 0
            expect(page.get_by_test_id("missed")).to_have_text("0")
            expect(page.locator("#sources tr")).to_have_count(4)  # hand trigger mocap camera
            expect(page.get_by_test_id("lease")).to_have_text("nobody")
            assert float(page.get_by_test_id("rate").inner_text()) > 0
            assert page.evaluate("window.__sameDocument === true")

            update = os.environ.get("RAAS_UPDATE_SCREENSHOTS") == "1"
            shot = SCREENSHOT if update else tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
