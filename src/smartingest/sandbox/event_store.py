"""SQLite persistence of a project's custom events and of their field types.

The tables live in the project's database (`Store.connection`), next to the users: an event belongs
to a user row, and a trigger deletes a user's events when the user row is deleted (delete, forget),
as Iterable deletes a user's custom events with the user. Used from the storage worker thread only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    user_row INTEGER NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    data BLOB NOT NULL,
    campaign_id INTEGER,
    template_id INTEGER
);
CREATE INDEX IF NOT EXISTS events_user_row ON events (user_row, created_at);
CREATE TABLE IF NOT EXISTS event_fields (
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    type TEXT NOT NULL,
    PRIMARY KEY (name, path)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS events_of_deleted_users AFTER DELETE ON users
BEGIN
    DELETE FROM events WHERE user_row = old.id;
END;
"""
_CHUNK = 500


@dataclass
class StoredEvent:
    """One custom event as stored; times in epoch milliseconds."""

    event_id: str
    user_row: int
    name: str
    created_at: int
    updated_at: int
    data: dict[str, Any]
    campaign_id: int | None = None
    template_id: int | None = None


class EventStore:
    """The events tables of one project database. Not thread-safe, like the `Store` it shares."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        db.executescript(_SCHEMA)

    def field_types(self) -> dict[str, dict[str, str]]:
        """Every event name's fixed field types: name -> path -> type."""
        types: dict[str, dict[str, str]] = {}
        for name, path, kind in self._db.execute("SELECT name, path, type FROM event_fields"):
            types.setdefault(name, {})[path] = kind
        return types

    def created_at_of(self, event_ids: Iterable[str]) -> dict[str, int]:
        """The `createdAt` of the stored events among these ids."""
        ids = sorted(set(event_ids))
        found: dict[str, int] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT event_id, created_at FROM events WHERE event_id IN ({marks})"
            found.update(self._db.execute(sql, chunk))
        return found

    def write(self, events: list[StoredEvent], new_types: dict[tuple[str, str], str]) -> None:
        """Insert events, replacing those with the same id, and add new field types.

        Call inside `Store.transaction()` when users are written in the same request.
        """
        rows = [
            (
                e.event_id,
                e.user_row,
                e.name,
                e.created_at,
                e.updated_at,
                orjson.dumps(e.data),
                e.campaign_id,
                e.template_id,
            )
            for e in events
        ]
        # REPLACE deletes the old row and inserts a new one: a resent id is one event, not two.
        self._db.executemany(
            "INSERT OR REPLACE INTO events (event_id, user_row, name, created_at, updated_at, data, campaign_id, "
            "template_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if new_types:
            self._db.executemany(
                "INSERT OR IGNORE INTO event_fields (name, path, type) VALUES (?, ?, ?)",
                [(name, path, kind) for (name, path), kind in new_types.items()],
            )

    def of_user(self, user_row: int, limit: int) -> list[StoredEvent]:
        """A user's most recent events first (by `createdAt`, then by arrival), at most `limit`."""
        rows = self._db.execute(
            "SELECT event_id, user_row, name, created_at, updated_at, data, campaign_id, template_id FROM events "
            "WHERE user_row = ? ORDER BY created_at DESC, seq DESC LIMIT ?",
            (user_row, limit),
        )
        return [StoredEvent(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5]), r[6], r[7]) for r in rows]

    def count(self) -> int:
        """How many events are stored."""
        return self._db.execute("SELECT count(*) FROM events").fetchone()[0]

    def reset(self) -> None:
        """Remove every event and event field type."""
        self._db.executescript("BEGIN IMMEDIATE; DELETE FROM events; DELETE FROM event_fields; COMMIT;")
