"""Browser tests of the web UI: Debian's Chromium driven by Playwright (never a downloaded browser; the
``browser`` and ``page`` fixtures are in conftest.py), and checks every page must pass (labelled fields,
no secret in the page)."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page

SCREENSHOTS_ENV = "SMARTINGEST_SCREENSHOTS"  # a directory: the tests' screenshots are kept there (docs/)


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


def tab_to(page: Page, name: str, limit: int = 100) -> None:
    """Press Tab until the focused element is the one whose label, text or aria-label starts with
    ``name``; fails when Tab never gets there (the element cannot be used from the keyboard)."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const e = document.activeElement;
                const label = e.labels && e.labels.length ? e.labels[0].innerText : null;
                return (label || e.getAttribute('aria-label') || e.innerText || '').trim(); }"""
        )
        if focused.startswith(name):
            return
        seen.append(focused)
    raise AssertionError(f"Tab never reached {name!r}; it went through {seen}")
