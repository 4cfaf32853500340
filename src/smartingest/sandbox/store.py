"""SQLite persistence of one sandbox project: users, field types and forgotten identifiers.

One connection, used from one thread only (the sandbox's storage worker), in WAL mode with
`synchronous=NORMAL`: a committed request survives a crash of the process. Every write request is
one transaction. Reads of many profiles go through `IN (...)` lookups in chunks, so a batch costs a
few queries whatever its size, and nothing is cached in memory except the field types (few).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from .identity import Profile
from .settings import ProjectType

DB_FILE = "sandbox.sqlite3"
SCHEMA_VERSION = "1"
_CHUNK = 500  # values per IN (...) lookup, well under SQLite's variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    email TEXT,
    user_id TEXT,
    data BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_user_id ON users (user_id) WHERE user_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS fields (path TEXT PRIMARY KEY, type TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS forgotten (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    grp INTEGER NOT NULL,
    forgotten_at INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS forgotten_grp ON forgotten (grp);
"""
# Emails are unique where they identify users; in userID-based projects they are a plain attribute.
_EMAIL_INDEX = {
    "email": "CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users (email) WHERE email IS NOT NULL",
    "hybrid": "CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users (email) WHERE email IS NOT NULL",
    "userid": "CREATE INDEX IF NOT EXISTS users_email ON users (email)",
}
_COLUMNS = "id, email, user_id, data, created_at, updated_at"


class ProjectTypeMismatchError(RuntimeError):
    """The data directory holds a project of another type than the one asked for."""


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _profile(row: tuple[Any, ...]) -> Profile:
    id_, email, user_id, data, created_at, _ = row
    return Profile(id_, email, user_id, orjson.loads(data), created_at, email, user_id)


