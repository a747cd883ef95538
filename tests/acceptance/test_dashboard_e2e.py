"""The dashboard end to end: a real class run, the Streamlit server, a headless Chromium.

Chromium is Debian's (``apt-get install chromium``): Playwright's own browser download needs the
internet. The page must load everything from the dashboard itself (no request leaves 127.0.0.1),
list the workers on the leaderboard, show a sample grid stored by the coordinator, and follow the
run by itself until it completes.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from ganfriends.dashboard import start_dashboard, stop_dashboard, wait_until_ready
from ganfriends.dashboard.data import sample_versions
from ganfriends.db import Database
from tests.acceptance.class_harness import ClassRoom
from tests.conftest import requires_fashion_mnist

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
STEPS = 6  # alternating (the default): a D version and a G version per step
RUN = [
    "--images-per-work-unit", "128", "--workunits-per-update", "2", "--micro-batch", "32",
    "--max-iterations", str(STEPS), "--work-unit-timeout", "30", "--seed", "5",
    "--sample-interval", "1", "--max-backups", "0",
]  # fmt: skip
WORKERS = ("ada", "grace")

pytestmark = [
    requires_fashion_mnist,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} not found: Debian's chromium package (make test installs it)",
    ),
    pytest.mark.slow,
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def image_width(page: Page) -> int:
    """naturalWidth of the sample grid once it has loaded (0 while it has not)."""
    width: int = page.locator('[data-testid="stImage"] img').first.evaluate(
        "img => img.complete ? img.naturalWidth : 0"
    )
    return width


def test_dashboard_follows_a_class_run(room: ClassRoom, db_url: str, tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "dashboard.log").open("w") as log:
        # Started together: Streamlit's start-up overlaps the coordinator's.
        dashboard = start_dashboard(db_url, port, log=log)
        try:
            coordinator = room.coordinator("run", *RUN)
            # Each does at most half the units, and no backup copies are handed out: the run
            # needs both (a woken worker is fast enough to finish a run this small alone before
            # the other has loaded its data).
            workers = [room.worker(name, "--max-units", str(2 * STEPS)) for name in WORKERS]
            wait_until_ready(dashboard, port)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 2000})
                    requests: list[str] = []
                    page.on("request", lambda request: requests.append(request.url))
                    page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
                    try:
                        check_page(page)
                    finally:
                        page.screenshot(path=str(tmp_path / "dashboard.png"))
                    foreign = [
                        url
                        for url in requests
                        if not url.startswith((f"http://127.0.0.1:{port}/", "data:", "blob:"))
                    ]
                    assert foreign == [], "the page fetched from elsewhere"
                finally:
                    browser.close()
            assert coordinator.finish() == 0, coordinator.output
            for worker in workers:
                assert worker.finish() == 0, worker.output
        finally:
            stop_dashboard(dashboard)
    # The grids the page showed came from the database: one per step (--sample-interval 1).
    with Database(db_url) as db:
        assert sample_versions(db, 1) == list(range(2, 2 * STEPS + 1, 2))


def check_page(page: Page) -> None:
    """Leaderboard names, a rendered grid, and the page refreshing itself to the run's end."""
    for name in WORKERS:
        cell = page.locator('[data-testid="stTable"] td').filter(has_text=re.compile(f"^{name}$"))
        cell.first.wait_for(timeout=45_000)
    page.locator('[data-testid="stImage"] img').first.wait_for(timeout=45_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
        ".some(img => img.complete && img.naturalWidth > 0)",
        timeout=30_000,
    )
    assert image_width(page) > 0
    # No reload from here on: the fragment's refresh must bring the final version ...
    page.get_by_text(f"{STEPS} / {STEPS}", exact=True).first.wait_for(timeout=60_000)
    assert page.get_by_text(f"version {2 * STEPS}", exact=True).count() == 1
    assert page.get_by_text("100% of the run (complete)").count() == 1
    # ... and keep refreshing after it (every 5 s, read off the page's own clock line).
    stamp = page.get_by_text(re.compile(r"^Updated \d\d:\d\d:\d\d"))
    first = stamp.inner_text()
    page.wait_for_function(
        "previous => [...document.querySelectorAll('p')].some("
        "p => p.textContent.startsWith('Updated ') && p.textContent !== previous)",
        arg=first,
        timeout=15_000,
    )
