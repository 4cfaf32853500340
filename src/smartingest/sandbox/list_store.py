"""SQLite persistence of a project's static lists, and the membership queries over its users.

A list is a row of the `lists` table, in the project's database (`Store.connection`). Who belongs
to it is not stored apart: it is the user's static-list field (`emailListIds` or `userListIds`),
as on an Iterable profile, so deleting or forgetting a user ends its memberships with it. Ids are
never reused, even after a list is deleted. Used from the storage worker thread only.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from .identity import Profile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lists (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    description TEXT,
    created_at INTEGER NOT NULL
);
"""
# Whether a user's list field (JSON path, first parameter) holds a list id (second parameter). The
# data column holds JSON text as a BLOB: json_each reads it once cast to TEXT. A scalar list field
# (a single id) is one element to json_each, like a one-id list.
_HOLDS = "EXISTS (SELECT 1 FROM json_each(CAST(users.data AS TEXT), ?) WHERE json_each.value = ?)"


@dataclass(frozen=True)
class StaticList:
    """One static list; `created_at` in epoch milliseconds."""

    id: int
    name: str
    description: str | None
    created_at: int


class ListStore:
    """The lists table of one project database, and membership queries over its users table."""

    def __init__(self, db: sqlite3.Connection, list_field: str):
        self._db = db
        # The JSON path of the list field in a user's data, for SQLite's json_each.
        self._path = f'$."{list_field}"'
        db.executescript(_SCHEMA)

    def all(self) -> list[StaticList]:
        """Every list, by id."""
        rows = self._db.execute("SELECT id, name, description, created_at FROM lists ORDER BY id")
        return [StaticList(*row) for row in rows]

    def get(self, list_id: int) -> StaticList | None:
        """The list with this id."""
        row = self._db.execute(
            "SELECT id, name, description, created_at FROM lists WHERE id = ?", (list_id,)
        ).fetchone()
        return StaticList(*row) if row else None

    def create(self, name: str, description: str | None, now: int) -> int:
        """Create a list; returns its id."""
        cursor = self._db.execute(
            "INSERT INTO lists (name, description, created_at) VALUES (?, ?, ?)", (name, description, now)
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def delete(self, list_id: int) -> None:
        """Delete a list row (its members' list fields are the caller's to update, in the same transaction)."""
        self._db.execute("DELETE FROM lists WHERE id = ?", (list_id,))

    def members(self, list_id: int) -> list[tuple[int, str | None, str | None]]:
        """(row id, email, userId) of each user whose list field holds `list_id`, in row id order."""
        return self._db.execute(
            f"SELECT id, email, user_id FROM users WHERE {_HOLDS} ORDER BY id", (self._path, list_id)
        ).fetchall()

    def member_count(self, list_id: int) -> int:
        """How many users' list fields hold `list_id`."""
        return self._db.execute(f"SELECT count(*) FROM users WHERE {_HOLDS}", (self._path, list_id)).fetchone()[0]

    def member_profiles(self, list_id: int) -> list[Profile]:
        """The profiles of the members of a list (to rewrite their list fields)."""
        rows = self._db.execute(
            f"SELECT id, email, user_id, data, created_at FROM users WHERE {_HOLDS}", (self._path, list_id)
        )
        return [_profile(row) for row in rows]

    def count(self) -> int:
        """How many lists exist."""
        return self._db.execute("SELECT count(*) FROM lists").fetchone()[0]

    def reset(self) -> None:
        """Delete every list (ids still never come back)."""
        self._db.execute("DELETE FROM lists")


def _profile(row: tuple[Any, ...]) -> Profile:
    id_, email, user_id, data, created_at = row
    return Profile(id_, email, user_id, orjson.loads(data), created_at, email, user_id)
