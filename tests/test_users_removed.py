"""Users: what a row removed from the model does in Iterable (on_removed)."""

from __future__ import annotations

import httpx

from smartingest import service
from tests.conftest import API_KEY, create_customers


def _sql(pg) -> str:
    return f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"


def test_on_removed_clear_sends_null_for_every_mapped_field(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 5)
    pg.execute("UPDATE customers SET email = 'User2@Example.com' WHERE id = 2")
    ws = workspace_factory(sandbox.url, sql=_sql(pg), sync={"on_removed": "clear"})
    assert service.run(ws, "customers_to_users").counts["synced"] == 5
    pg.execute("DELETE FROM customers WHERE id IN (2, 3)")
    result = service.run(ws, "customers_to_users")
    assert (result.counts["removed"], result.counts["synced"], result.delivery["rows_sent"]) == (2, 2, 2)
    users = admin.users()
    for email in ("user2@example.com", "user3@example.com"):
        assert users[email]["dataFields"] == {
            "firstName": None,
            "plan": None,
            "lifetimeValue": None,
            "address": {"city": None},
            "signedUpAt": None,
            "tier": None,
        }
    assert users["user4@example.com"]["dataFields"]["plan"] is not None
    assert service.plan(ws, "customers_to_users").counts.removed == 0  # the cleared rows left the snapshot


def test_on_removed_nothing_leaves_the_user(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 3)
    ws = workspace_factory(sandbox.url, sql=_sql(pg))
    service.run(ws, "customers_to_users")
    pg.execute("DELETE FROM customers WHERE id = 1")
    result = service.run(ws, "customers_to_users")
    assert (result.counts["removed"], result.counts["synced"], result.delivery.get("rows_sent", 0)) == (1, 1, 0)
    assert admin.users()["user1@example.com"]["dataFields"]["plan"] is not None


def test_on_removed_delete_deletes_the_user(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 4)
    ws = workspace_factory(sandbox.url, sql=_sql(pg), sync={"on_removed": "delete"})
    service.run(ws, "customers_to_users")
    pg.execute("DELETE FROM customers WHERE id IN (1, 2)")
    pg.execute("UPDATE customers SET plan = 'team' WHERE id = 3")
    result = service.run(ws, "customers_to_users")
    assert (result.counts["removed"], result.counts["changed"], result.counts["synced"]) == (2, 1, 3), result
    assert sorted(admin.users()) == ["user3@example.com", "user4@example.com"]
    assert admin.users()["user3@example.com"]["dataFields"]["plan"] == "team"
    assert admin.requests("DELETE /api/users/{email}") == 2
    # A user already gone from Iterable: the delete is skipped, not failed, and the row leaves the snapshot.
    httpx.delete(f"{sandbox.url}/api/users/user3@example.com", headers={"Api-Key": API_KEY}).raise_for_status()
    pg.execute("DELETE FROM customers WHERE id = 3")
    result = service.run(ws, "customers_to_users")
    assert (result.counts["removed"], result.counts["skipped"]) == (1, 1), result
    assert service.plan(ws, "customers_to_users").counts.removed == 0


def test_mode_update_skips_new_rows_whose_user_is_missing(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 4)
    httpx.post(
        f"{sandbox.url}/api/users/update",
        json={"email": "user2@example.com", "dataFields": {"plan": "old"}},
        headers={"Api-Key": API_KEY},
    ).raise_for_status()
    ws = workspace_factory(sandbox.url, sql=_sql(pg), sync={"mode": "update"})
    result = service.run(ws, "customers_to_users")
    assert (result.counts["added"], result.counts["synced"], result.counts["skipped"]) == (4, 1, 3), result
    assert sorted(admin.users()) == ["user2@example.com"]  # nobody was created
    assert admin.users()["user2@example.com"]["dataFields"]["plan"] == "team"
    skipped = service.run_rows(ws, result.run_id, status="skipped")
    assert {row.code for row in skipped} == {"no_such_user"}
    assert "mode: update" in (skipped[0].reason or "")
    # Skipped rows are committed: the next run sends nothing until they change.
    assert service.plan(ws, "customers_to_users").counts.added == 0
