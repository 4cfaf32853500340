"""The web UI used from the keyboard alone, and what it shows while the server works, in a real browser
(Debian's Chromium through Playwright) over real HTTP. Real PostgreSQL and the sandbox.

The waiting states are seen without slowing anything down: a form's submission is stopped in the page
after its handlers ran, and htmx's requests are held by Playwright's routing until the test releases
them."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Route, expect

from tests.api_support import define_sync
from tests.conftest import API_KEY, create_customers
from tests.ui_support import sign_in, tab_to


def _type(page: Page, text: str) -> None:
    page.keyboard.press("Control+A")  # replace what the field holds
    page.keyboard.type(text)


def arrow_to(page: Page, label: str, option: str) -> None:
    """Move the focused select to ``option`` with the arrow keys, one step at a time (each step is a change)."""
    options: list[str] = page.get_by_label(label).evaluate("s => [...s.options].map(o => o.value || o.text)")
    steps = options.index(option) - page.get_by_label(label).evaluate("s => s.selectedIndex")
    for _ in range(abs(steps)):
        page.keyboard.press("ArrowDown" if steps > 0 else "ArrowUp")
        page.wait_for_load_state()
    expect(page.get_by_label(label)).to_have_value(option)


def test_a_source_is_added_and_a_sync_reset_from_the_keyboard_alone(page: Page, ui_api, pg, sandbox):
    create_customers(pg, 2)
    page.goto(f"{ui_api.url}/sources")
    page.keyboard.type(ui_api.token)  # the token field has the focus when the sign-in page opens
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="No sources yet")).to_be_visible()

    tab_to(page, "Add a source")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Add a source")
    page.get_by_label("Source type").focus()
    arrow_to(page, "Source type", "sqlite")  # the form follows the type in place: the page stays, so does the focus
    expect(page.get_by_label("Path (required)", exact=True)).to_be_visible()
    expect(page.get_by_label("Source type")).to_be_focused()
    arrow_to(page, "Source type", "postgres")
    expect(page.get_by_label("Host", exact=True)).to_be_visible()
    for label, value in (("Name", "warehouse"), ("Host", "127.0.0.1"), ("Port", "5432"), ("Database", "test")):
        tab_to(page, label)
        _type(page, value)
    tab_to(page, "User")
    _type(page, "postgres")
    tab_to(page, "Test connection")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("The connection works")
    tab_to(page, "Save")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Saved")
    expect(page.get_by_role("row", name=re.compile("warehouse"))).to_contain_text("postgres")

    define_sync(ui_api, f"select * from {pg.schema}.customers", sandbox.url, API_KEY)
    page.goto(f"{ui_api.url}/syncs/people")
    tab_to(page, "Reset CDC")  # a costly action asks first, and the question opens from the keyboard
    page.keyboard.press("Enter")
    expect(page.get_by_text("Forgets what Iterable has acknowledged")).to_be_visible()
    tab_to(page, "Reset the snapshot")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("There was no CDC snapshot to forget")


def test_a_form_that_posts_says_it_is_busy_and_cannot_be_sent_twice(page: Page, ui_api):
    sign_in(page, ui_api.url, ui_api.token, "/sources/new")
    page.get_by_label("Name (required)", exact=True).fill("warehouse")
    for label, value in (("Host", "127.0.0.1"), ("Database (required)", "test"), ("User (required)", "postgres")):
        page.get_by_label(label, exact=True).fill(value)
    # The page as it is while the server answers: the submission happens (the page's own handlers run) but
    # the browser does not leave the page, and the submissions are counted.
    page.evaluate(
        """() => { window.submitted = 0;
            window.addEventListener('submit', e => { window.submitted += 1; e.preventDefault(); }); }"""
    )

    page.get_by_role("button", name="Test connection").click()
    busy = page.get_by_role("button", name="Testing…")
    expect(busy).to_be_disabled()
    expect(page.get_by_role("button", name="Save")).to_be_disabled()
    expect(page.locator("form#definition-form")).to_have_attribute("aria-busy", "true")
    busy.dispatch_event("click")  # pressed again while it waits: nothing more is sent
    page.get_by_role("button", name="Save").dispatch_event("click")
    assert page.evaluate("window.submitted") == 1


def test_the_sync_editor_preview_says_it_is_updating(page: Page, ui_api, pg, sandbox):
    create_customers(pg, 2)
    define_sync(ui_api, f"select * from {pg.schema}.customers", sandbox.url, API_KEY)
    sign_in(page, ui_api.url, ui_api.token, "/syncs/people/edit")
    preview = page.locator("#sync-preview")
    expect(preview).to_contain_text("users/bulkUpdate")
    updating = page.get_by_text("Updating the preview…")
    expect(updating).to_be_hidden()
    held: list[Route] = []  # the browser's preview requests, held until released
    page.route(f"{ui_api.url}/sync-preview", lambda route: held.append(route))

    page.get_by_label("Preview the row with primary key").fill("2")
    page.get_by_label("Preview the row with primary key").press("Tab")  # htmx redraws the preview on change
    expect(updating).to_be_visible()
    for route in held:
        route.continue_()
    page.unroute(f"{ui_api.url}/sync-preview")
    expect(updating).to_be_hidden()
    expect(preview).to_contain_text("user2@example.com")
