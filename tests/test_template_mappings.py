"""Template mappings end to end: rendered per row into Iterable, resent when a column they read changes,
a failing row rejected with Liquid's message, a typo stopping the run before any row. Users and events,
real PostgreSQL, the sandbox over real HTTP."""

from __future__ import annotations

from smartingest import service
from tests.conftest import SandboxAdmin, create_customers
from tests.events_support import create_purchases, derived_id, events_by_id, purchases_sql

SYNC = "customers_to_users"


def test_a_users_sync_renders_templates_and_resends_rows_whose_template_columns_changed(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    create_customers(pg, 4)
    sql = f"select id, email, first_name, plan, ltv, city from {pg.schema}.customers"
    mappings = [
        {"from": "email", "to": "email"},
        {"template": "{{ first_name }} from {{ city }}", "to": "greeting"},
        {"template": "{{ plan | upcase }}{% if ltv > 20 %}+{% endif %} ({{ sync_name }})", "to": "label"},
    ]
    ws = workspace_factory(sandbox.url, sql=sql, mappings=mappings)
    first = service.run(ws, SYNC)
    assert first.status == "succeeded", first.error
    fields = admin.users()["user3@example.com"]["dataFields"]
    assert fields == {"greeting": "First3 from Paris", "label": f"FREE+ ({SYNC})"}
    assert admin.get_fields()["label"] == "string"

    # city is read by a template only: changing it changes the row.
    pg.execute("UPDATE customers SET city = 'Nice' WHERE id = 3")
    second = service.run(ws, SYNC)
    assert (second.counts["changed"], second.counts["synced"]) == (1, 1)
    assert admin.users()["user3@example.com"]["dataFields"]["greeting"] == "First3 from Nice"


def test_a_row_whose_template_fails_is_rejected_and_the_others_sent(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    create_customers(pg, 3)
    sql = f"select id, email, (id - 2) as d from {pg.schema}.customers"
    ratio = "{{ 10 | divided_by: d }}"
    mappings = [
        {"from": "email", "to": "email"},
        {"template": ratio, "to": "ratio"},
        # Inside an object or an array, the reason names the field by its whole path.
        {"object": [{"template": ratio, "to": "ratio"}], "to": "stats"},
        {"array": [{"from": "d"}, {"template": ratio}], "to": "pair"},
    ]
    ws = workspace_factory(sandbox.url, sql=sql, mappings=mappings)
    run = service.run(ws, SYNC)
    assert (run.status, run.counts["synced"], run.counts["rejected"]) == ("warning", 2, 1)
    [row] = service.run_rows(ws, run.run_id, status="rejected")
    assert (row.pk, row.code) == ("2", "template_failed")
    failed = "the template failed: divided_by: can't divide by 0"
    assert row.reason == f"ratio: {failed}; stats.ratio: {failed}; pair[1]: {failed}"
    assert sorted(admin.users()) == ["user1@example.com", "user3@example.com"]


def test_a_template_reading_an_unknown_name_fails_the_run_before_sending(
    pg, sandbox, admin: SandboxAdmin, workspace_factory
):
    create_customers(pg, 2)
    mappings = [{"from": "email", "to": "email"}, {"template": "Hi {{ frist_name }}", "to": "greeting"}]
    ws = workspace_factory(
        sandbox.url, sql=f"select id, email, first_name from {pg.schema}.customers", mappings=mappings
    )
    run = service.run(ws, SYNC)
    assert run.status == "failed"
    assert (
        run.error is not None and "syncs.customers_to_users.mappings[1]: the template reads 'frist_name'" in run.error
    )
    assert admin.users() == {}


def test_an_events_sync_renders_templates_in_its_events(pg, sandbox, workspace_factory):
    create_purchases(pg, 2)
    mappings = [{"from": "email", "to": "email"}, {"template": "{{ sku }}/{{ amount }}", "to": "ref"}]
    sync = {"type": "events", "event_name": "purchase", "created_at": "bought_at", "match_on": None}
    ws = workspace_factory(sandbox.url, sql=purchases_sql(pg), mappings=mappings, sync=sync)
    assert service.run(ws, SYNC).status == "succeeded"
    events = events_by_id(sandbox.url, {"buyer1@example.com", "buyer2@example.com"})
    assert events[derived_id(1)]["dataFields"] == {"ref": "sku-1/3.50"}
