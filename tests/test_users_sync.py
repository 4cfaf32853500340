"""A Users sync end to end: real PostgreSQL, the sandbox over real HTTP, CDC across runs."""

from __future__ import annotations

import httpx

from smartingest import service
from tests.conftest import SandboxAdmin, create_customers


def _sql(pg) -> str:
    return f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"


def _assert_accounted(counts: dict[str, int]) -> None:
    assert counts["queried"] == counts["invalid"] + counts["unchanged"] + counts["added"] + counts["changed"]
    sent = counts["added"] + counts["changed"] + counts["removed"]
    assert (
        sent
        == counts["synced"] + counts["rejected"] + counts["retried_next_run"] + counts["deferred"] + counts["skipped"]
    )


def test_first_run_sends_every_row_then_nothing_then_only_changes(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    create_customers(pg, 250)
    ws = workspace_factory(sandbox.url, sql=_sql(pg))

    first = service.run(ws, "customers_to_users")
    assert first.status == "succeeded", first.error
    assert first.counts["queried"] == 250
    assert first.counts["added"] == 250
    assert first.counts["synced"] == 250
    _assert_accounted(first.counts)
    users = admin.users()
    assert len(users) == 250
    user = users["user7@example.com"]["dataFields"]
    assert user["firstName"] == "First7"
    assert user["lifetimeValue"] == 49.25
    assert user["address"] == {"city": "Austin"}
    assert user["tier"] == "gold"
    assert user["signedUpAt"] == "2024-01-01 07:00:00 +00:00"
    assert admin.get_fields()["signedUpAt"] == "date"

    second = service.run(ws, "customers_to_users")
    assert second.status == "succeeded"
    assert (second.counts["added"], second.counts["changed"], second.counts["removed"]) == (0, 0, 0)
    assert second.counts["unchanged"] == 250
    assert second.counts["synced"] == 0

    pg.execute("UPDATE customers SET plan = 'enterprise' WHERE id IN (1, 2, 3)")
    pg.execute("DELETE FROM customers WHERE id IN (10, 11)")
    create_customers(pg, 4, start=1001)

    third = service.run(ws, "customers_to_users")
    assert third.status == "succeeded", third.error
    assert (third.counts["added"], third.counts["changed"], third.counts["removed"]) == (4, 3, 2)
    assert third.counts["unchanged"] == 250 - 3 - 2
    assert third.counts["synced"] == 9
    _assert_accounted(third.counts)
    users = admin.users()
    assert users["user1@example.com"]["dataFields"]["plan"] == "enterprise"
    assert "user1004@example.com" in users
    # on_removed: nothing leaves removed customers in Iterable.
    assert "user10@example.com" in users

    runs = service.list_runs(ws, "customers_to_users")
    assert [r.status for r in runs] == ["succeeded"] * 3
    rows = service.run_rows(ws, third.run_id, limit=100)
    assert sorted((r.operation, r.pk) for r in rows if r.operation == "removed") == [
        ("removed", "10"),
        ("removed", "11"),
    ]


def test_full_resync_sends_every_row_and_reset_forgets_snapshot(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 40)
    ws = workspace_factory(sandbox.url, sql=_sql(pg))
    assert service.run(ws, "customers_to_users").counts["added"] == 40

    resync = service.run(ws, "customers_to_users", full_resync=True)
    assert resync.counts["added"] + resync.counts["changed"] == 40
    assert resync.counts["synced"] == 40

    assert service.reset(ws, "customers_to_users") is True
    after_reset = service.plan(ws, "customers_to_users")
    assert after_reset.counts.added == 40
    assert after_reset.sample_requests[0]["users"][0]["email"].endswith("@example.com")


def test_plan_sends_nothing_and_shows_sample_requests(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 30)
    ws = workspace_factory(sandbox.url, sql=_sql(pg))
    result = service.plan(ws, "customers_to_users", samples=2)
    assert result.counts.added == 30
    users = result.sample_requests[0]["users"]
    assert len(users) == 2
    assert set(users[0]) == {"email", "dataFields"}
    assert admin.users() == {}


def test_rejected_rows_are_reported_and_only_they_are_resent(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 60)
    pg.execute("UPDATE customers SET email = 'not-an-email-' || id WHERE id IN (5, 6)")
    ws = workspace_factory(sandbox.url, sql=_sql(pg))
    first = service.run(ws, "customers_to_users")
    assert first.status == "warning"
    assert first.counts["rejected"] == 2
    assert first.counts["synced"] == 58
    rejected = service.run_rows(ws, first.run_id, status="rejected")
    assert sorted(r.pk for r in rejected) == ["5", "6"]
    assert all("InvalidEmailAddressError" in (r.reason or "") for r in rejected)
    assert "'not-an-email-5'" in next(r.reason for r in rejected if r.pk == "5")

    second = service.run(ws, "customers_to_users")
    # The failed rows keep their old (absent) state: they are sent again, and only they are.
    assert second.counts["added"] == 2
    assert second.counts["unchanged"] == 58
    assert second.counts["rejected"] == 2

    pg.execute("UPDATE customers SET email = 'fixed' || id || '@example.com' WHERE id IN (5, 6)")
    third = service.run(ws, "customers_to_users")
    assert third.status == "succeeded"
    assert third.counts["synced"] == 2
    assert "fixed5@example.com" in admin.users()


def test_type_conflict_is_isolated_to_its_rows(pg, sandbox, admin, workspace_factory):
    pg.execute("CREATE TABLE customers (id int PRIMARY KEY, email text)")
    pg.execute("INSERT INTO customers SELECT i, 'u' || i || '@example.com' FROM generate_series(1, 50) i")
    ws = workspace_factory(
        sandbox.url,
        # JSON values carry no column type the run could check in advance: Iterable's refusal finds them.
        sql=f"select id, email, case when id in (13, 29) then to_jsonb('seven'::text) else null end as bad, "
        f"case when id not in (13, 29) then 7 else null end as good from {pg.schema}.customers",
        mappings=[{"from": "email", "to": "email"}, {"from": "good", "to": "score"}, {"from": "bad", "to": "score2"}],
    )
    # Fix "score2" as a number first, so rows 13 and 29 (a string) conflict with it.
    httpx.post(
        f"{sandbox.url}/api/users/update",
        json={"email": "seed@example.com", "dataFields": {"score2": 1}},
        headers={"Api-Key": "test-api-key"},
    ).raise_for_status()
    result = service.run(ws, "customers_to_users")
    assert result.counts["rejected"] == 2
    assert result.counts["synced"] == 48
    rejected = service.run_rows(ws, result.run_id, status="rejected")
    assert sorted(r.pk for r in rejected) == ["13", "29"]
    assert all("RequestFieldsTypesMismatched" in (r.reason or "") for r in rejected)
    assert result.delivery["splits"] >= 2
    assert len(admin.users()) == 49  # 48 synced + the seed user


def test_null_and_duplicate_keys_are_invalid_and_listed(pg, sandbox, admin, workspace_factory):
    create_customers(pg, 20)
    ws = workspace_factory(
        sandbox.url,
        sql=f"select case when id = 3 then null when id = 4 then 5 else id end as id, email, first_name, plan, ltv, "
        f"city, signed_up_at from {pg.schema}.customers",
    )
    result = service.run(ws, "customers_to_users")
    assert result.counts["queried"] == 20
    assert result.counts["invalid"] == 3  # the null key and both copies of id 5
    assert result.counts["added"] == 17
    assert result.status == "warning"
    invalid = service.run_rows(ws, result.run_id, status="invalid")
    reasons = sorted(r.reason or "" for r in invalid)
    assert len(invalid) == 3
    assert sum(r == "primary key id is null" for r in reasons) == 1
    assert sum("appears 2 times" in r for r in reasons) == 2
    assert sorted(r.code or "" for r in invalid) == ["duplicate_key", "duplicate_key", "null_key"]
    assert "user5@example.com" not in admin.users()
