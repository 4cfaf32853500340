"""An events sync end to end: real PostgreSQL, the sandbox over real HTTP, CDC across runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from smartingest import service
from tests.conftest import API_KEY, SandboxAdmin
from tests.events_support import (
    EVENT_MAPPINGS,
    SYNC,
    create_purchases,
    derived_id,
    events_by_id,
    expected_purchase_events,
    purchases_sql,
    stored_event_count,
)

EVENTS = {"type": "events", "event_name": "purchase", "created_at": "bought_at", "batch_size": 25}


def _assert_accounted(counts: dict[str, int]) -> None:
    assert counts["queried"] == counts["invalid"] + counts["unchanged"] + counts["added"] + counts["changed"]
    changes = counts["added"] + counts["changed"] + counts["removed"]
    verdicts = ("synced", "rejected", "retried_next_run", "deferred", "skipped")
    assert changes == sum(counts[name] for name in verdicts)


def _codes(ws: service.Workspace, run_id: int) -> dict[str, str]:
    """Each rejected row's reason code, by primary key."""
    return {r.pk: r.code or "" for r in service.run_rows(ws, run_id, status="rejected", limit=1000)}


def _reasons(ws: service.Workspace, run_id: int) -> dict[str, str]:
    return {r.pk: r.reason or "" for r in service.run_rows(ws, run_id, status="rejected", limit=1000)}


def test_first_run_tracks_every_row_then_changes_replace_and_removals_leave_events(pg, sandbox, workspace_factory):
    create_purchases(pg, 120)
    ws = workspace_factory(sandbox.url, sql=purchases_sql(pg), mappings=EVENT_MAPPINGS, sync=EVENTS)

    first = service.run(ws, SYNC)
    assert first.status == "succeeded", first.error
    assert (first.counts["added"], first.counts["synced"]) == (120, 120)
    assert first.delivery["rows_sent"] == 120
    assert first.delivery["requests"] == 5  # 25 events a request
    _assert_accounted(first.counts)
    model = expected_purchase_events(pg)
    assert events_by_id(sandbox.url, {e["email"] for e in model.values()}) == model
    assert stored_event_count(sandbox.url) == 120

    unchanged = service.run(ws, SYNC)
    assert unchanged.counts["unchanged"] == 120
    assert unchanged.delivery["requests"] == 0

    pg.execute("UPDATE purchases SET amount = 999.5 WHERE id IN (1, 2)")
    pg.execute("UPDATE purchases SET bought_at = timestamptz '2023-06-01 08:30:15.75+02' WHERE id = 3")
    pg.execute("DELETE FROM purchases WHERE id IN (10, 11)")
    create_purchases(pg, 3, start=1001)
    removed = {k: v for k, v in model.items() if k in (derived_id(10), derived_id(11))}

    third = service.run(ws, SYNC)
    assert third.status == "succeeded", third.error
    assert (third.counts["added"], third.counts["changed"], third.counts["removed"]) == (3, 3, 2)
    assert third.counts["synced"] == 8
    assert third.delivery["rows_sent"] == 6  # removed rows need no request
    _assert_accounted(third.counts)
    # Changed rows replaced their events (same ids); removed rows left theirs as they were.
    model = expected_purchase_events(pg) | removed
    assert events_by_id(sandbox.url, {e["email"] for e in model.values()}) == model
    assert model[derived_id(3)]["createdAt"] == "2023-06-01 06:30:15 +00:00"
    assert stored_event_count(sandbox.url) == 123
    rows = service.run_rows(ws, third.run_id, limit=100)
    assert sorted(r.pk for r in rows if r.operation == "removed") == ["10", "11"]


def test_full_resync_resends_with_the_same_ids_and_adds_no_event(pg, sandbox, workspace_factory):
    create_purchases(pg, 30)
    ws = workspace_factory(sandbox.url, sql=purchases_sql(pg), mappings=EVENT_MAPPINGS, sync=EVENTS)
    assert service.run(ws, SYNC).counts["synced"] == 30
    again = service.run(ws, SYNC, full_resync=True)
    assert again.counts["synced"] == 30
    assert again.delivery["rows_sent"] == 30
    assert stored_event_count(sandbox.url) == 30


