"""Browser tests of the web UI: Debian's Chromium driven by Playwright (never a downloaded browser), and
checks every page must pass (labelled fields, no secret in the page)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

# Chromium's own background connections are refused on a closed network: switched off.
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
SCREENSHOTS_ENV = "SMARTINGEST_SCREENSHOTS"  # a directory: the tests' screenshots are kept there (docs/)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20_000)
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """Keep a screenshot of the whole page: in SMARTINGEST_SCREENSHOTS when set (make screenshots), else
    beside the test."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, base_url: str, token: str, path: str = "/syncs") -> None:
    page.goto(f"{base_url}{path}")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def check_page(page: Page, secrets: tuple[str, ...] = ()) -> None:
    """What every page must hold to: each form field has a label a screen reader reads, and no secret is
    anywhere in its HTML."""
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map(e => e.outerHTML)"""
    )
    assert unlabelled == [], unlabelled
    html = page.content()
    for secret in secrets:
        assert secret not in html, secret
