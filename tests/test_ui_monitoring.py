"""The web UI's monitoring, in a real browser (Debian's Chromium through Playwright) against `serve`'s
app over real HTTP: signing in, the sync list with its statuses and the quota, running a sync from its
page, a run's row errors filtered and read ("View error"), a failed run's error. Real PostgreSQL and the
sandbox."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from smartingest import service
from tests.api_support import define_sync
from tests.conftest import API_KEY, create_customers
from tests.ui_support import check_page, screenshot, sign_in

PASSWORD = "ui-planted-password"


def test_signing_in_with_a_token_and_the_empty_sync_list(page: Page, ui_api, tmp_path):
    page.goto(f"{ui_api.url}/syncs")
    expect(page).to_have_url(re.compile(r"/login\?next=/syncs$"))
    page.get_by_label("API token").fill("si_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That token is not valid")
    check_page(page)
    page.get_by_label("API token").fill(ui_api.token)
    page.keyboard.press("Enter")  # the form works from the keyboard
    expect(page.get_by_role("heading", name="No syncs yet")).to_be_visible()
    expect(page.get_by_text("Production syncs: 0 of 5")).to_be_visible()
    screenshot(page, "empty-install", tmp_path)
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{ui_api.url}/syncs")
    expect(page).to_have_url(re.compile(r"/login"))


def test_a_run_started_from_the_ui_shows_its_rejected_rows(page: Page, ui_api, pg, sandbox, tmp_path):
    create_customers(pg, 6)
    pg.execute("UPDATE customers SET email = 'not-an-email' WHERE id = 4")
    define_sync(ui_api, f"select id, email, plan from {pg.schema}.customers", sandbox.url, API_KEY, PASSWORD)
    sign_in(page, ui_api.url, ui_api.token)
    row = page.get_by_role("row", name=re.compile("people"))
    expect(row).to_contain_text("Pending")
    check_page(page, (PASSWORD, API_KEY))

    page.get_by_role("link", name="people").click()
    expect(page.get_by_role("heading", name="No runs yet")).to_be_visible()
    page.get_by_role("button", name="Plan (dry run)").click()
    expect(page.get_by_text("6 rows queried: 6 added")).to_be_visible()
    expect(page.get_by_text("Nothing was sent")).to_be_visible()
    page.get_by_text("Test one row…").click()
    page.get_by_label("Primary key").fill("2")
    page.get_by_label("Send it to Iterable").check()
    page.get_by_role("button", name="Test the row").click()
    expect(page.locator("section.result")).to_contain_text("user2@example.com")
    expect(page.locator("section.result")).to_contain_text("Sent: synced")
    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("status")).to_contain_text("queued")
    expect(page.get_by_role("row", name=re.compile(r"#1"))).to_contain_text("Warning", timeout=60_000)
    page.reload()
    expect(page.get_by_role("img", name="Rows per run")).to_be_visible()
    expect(page.locator("h1")).to_contain_text("Warning")
    screenshot(page, "sync", tmp_path)

    page.get_by_role("link", name="#1", exact=True).click()
    expect(page.locator("table.counts")).to_contain_text("5")
    page.get_by_label("Status").select_option("rejected")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("1 of 6 row operations match")).to_be_visible()
    rejected = page.get_by_role("row", name=re.compile("4"))
    expect(rejected).to_contain_text("rejected")
    rejected.get_by_text("View error").click()
    expect(rejected.locator("pre.reason")).to_contain_text("not-an-email")
    check_page(page, (PASSWORD, API_KEY))
    screenshot(page, "run-row-errors", tmp_path)

    page.get_by_label("Primary key").fill("2")
    page.get_by_label("Status").select_option("")
    page.get_by_label("Primary key").press("Enter")
    expect(page.get_by_text("1 of 6 row operations match")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("2"))).to_contain_text("synced")

    page.goto(f"{ui_api.url}/syncs")
    expect(page.get_by_role("row", name=re.compile("people"))).to_contain_text("Warning")
    screenshot(page, "syncs", tmp_path)

    ws = service.open_workspace(home=ui_api.home)  # its row operations damaged on disk: the page says so
    for part in ws.ledger.outcomes.parts(ws.config.sync_id("people"), 1):
        part.write_bytes(b"damaged")
    page.goto(f"{ui_api.url}/runs/1")
    expect(page.get_by_role("alert")).to_contain_text("the row outcomes of run 1")
    expect(page.locator("table.counts")).to_contain_text("5")  # its counts are in the ledger


def test_a_failed_run_shows_its_error(page: Page, ui_api, pg, sandbox):
    define_sync(ui_api, f"select id, email, plan from {pg.schema}.no_such_table", sandbox.url, API_KEY)
    sign_in(page, ui_api.url, ui_api.token, "/syncs/people")
    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("row", name=re.compile(r"#1"))).to_contain_text("Failed", timeout=60_000)
    page.goto(f"{ui_api.url}/syncs")
    expect(page.get_by_role("row", name=re.compile("people"))).to_contain_text("Error")
    page.goto(f"{ui_api.url}/runs/1")
    expect(page.get_by_role("alert")).to_contain_text("no_such_table")
    page.goto(f"{ui_api.url}/runs/999")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