def test_event_name_and_id_from_columns_and_a_time_left_out(pg, sandbox, workspace_factory):
    create_purchases(pg, 6)
    pg.execute("UPDATE purchases SET kind = 'refund' WHERE id IN (2, 4, 6)")
    pg.execute("UPDATE purchases SET bought_at = NULL WHERE id = 5")
    ws = workspace_factory(
        sandbox.url,
        sql=f"select id, email, kind, amount, sku, bought_at, 'order-' || id as order_id from {pg.schema}.purchases",
        mappings=EVENT_MAPPINGS,
        sync={**EVENTS, "event_name": None, "event_name_column": "kind", "event_id": "order_id"},
    )
    result = service.run(ws, SYNC)
    assert result.status == "succeeded", result.error
    events = events_by_id(sandbox.url, {f"buyer{i}@example.com" for i in range(1, 7)})
    assert set(events) == {f"order-{i}" for i in range(1, 7)}
    assert [events[f"order-{i}"]["eventName"] for i in range(1, 7)] == ["purchase", "refund"] * 3
    assert events["order-1"]["createdAt"] == "2024-01-01 01:00:00 +00:00"
    # No createdAt: Iterable takes the time it receives the event.
    assert events["order-5"]["createdAt"].startswith(str(dt.datetime.now(dt.UTC).year))

    pg.execute("UPDATE purchases SET kind = 'return' WHERE id = 2")
    changed = service.run(ws, SYNC)
    assert changed.counts["changed"] == 1
    assert events_by_id(sandbox.url, {"buyer2@example.com"})["order-2"]["eventName"] == "return"
    assert stored_event_count(sandbox.url) == 6


def test_rows_refused_before_sending_name_their_reason(pg, sandbox, workspace_factory):
    create_purchases(pg, 12)
    pg.execute("UPDATE purchases SET kind = NULL WHERE id = 1")
    pg.execute("UPDATE purchases SET kind = '  ' WHERE id = 2")
    pg.execute("UPDATE purchases SET email = '' WHERE id = 3")
    pg.execute("UPDATE purchases SET bought_at = timestamptz '1969-12-31 23:59:59+00' WHERE id = 4")
    pg.execute("UPDATE purchases SET bought_at = timestamptz '9999-12-31 00:00:00+00' WHERE id = 5")
    pg.execute("UPDATE purchases SET sku = NULL WHERE id = 6")
    ws = workspace_factory(
        sandbox.url,
        sql=f"select id, email, kind, amount, sku, bought_at, sku as order_id from {pg.schema}.purchases",
        mappings=EVENT_MAPPINGS,
        sync={**EVENTS, "event_name": None, "event_name_column": "kind", "event_id": "order_id"},
    )
    result = service.run(ws, SYNC)
    assert result.status == "warning"
    assert (result.counts["synced"], result.counts["rejected"]) == (6, 6)
    assert result.delivery["rows_sent"] == 6
    assert _codes(ws, result.run_id) == {
        "1": "no_event_name",
        "2": "no_event_name",
        "3": "no_identifier",
        "4": "invalid_value",
        "5": "invalid_value",
        "6": "no_event_id",
    }
    reasons = _reasons(ws, result.run_id)
    assert "eventName (column 'kind')" in reasons["1"]
    assert "before 1970-01-01" in reasons["4"]
    assert "milliseconds" in reasons["5"]
    assert "id (column 'order_id')" in reasons["6"]
    assert stored_event_count(sandbox.url) == 6

    # Fixed in the source, they are sent by the next run (they never entered the snapshot).
    pg.execute("UPDATE purchases SET kind = 'purchase' WHERE id IN (1, 2)")
    pg.execute("UPDATE purchases SET email = 'fixed@example.com' WHERE id = 3")
    pg.execute("UPDATE purchases SET bought_at = now() WHERE id IN (4, 5)")
    pg.execute("UPDATE purchases SET sku = 'sku-6' WHERE id = 6")
    fixed = service.run(ws, SYNC)
    assert fixed.status == "succeeded", fixed.error
    assert fixed.counts["added"] == 6
    assert stored_event_count(sandbox.url) == 12


def _api(sandbox) -> httpx.Client:
    return httpx.Client(base_url=sandbox.url, headers={"Api-Key": API_KEY}, timeout=30)


