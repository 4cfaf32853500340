"""Test support for events syncs: a purchases table in PostgreSQL, and the events the sandbox holds."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import httpx

from tests.conftest import API_KEY, PgSchema

SYNC = "customers_to_users"  # write_project's sync name
EVENT_MAPPINGS = [
    {"from": "email", "to": "email"},
    {"from": "amount", "to": "amount"},
    {"from": "sku", "to": "item.sku"},
    {"static": "web", "to": "channel"},
]


def create_purchases(pg: PgSchema, n: int, start: int = 1, buyers: int = 10) -> None:
    """A purchases table with n rows (ids start..start+n-1) by ``buyers`` users, one hour apart."""
    pg.execute(
        """CREATE TABLE IF NOT EXISTS purchases (
             id bigint PRIMARY KEY, email text, kind text, amount numeric(10,2), sku text, bought_at timestamptz)"""
    )
    pg.execute(
        """INSERT INTO purchases
           SELECT i, 'buyer' || (i %% %s) || '@example.com', 'purchase', (i * 3 %% 100) + 0.5, 'sku-' || i,
                  timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour'
           FROM generate_series(%s::bigint, %s::bigint) AS i""",
        (buyers, start, start + n - 1),
    )


def purchases_sql(pg: PgSchema) -> str:
    return f"select id, email, kind, amount, sku, bought_at from {pg.schema}.purchases"


def derived_id(pk: Any, sync: str = SYNC) -> str:
    """The id an events sync gives a row without an id column (docs/sync-types.md)."""
    return hashlib.sha256(f"syncs.{sync}\x00{pk}".encode()).hexdigest()[:32]


def iterable_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S +00:00")


def expected_purchase_events(pg: PgSchema, event_name: str = "purchase") -> dict[str, dict[str, Any]]:
    """What the model says the sandbox holds for each current row of purchases: event id -> event."""
    rows = pg.execute("select id, email, amount, sku, bought_at from purchases").fetchall()
    return {
        derived_id(pk): {
            "eventName": event_name,
            "email": email,
            "createdAt": iterable_time(bought_at),
            "dataFields": {"amount": float(amount), "item": {"sku": sku}, "channel": "web"},
        }
        for pk, email, amount, sku, bought_at in rows
    }


def events_by_id(base_url: str, emails: set[str]) -> dict[str, dict[str, Any]]:
    """Every event of these users as the sandbox's read endpoint answers it: event id -> event."""
    found: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=base_url, headers={"Api-Key": API_KEY}, timeout=30) as http:
        for email in sorted(emails):
            answer = http.get(f"/api/events/{email}", params={"limit": 200})
            answer.raise_for_status()
            events = answer.json()["events"]
            assert len(events) < 200, "read limit reached: the test needs fewer events per user"
            for event in events:
                assert event["_id"] not in found, f"event id {event['_id']} twice"
                found[event["_id"]] = {k: event[k] for k in ("eventName", "email", "createdAt", "dataFields")}
    return found


def stored_event_count(base_url: str) -> int:
    """How many events the sandbox holds in all."""
    return int(httpx.get(f"{base_url}/_sandbox/stats", timeout=30).json()["events"])