class Store:
    """The database of one project. Not thread-safe: create and use it from a single thread."""

    def __init__(self, data_dir: Path, project_type: ProjectType):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DB_FILE
        self.project_type = project_type
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA cache_size=-32000")  # 32 MB page cache: bounded, and enough for speed
        self._db.execute("PRAGMA temp_store=MEMORY")
        self._db.executescript(_SCHEMA)
        self._check_project_type(project_type)
        self._db.execute(_EMAIL_INDEX[project_type])
        self._any_forgotten = self._count_forgotten() > 0

    def _count_forgotten(self) -> int:
        return self._db.execute("SELECT count(*) FROM forgotten").fetchone()[0]

    def _check_project_type(self, project_type: ProjectType) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'project_type'").fetchone()
        if row is None:
            self._db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("project_type", project_type), ("schema_version", SCHEMA_VERSION)],
            )
        elif row[0] != project_type:
            raise ProjectTypeMismatchError(
                f"{self.path} holds a {row[0]!r} project, not {project_type!r}: "
                f"use project type {row[0]!r} or another data directory"
            )

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection, for the tables other modules keep in this database (same thread only)."""
        return self._db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the writes made inside it, nested ones too, commit or roll back together.

        Lets a request that writes users and other rows (events) be applied all or nothing.
        """
        db = self._db
        if db.in_transaction:
            yield db
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ---- reads

    def fields(self) -> dict[str, str]:
        """Every field path with its fixed type."""
        return dict(self._db.execute("SELECT path, type FROM fields ORDER BY path"))

    def profiles_for(self, emails: Iterable[str], user_ids: Iterable[str]) -> list[Profile]:
        """The stored profiles having any of these emails or userIds (each profile once)."""
        found: dict[int, Profile] = {}
        self._select_into(found, "email", list(set(emails)))
        # Users found by email usually carry the request's userIds too: look up only the others.
        known = {p.user_id for p in found.values()}
        self._select_into(found, "user_id", [u for u in set(user_ids) if u not in known])
        return list(found.values())

    def _select_into(self, found: dict[int, Profile], column: str, values: list[str]) -> None:
        for chunk in _chunks(values):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {_COLUMNS} FROM users WHERE {column} IN ({marks})"
            for row in self._db.execute(sql, chunk):
                if row[0] not in found:
                    found[row[0]] = _profile(row)

    def by_email(self, email: str) -> Profile | None:
        """The user with this (normalized) email; the most recently updated one if several have it."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM users WHERE email = ? ORDER BY updated_at DESC, id DESC LIMIT 1",
            (email,),
        ).fetchone()
        return _profile(row) if row else None

    def by_user_id(self, user_id: str) -> Profile | None:
        """The user with this userId."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM users WHERE user_id = ?", (user_id,)).fetchone()
        return _profile(row) if row else None

    def forgotten_among(self, emails: Iterable[str], user_ids: Iterable[str]) -> tuple[set[str], set[str]]:
        """Which of these emails and userIds are forgotten."""
        result: tuple[set[str], set[str]] = (set(), set())
        if not self._any_forgotten:  # the usual case: skip the lookups
            return result
        for kind, values, into in (("email", emails, result[0]), ("userId", user_ids, result[1])):
            for chunk in _chunks(sorted(set(values))):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT value FROM forgotten WHERE kind = ? AND value IN ({marks})"
                into.update(value for (value,) in self._db.execute(sql, [kind, *chunk]))
        return result

    def forgotten_values(self, kind: str) -> list[str]:
        """All forgotten values of a kind ("email" or "userId")."""
        return [v for (v,) in self._db.execute("SELECT value FROM forgotten WHERE kind = ?", (kind,))]

    def list_users(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` users with an id greater than `after`, in id order (keyset pagination)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM users WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
        ).fetchall()
        return [
            {
                "id": row[0],
                "email": row[1],
                "userId": row[2],
                "dataFields": orjson.loads(row[3]),
                "createdAt": row[4],
                "updatedAt": row[5],
            }
            for row in rows
        ]

    def counts(self) -> dict[str, int]:
        """How many users, fields and forgotten identifiers are stored."""
        one = self._db.execute
        return {
            "users": one("SELECT count(*) FROM users").fetchone()[0],
            "fields": one("SELECT count(*) FROM fields").fetchone()[0],
            "forgotten": one("SELECT count(*) FROM forgotten").fetchone()[0],
        }

    # ---- writes (each one transaction)

    def write(self, profiles: list[Profile], new_fields: dict[str, str], now: int) -> None:
        """Store changed and new profiles and new field types atomically."""
        renamed = [p for p in profiles if p.identity_changed]
        # Rows whose identifiers did not change skip the email/user_id columns, so SQLite leaves
        # their index entries alone.
        same_identity = [
            (orjson.dumps(p.data), now, p.id) for p in profiles if p.id is not None and not p.identity_changed
        ]
        new_identity = [(p.email, p.user_id, orjson.dumps(p.data), now, p.id) for p in renamed]
        created = [(p.email, p.user_id, orjson.dumps(p.data), p.created_at, now) for p in profiles if p.id is None]
        with self.transaction() as db:
            # Free renamed users' identifiers first, so that swaps within a batch never collide.
            if renamed:
                db.executemany("UPDATE users SET email = NULL, user_id = NULL WHERE id = ?", [(p.id,) for p in renamed])
                db.executemany(
                    "UPDATE users SET email = ?, user_id = ?, data = ?, updated_at = ? WHERE id = ?", new_identity
                )
            if same_identity:
                db.executemany("UPDATE users SET data = ?, updated_at = ? WHERE id = ?", same_identity)
            if created:
                db.executemany(
                    "INSERT INTO users (email, user_id, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                    created,
                )
            if new_fields:
                db.executemany("INSERT OR IGNORE INTO fields (path, type) VALUES (?, ?)", new_fields.items())

    def delete_users(self, ids: list[int]) -> None:
        """Delete users by internal id."""
        self._db.executemany("DELETE FROM users WHERE id = ?", [(i,) for i in ids])

    def forget(self, ids: list[int], emails: set[str], user_ids: set[str], now: int) -> None:
        """Delete users and remember their identifiers as forgotten, as one group."""
        with self.transaction() as db:
            db.executemany("DELETE FROM users WHERE id = ?", [(i,) for i in ids])
            grp = db.execute("SELECT coalesce(max(grp), 0) + 1 FROM forgotten").fetchone()[0]
            rows = [("email", e, grp, now) for e in emails] + [("userId", u, grp, now) for u in user_ids]
            db.executemany("INSERT OR IGNORE INTO forgotten (kind, value, grp, forgotten_at) VALUES (?, ?, ?, ?)", rows)
        self._any_forgotten = self._any_forgotten or bool(rows)

    def unforget(self, kind: str, value: str) -> int:
        """Forget the forgetting of an identifier and of those forgotten with it; returns rows removed."""
        cursor = self._db.execute(
            "DELETE FROM forgotten WHERE grp IN (SELECT grp FROM forgotten WHERE kind = ? AND value = ?)",
            (kind, value),
        )
        self._any_forgotten = self._count_forgotten() > 0
        return cursor.rowcount

    def reset(self) -> None:
        """Remove all users, field types and forgotten identifiers (the project type stays)."""
        self._db.executescript("BEGIN IMMEDIATE; DELETE FROM users; DELETE FROM fields; DELETE FROM forgotten; COMMIT;")
        self._any_forgotten = False