def test_track_bulk_partial_failures_are_read_back_to_rows(pg, sandbox, admin: SandboxAdmin, workspace_factory):
    create_purchases(pg, 20, buyers=20)
    pg.execute("UPDATE purchases SET email = 'not-an-email' WHERE id = 1")
    pg.execute("UPDATE purchases SET kind = 'test_event' WHERE id IN (2, 3)")
    with _api(sandbox) as api:
        api.post("/api/users/forget", json={"email": "buyer4@example.com"}).raise_for_status()
    admin.http.patch("/_sandbox/settings", json={"disallowed_event_names": ["test_event"]}).raise_for_status()
    ws = workspace_factory(
        sandbox.url,
        sql=purchases_sql(pg),
        mappings=EVENT_MAPPINGS,
        sync={**EVENTS, "event_name": None, "event_name_column": "kind"},
    )
    result = service.run(ws, SYNC)
    assert (result.counts["synced"], result.counts["rejected"]) == (16, 4)
    assert result.delivery["rows_sent"] == 20
    assert _codes(ws, result.run_id) == {
        "1": "invalid_email",
        "2": "disallowed_event_name",
        "3": "disallowed_event_name",
        "4": "forgotten",
    }
    reasons = _reasons(ws, result.run_id)
    assert "'not-an-email'" in reasons["1"]
    assert "'test_event'" in reasons["2"]
    assert stored_event_count(sandbox.url) == 16

    # Allowed again, the refused events go out with the next run; the others stay unchanged.
    admin.http.patch("/_sandbox/settings", json={"disallowed_event_names": []}).raise_for_status()
    again = service.run(ws, SYNC)
    assert (again.counts["added"], again.counts["synced"], again.counts["rejected"]) == (4, 2, 2)
    assert stored_event_count(sandbox.url) == 18


def test_user_ids_that_name_no_user_are_not_found(pg, sandbox, workspace_factory):
    # An email-based project creates no user from a userId alone: Iterable answers notFoundUserIds.
    create_purchases(pg, 4)
    with _api(sandbox) as api:
        api.post("/api/users/update", json={"email": "known@example.com", "userId": "u-1"}).raise_for_status()
    ws = workspace_factory(
        sandbox.url,
        sql=f"select id, 'u-' || id as user_id, amount from {pg.schema}.purchases",
        mappings=[{"from": "user_id", "to": "userId"}, {"from": "amount", "to": "amount"}],
        sync={"type": "events", "event_name": "purchase", "match_on": "user_id"},
    )
    result = service.run(ws, SYNC)
    assert (result.counts["synced"], result.counts["rejected"]) == (1, 3)
    assert set(_codes(ws, result.run_id).values()) == {"not_found"}
    with _api(sandbox) as api:
        events = api.get("/api/events/byUserId/u-1").json()["events"]
    assert [(e["_id"], e["dataFields"]) for e in events] == [(derived_id(1), {"amount": 3.5})]


def test_a_field_typed_otherwise_for_the_event_name_rejects_only_its_rows(pg, sandbox, workspace_factory):
    create_purchases(pg, 40, buyers=5)
    pg.execute("UPDATE purchases SET kind = 'refund' WHERE id > 30")
    with _api(sandbox) as api:
        # "purchase" events now have a numeric "item"; this sync sends it as an object.
        seed = {"email": "seed@example.com", "eventName": "purchase", "dataFields": {"item": 1}}
        api.post("/api/events/track", json=seed).raise_for_status()
    ws = workspace_factory(
        sandbox.url,
        sql=purchases_sql(pg),
        mappings=EVENT_MAPPINGS,
        destination={"max_concurrent_requests": 1},
        sync={**EVENTS, "event_name": None, "event_name_column": "kind", "batch_size": 10},
    )
    result = service.run(ws, SYNC)
    # Every purchase is refused for the type of "item"; refunds type it for themselves and pass.
    assert (result.counts["synced"], result.counts["rejected"]) == (10, 30)
    assert set(_codes(ws, result.run_id).values()) == {"type_mismatch"}
    assert all("RequestFieldsTypesMismatched" in r for r in _reasons(ws, result.run_id).values())
    # Once one purchase confirmed the mismatch, the other purchases were refused without a request each.
    # (Without that, each of the 30 would need a request of its own, besides the splits.)
    assert result.delivery["requests"] < 30
    assert stored_event_count(sandbox.url) == 11  # the seed and the refunds


def test_plan_shows_a_sample_track_bulk_body_and_sends_nothing(pg, sandbox, workspace_factory):
    create_purchases(pg, 8)
    ws = workspace_factory(sandbox.url, sql=purchases_sql(pg), mappings=EVENT_MAPPINGS, sync=EVENTS)
    plan = service.plan(ws, SYNC, samples=2)
    assert plan.request == "POST /api/events/trackBulk"
    assert plan.counts.added == 8
    [body] = plan.sample_requests
    events: list[dict[str, Any]] = body["events"]
    assert len(events) == 2
    event = events[0]
    assert set(event) == {"email", "eventName", "id", "createdAt", "dataFields"}
    assert event["eventName"] == "purchase"
    assert event["id"] == derived_id(_pk_of(event, pg))
    assert isinstance(event["createdAt"], int)
    assert event["dataFields"]["channel"] == "web"
    assert stored_event_count(sandbox.url) == 0


def _pk_of(event: dict[str, Any], pg) -> int:
    [(pk,)] = pg.execute("select id from purchases where sku = %s", (event["dataFields"]["item"]["sku"],)).fetchall()
    return int(pk)
