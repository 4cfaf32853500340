"""The web UI's definition pages in a real browser (Debian's Chromium through Playwright) over real HTTP:
a source added through its type's form, its connection tested before saving (a wrong port and a role that
does not exist show the driver's error), a stored password kept and never sent back to the page. Real
PostgreSQL."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from smartingest import service
from tests.api_support import SOURCE
from tests.conftest import API_KEY, create_customers
from tests.ui_support import check_page, screenshot, sign_in

PASSWORD = "ui-source-password-9"


def test_a_source_is_added_tested_and_edited_without_its_password_reaching_the_page(page: Page, ui_api, tmp_path):
    sign_in(page, ui_api.url, ui_api.token, "/sources")
    expect(page.get_by_role("heading", name="No sources yet")).to_be_visible()
    page.get_by_role("link", name="Add a source").first.click()
    expect(page.get_by_label("Source type")).to_have_value("postgres")
    page.get_by_label("Name (required)", exact=True).fill("warehouse")
    page.get_by_label("Host", exact=True).fill("127.0.0.1")
    page.get_by_label("Port", exact=True).fill("9")
    page.get_by_label("Database").fill("test")
    page.get_by_label("User (required)").fill("postgres")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_role("alert")).to_contain_text("The test failed")
    expect(page.get_by_role("alert")).to_contain_text("127.0.0.1:9")
    check_page(page, (PASSWORD,))  # the typed password is not sent back either

    page.get_by_label("Port", exact=True).fill("5432")
    page.get_by_label("User (required)").fill("no_such_role")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_role("alert")).to_contain_text("no_such_role")
    page.get_by_label("User (required)").fill("postgres")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_role("status")).to_contain_text("The connection works")
    expect(page.get_by_role("heading", level=1)).to_have_text("Add a source")  # still a new one
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    screenshot(page, "source-form", tmp_path)
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_contain_text("Saved")
    row = page.get_by_role("row", name=re.compile("warehouse"))
    expect(row).to_contain_text("postgres")
    row.get_by_role("button", name="Test connection").click()
    expect(row).to_contain_text("The connection works")

    row.get_by_role("link", name="warehouse").click()
    expect(page.get_by_label("Password", exact=True)).to_have_attribute(
        "placeholder", re.compile("leave empty to keep it")
    )
    check_page(page, (PASSWORD,))
    page.get_by_text("More settings").click()
    page.get_by_label("Application name").fill("smartingest-ui")
    expect(page.get_by_label("Planner schema")).to_have_value("smartingest_planner")
    page.get_by_label(re.compile("Lightning: keeps")).check()
    page.get_by_label("Planner schema").fill("marketing_planner")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    stored = service.open_workspace(home=ui_api.home).config.sources["warehouse"]
    assert stored.connector_settings()["password"] == PASSWORD  # kept, though not typed again
    assert stored.connector_settings()["application_name"] == "smartingest-ui"
    assert (stored.engine, stored.planner_schema) == ("lightning", "marketing_planner")
    expect(page.get_by_role("row", name=re.compile("warehouse"))).to_contain_text("lightning")


def test_a_source_in_use_is_not_deleted_and_says_why(page: Page, ui_api, pg):
    ui_api.ok("PUT", "/api/v1/sources/warehouse", json={"type": "sqlite", "path": "x.db"})
    ui_api.ok("PUT", "/api/v1/models/people", json={"source": "warehouse", "table": "people", "primary_key": "id"})
    sign_in(page, ui_api.url, ui_api.token, "/sources/warehouse")
    page.get_by_text("Delete this source").click()
    page.get_by_role("button", name="Delete warehouse").click()
    expect(page.get_by_role("alert")).to_contain_text("people")


def test_a_destination_key_is_checked_before_saving_and_kept_masked(page: Page, ui_api, sandbox, tmp_path):
    sign_in(page, ui_api.url, ui_api.token, "/destinations")
    expect(page.get_by_role("heading", name="No destinations yet")).to_be_visible()
    page.get_by_role("link", name="Add a destination").first.click()
    page.get_by_label("Name (required)", exact=True).fill("iterable")
    page.get_by_label("API key").fill("not-the-key")
    page.get_by_label("Environment").select_option("test")
    page.get_by_text("More settings").click()
    page.get_by_label("Base URL").fill(sandbox.url)
    page.get_by_role("button", name="Check the API key").click()
    expect(page.get_by_role("alert")).to_contain_text("API key")
    check_page(page, ("not-the-key",))
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Check the API key").click()
    expect(page.get_by_role("status")).to_contain_text("answered")
    page.get_by_label("API key").fill(API_KEY)
    screenshot(page, "destination-form", tmp_path)
    page.get_by_role("button", name="Save").click()
    row = page.get_by_role("row", name=re.compile("iterable"))
    expect(row).to_contain_text("test")
    row.get_by_role("button", name="Check the API key").click()
    expect(row).to_contain_text("answered")
    check_page(page, (API_KEY,))
    row.get_by_role("link", name="iterable").click()
    page.get_by_label("Organization").fill("acme")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row", name=re.compile("iterable"))).to_contain_text("acme")
    stored = service.open_workspace(home=ui_api.home).config.destinations["iterable"]
    assert stored.api_key.get_secret_value() == API_KEY and stored.organization == "acme"


def test_a_model_is_picked_from_the_tables_previewed_and_its_key_chosen(page: Page, ui_api, pg, tmp_path):
    create_customers(pg, 3)
    rows = "SELECT 1 AS id, 'a' AS kind UNION ALL SELECT 1, 'b' UNION ALL SELECT NULL, 'c'"
    pg.execute(f"CREATE TABLE events_dup AS {rows}")
    ui_api.ok("PUT", "/api/v1/sources/warehouse", json=SOURCE)
    sign_in(page, ui_api.url, ui_api.token, "/models")
    expect(page.get_by_role("heading", name="No models yet")).to_be_visible()
    page.get_by_role("link", name="Add a model").first.click()
    page.get_by_label("Name (required)", exact=True).fill("customers")
    page.get_by_label("Table or view", exact=True).select_option(f"{pg.schema}.customers")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("The first 3 rows.")).to_be_visible()
    expect(page.locator("table.preview")).to_contain_text("user2@example.com")
    page.get_by_role("checkbox", name="id").check()
    check_page(page)
    screenshot(page, "model-form", tmp_path)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row", name=re.compile("customers"))).to_contain_text("warehouse")
    model = service.open_workspace(home=ui_api.home).config.models["customers"]
    assert (model.table, model.primary_key) == (f"{pg.schema}.customers", "id")

    page.get_by_role("link", name="Add a model").first.click()
    page.get_by_label("Name (required)", exact=True).fill("dup")
    page.get_by_label("a SQL query").check()
    page.get_by_label("SQL query", exact=True).fill(f"select id, kind from {pg.schema}.events_dup")
    page.get_by_label("Primary key").fill("id")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("null in the primary key")).to_be_visible()
    expect(page.get_by_text("held by several of the rows shown (for example 1)")).to_be_visible()
    page.get_by_label("SQL query", exact=True).fill(f"select id from {pg.schema}.no_such_table")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("alert")).to_contain_text("no_such_table")


def test_definitions_in_a_project_file_say_so_before_anything_is_typed(page: Page, tmp_path, monkeypatch):
    from tests.api_support import Api

    monkeypatch.delenv("SMARTINGEST_DATABASE_URL", raising=False)
    project = tmp_path / "smartingest.yaml"
    project.write_text(
        """
sources: {files: {type: sqlite, path: people.db}}
models: {people: {source: files, table: people, primary_key: id}}
destinations: {iterable: {api_key: k, environment: test}}
syncs: {people: {model: people, destination: iterable, type: users, mappings: [{from: email, to: email}]}}
"""
    )
    served = Api(tmp_path / "home", project)
    try:
        sign_in(page, served.url, served.token, "/sources/files")
        note = page.get_by_role("note")
        expect(note).to_contain_text(f"definitions live in the project file {project}")
        expect(note).to_contain_text("smartingest apply")
        expect(page.get_by_role("button", name="Save")).to_be_disabled()
        expect(page.get_by_role("button", name="Test connection")).to_be_enabled()  # testing writes nothing
        page.goto(f"{served.url}/syncs/people")
        expect(page.get_by_role("note")).to_be_visible()
        expect(page.get_by_role("button", name="Disable schedule")).to_be_disabled()
        expect(page.get_by_role("button", name="Run now")).to_be_enabled()  # runs are not definitions
        page.goto(f"{served.url}/syncs/people/edit")
        expect(page.get_by_role("button", name="Save")).to_be_disabled()
        expect(page.get_by_role("button", name="Preview")).to_be_enabled()
    finally:
        served.stop()
