"""The sync editor in a real browser (Debian's Chromium through Playwright) over real HTTP, from an
empty install to a finished run: a source, a model and a destination added through their pages, a sync
created with its suggested mappings and a template (the live preview renders it against the model's
first row), saved, run, and its rejected row visible. Then the quota reached: the editor says so before
saving, and saving is refused with the reason. Real PostgreSQL and the sandbox."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from smartingest import service
from tests.api_support import SOURCE
from tests.conftest import API_KEY, create_customers
from tests.ui_support import check_page, screenshot, sign_in


def test_from_an_empty_install_to_a_run_whose_row_errors_show(page: Page, ui_api, pg, sandbox, tmp_path):
    create_customers(pg, 5)
    pg.execute("UPDATE customers SET email = 'broken' WHERE id = 5")
    sign_in(page, ui_api.url, ui_api.token)
    page.get_by_role("link", name="Create a sync").first.click()
    expect(page.get_by_text("add a model")).to_be_visible()  # nothing to sync yet: it says what comes first

    page.goto(f"{ui_api.url}/sources/new")
    page.get_by_label("Name (required)", exact=True).fill("warehouse")
    for label, value in (("Host", "127.0.0.1"), ("Port", "5432"), ("Database", "test"), ("User", "postgres")):
        page.get_by_label(label).first.fill(value)
    page.get_by_role("button", name="Save").click()
    page.goto(f"{ui_api.url}/models/new")
    page.get_by_label("Name (required)", exact=True).fill("customers")
    page.get_by_label("Table or view", exact=True).select_option(f"{pg.schema}.customers")
    page.get_by_label("Primary key").fill("id")
    page.get_by_role("button", name="Save").click()
    page.goto(f"{ui_api.url}/destinations/new")
    page.get_by_label("Name (required)", exact=True).fill("iterable")
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_text("More settings").click()
    page.get_by_label("Base URL").fill(sandbox.url)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row", name=re.compile("iterable"))).to_contain_text("production")

    page.goto(f"{ui_api.url}/syncs/new")
    expect(page.get_by_role("status")).to_contain_text("counts towards the quota, 0 of 5 used")
    page.get_by_label("Name (required)", exact=True).fill("people")
    expect(page.get_by_label("Mapping 1 source")).to_have_value("id")  # suggested for every column
    expect(page.get_by_text(re.compile("email → email"))).to_be_visible()
    rows = int(page.locator("input[name=m_rows]").get_attribute("value") or 0)
    blank = next(i for i in range(1, rows + 1) if page.get_by_label(f"Mapping {i} source").input_value() == "")
    page.get_by_label(f"Mapping {blank} kind").select_option("template")
    page.get_by_label(f"Mapping {blank} source").fill("Hello {{ first_name | upcase }}")
    page.get_by_label(f"Mapping {blank} field").fill("greeting")
    page.get_by_label("Every", exact=True).check()
    page.get_by_label("Interval").fill("1h")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#sync-preview")
    expect(preview).to_contain_text('"greeting": "Hello FIRST1"')
    expect(preview).to_contain_text("users/bulkUpdate")
    page.get_by_label("Preview the row with primary key").fill("3")
    page.get_by_label("Preview the row with primary key").press("Tab")  # htmx redraws the preview on change
    expect(preview).to_contain_text('"greeting": "Hello FIRST3"')
    check_page(page, (API_KEY,))
    screenshot(page, "sync-editor", tmp_path)
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("people")
    expect(page.get_by_text("every 1h")).to_be_visible()
    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("row", name=re.compile(r"#1"))).to_contain_text("Warning", timeout=60_000)
    page.get_by_role("link", name="#1", exact=True).click()
    page.get_by_label("Status").select_option("rejected")
    page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row", name=re.compile("5"))
    row.get_by_text("View error").click()
    expect(row.locator("pre.reason")).to_contain_text("broken")

    page.goto(f"{ui_api.url}/syncs/people/edit")  # editing keeps what was saved
    expect(page.get_by_label("Interval")).to_have_value("1h")
    expect(page.locator("#sync-preview")).to_contain_text("Hello FIRST1")


def test_the_quota_shows_before_it_blocks_and_then_blocks(page: Page, ui_api, pg, sandbox):
    create_customers(pg, 2)
    ui_api.ok("PUT", "/api/v1/sources/warehouse", json=SOURCE)
    sql = f"select id, email from {pg.schema}.customers"
    ui_api.ok("PUT", "/api/v1/models/customers", json={"source": "warehouse", "sql": sql, "primary_key": "id"})
    ui_api.ok("PUT", "/api/v1/destinations/live", json={"api_key": API_KEY, "base_url": sandbox.url})
    sync = {
        "type": "users",
        "model": "customers",
        "destination": "live",
        "mappings": [{"from": "email", "to": "email"}],
    }
    for i in range(5):
        ui_api.ok("PUT", f"/api/v1/syncs/p{i}", json=sync)
    sign_in(page, ui_api.url, ui_api.token)
    expect(page.get_by_text("Production syncs: 5 of 5")).to_be_visible()
    page.get_by_role("link", name="Create a sync").click()
    expect(page.get_by_role("status")).to_contain_text("The quota is reached")
    page.get_by_label("Name (required)", exact=True).fill("sixth")
    page.get_by_role("button", name="Save").click()
    refused = page.get_by_role("alert").filter(has_text="Error")
    expect(refused).to_contain_text("may hold 5 syncs (sync_quota), and this would make 6")
    page.goto(f"{ui_api.url}/syncs/p0")
    page.get_by_text("Delete…").click()
    expect(page.get_by_text("It never ran, so it stops counting towards the sync quota at once")).to_be_visible()


def test_a_catalog_syncs_field_types_and_a_list_by_id_are_edited_and_kept(page: Page, ui_api, pg, sandbox):
    create_customers(pg, 2)
    ui_api.ok("PUT", "/api/v1/sources/warehouse", json=SOURCE)
    for model, sql, key in (("customers", "select *", "id"), ("members", "select email", "email")):
        definition = {"source": "warehouse", "sql": f"{sql} from {pg.schema}.customers", "primary_key": key}
        ui_api.ok("PUT", f"/api/v1/models/{model}", json=definition)
    destination = {"api_key": API_KEY, "base_url": sandbox.url, "environment": "test"}
    ui_api.ok("PUT", "/api/v1/destinations/iterable", json=destination)
    catalog = {"type": "catalog", "catalog": "products", "field_types": {"price": "double"}}
    mappings = [{"from": "first_name", "to": "name"}]
    ui_api.ok(
        "PUT",
        "/api/v1/syncs/products",
        json={**catalog, "model": "customers", "destination": "iterable", "mappings": mappings},
    )
    members = {"type": "static_list", "list": {"id": 7}, "model": "members", "destination": "iterable"}
    ui_api.ok("PUT", "/api/v1/syncs/vips", json={**members, "mappings": [{"from": "email", "to": "email"}]})

    sign_in(page, ui_api.url, ui_api.token, "/syncs/products/edit")
    expect(page.get_by_label("Field type 1 field")).to_have_value("price")
    expect(page.get_by_label("Field type 1 type")).to_have_value("double")
    page.get_by_label("Field type 2 field").fill("store")
    page.get_by_label("Field type 2 type").select_option("geo_location")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")

    page.goto(f"{ui_api.url}/syncs/vips/edit")
    expect(page.get_by_label("By id")).to_be_checked()
    expect(page.get_by_label("List id")).to_have_value("7")
    page.get_by_role("button", name="Save").click()  # saved as it was: the list stays the one by id
    expect(page.get_by_role("status")).to_contain_text("Saved")
    syncs = service.open_workspace(home=ui_api.home).config.syncs
    assert syncs["products"].field_types == {"price": "double", "store": "geo_location"}
    assert syncs["vips"].list.id == 7

    page.goto(f"{ui_api.url}/syncs/vips/edit")
    page.get_by_label("By name").check()
    page.get_by_role("button", name="Save").click()  # by name, and no name given: the check says what is missing
    expect(page.get_by_role("alert").first).to_contain_text("syncs.vips.list")
    page.get_by_label("By name").check()
    page.get_by_label("List name").fill("VIPs")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    assert service.open_workspace(home=ui_api.home).config.syncs["vips"].list.name == "VIPs"
