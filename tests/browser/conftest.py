"""A real Chromium (Debian's, not a downloaded build) driven by Playwright against the live app.

Every test gets a fresh browser profile. ``shoot`` saves a full-page screenshot of the
page at desktop (1280 px) and phone (390 px) width under ``var/screenshots/``, which CI
keeps as artifacts: the layout is judged from those. No test sleeps: a resize waits until
the charts have redrawn at the new width (``resize``), everything else uses Playwright's
waiting assertions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
# A real browser takes over a minute for this folder: CI runs it in its first (embedded)
# pass only, not again in the PostgreSQL + Redis pass.
collect_ignore_glob = ["test_*.py"] if os.environ.get("LLMPROXY_INTEGRATION") == "1" else []
CHROMIUM = os.environ.get("LLMPROXY_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
SHOTS = ROOT / "var" / "screenshots"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Per module: Playwright's sync API keeps an event loop running on this thread, which
    Django takes for async code; it must be gone before the next module's tests."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # the tests' own ORM calls are plain sync code
    try:
        with sync_playwright() as p:
            yield p
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def context(playwright: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    ctx = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=CHROMIUM, args=ARGS, headless=True,
        viewport={"width": WIDTHS["desktop"][0], "height": WIDTHS["desktop"][1]}, accept_downloads=True,
    )  # fmt: skip
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """The test's tab; afterwards, nothing a page asked for was missing (a 404 for a script,
    a style or the icon shows as a broken page, or as a warning in the serve log)."""
    tab = context.pages[0] if context.pages else context.new_page()
    missing: list[str] = []
    tab.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    yield tab
    assert missing == [], f"the pages asked for what is not there: {missing}"


@pytest.fixture
def shoot() -> Callable[[Page, str], None]:
    """Screenshot the current page at each width (restoring the desktop width after)."""
    SHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> None:
        for label, (w, h) in WIDTHS.items():
            resize(page, w, h)
            page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
        resize(page, *WIDTHS["desktop"])

    return take


#: True once every chart's canvas fits its box: Chart.js redraws on a ResizeObserver callback,
#: so right after the window narrows a canvas still has the old width (and sticks out).
CHARTS_FIT = """() => [...document.querySelectorAll('canvas')].every(c => {
    const box = c.parentElement.getBoundingClientRect(), me = c.getBoundingClientRect();
    return me.width <= box.width + 1 && me.right <= box.right + 1; })"""
#: Resolves after the browser has laid out and painted two more frames.
TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"


def resize(page: Page, width: int, height: int) -> None:
    """Set the window size and wait until the page has laid itself out at it (charts too)."""
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_function(f"() => window.innerWidth === {width}")
    page.wait_for_function(CHARTS_FIT)
    page.evaluate(TWO_FRAMES)


def sign_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(url)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.locator("form [type=submit]").click()
    page.wait_for_load_state()


def no_horizontal_scroll(page: Page) -> Any:
    """How far the page is wider than the window (0: nothing sticks out), measured once the
    layout has settled at the current size (see ``resize``)."""
    page.wait_for_function(CHARTS_FIT)
    page.evaluate(TWO_FRAMES)
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def box_overflow(page: Page, selector: str) -> Any:
    """How far the content of ``selector`` is wider than its box (> 0: it scrolls sideways)."""
    return page.evaluate(
        f"(() => {{ const r = document.querySelector({selector!r}); return r.scrollWidth - r.clientWidth; }})()"
    )
