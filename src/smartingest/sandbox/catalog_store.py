"""SQLite persistence of a sandbox project's catalogs: catalogs, their items and their field types.

The catalogs live in their own database file next to the users' (`<data_dir>/catalogs.sqlite3`, WAL,
`synchronous=NORMAL`), so each half of the sandbox owns its schema. The connection is opened on any
thread but only used from the storage worker thread, one call at a time. Every write request is one
transaction: a request is applied whole or not at all, and survives a crash once answered.

Item values are stored as compact JSON text (so SQLite's `json_extract` can order by a field) with
their size in bytes; times are epoch milliseconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

DB_FILE = "catalogs.sqlite3"
_CHUNK = 500  # values per IN (...) lookup, well under SQLite's variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS catalogs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS catalog_items (
    id INTEGER PRIMARY KEY,
    catalog_id INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    value TEXT NOT NULL,
    size INTEGER NOT NULL,
    last_modified INTEGER NOT NULL,
    UNIQUE (catalog_id, item_id)
);
CREATE TABLE IF NOT EXISTS catalog_fields (
    catalog_id INTEGER NOT NULL,
    path TEXT NOT NULL,
    type TEXT,
    PRIMARY KEY (catalog_id, path)
) WITHOUT ROWID;
"""
# A field's type is set once: a NULL type (seen, untyped) may become a type, a type never changes.
_UPSERT_FIELD = """
INSERT INTO catalog_fields (catalog_id, path, type) VALUES (?, ?, ?)
ON CONFLICT (catalog_id, path) DO UPDATE SET type = excluded.type
WHERE catalog_fields.type IS NULL AND excluded.type IS NOT NULL
"""
_UPSERT_ITEM = """
INSERT INTO catalog_items (catalog_id, item_id, value, size, last_modified) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (catalog_id, item_id) DO UPDATE SET
    value = excluded.value, size = excluded.size, last_modified = excluded.last_modified
"""


@dataclass(frozen=True)
class CatalogRow:
    """A stored catalog: its internal id and its name as created."""

    id: int
    name: str


@dataclass(frozen=True)
class ItemRow:
    """A stored item: its id, its value as JSON text, that text's size in bytes, when it last changed."""

    item_id: str
    value: str
    size: int
    last_modified: int


def name_key(name: str) -> str:
    """The key that makes catalog names unique regardless of case."""
    return name.lower()


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class CatalogStore:
    """The catalogs database of one project. Use it from one thread at a time."""

    def __init__(self, data_dir: Path):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DB_FILE
        # Opened by the app's thread, then used only by the storage worker thread.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        self._db.close()

    # ---- catalogs

    def catalog(self, name: str) -> CatalogRow | None:
        """The catalog with this name, in any case."""
        row = self._db.execute("SELECT id, name FROM catalogs WHERE name_key = ?", (name_key(name),)).fetchone()
        return CatalogRow(*row) if row else None

    def catalog_names(self, offset: int, limit: int) -> list[str]:
        """Names of up to `limit` catalogs after the first `offset`, oldest first."""
        rows = self._db.execute("SELECT name FROM catalogs ORDER BY id LIMIT ? OFFSET ?", (limit, offset))
        return [name for (name,) in rows]

    def count_catalogs(self) -> int:
        return self._db.execute("SELECT count(*) FROM catalogs").fetchone()[0]

    def create_catalog(self, name: str, now: int) -> CatalogRow:
        """Create a catalog; the caller checked that no catalog has this name in any case."""
        cursor = self._db.execute(
            "INSERT INTO catalogs (name, name_key, created_at) VALUES (?, ?, ?)", (name, name_key(name), now)
        )
        return CatalogRow(cursor.lastrowid or 0, name)

    def delete_catalog(self, catalog_id: int) -> None:
        """Delete a catalog with its items and field types."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM catalog_items WHERE catalog_id = ?", (catalog_id,))
            db.execute("DELETE FROM catalog_fields WHERE catalog_id = ?", (catalog_id,))
            db.execute("DELETE FROM catalogs WHERE id = ?", (catalog_id,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ---- field types

    def fields(self, catalog_id: int) -> dict[str, str | None]:
        """Every field path seen in the catalog or mapped, with its type (None: no type yet)."""
        rows = self._db.execute(
            "SELECT path, type FROM catalog_fields WHERE catalog_id = ? ORDER BY path", (catalog_id,)
        )
        return dict(rows.fetchall())

    def set_fields(self, catalog_id: int, fields: dict[str, str | None]) -> None:
        """Record fields: new paths are added, untyped paths get their type, typed paths keep theirs."""
        rows = [(catalog_id, path, kind) for path, kind in fields.items()]
        self._db.executemany(_UPSERT_FIELD, rows)

    # ---- items

    def items(self, catalog_id: int, item_ids: Iterable[str]) -> dict[str, str]:
        """The stored values (JSON text) of those of these items that exist."""
        found: dict[str, str] = {}
        for chunk in _chunks(sorted(set(item_ids))):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT item_id, value FROM catalog_items WHERE catalog_id = ? AND item_id IN ({marks})"
            found.update(self._db.execute(sql, [catalog_id, *chunk]).fetchall())
        return found

    def item(self, catalog_id: int, item_id: str) -> ItemRow | None:
        row = self._db.execute(
            "SELECT item_id, value, size, last_modified FROM catalog_items WHERE catalog_id = ? AND item_id = ?",
            (catalog_id, item_id),
        ).fetchone()
        return ItemRow(*row) if row else None

    def write_items(self, catalog_id: int, values: dict[str, str], fields: dict[str, str | None], now: int) -> None:
        """Store item values (JSON text) and the fields they brought, in one transaction."""
        rows = [(catalog_id, item_id, text, len(text.encode()), now) for item_id, text in values.items()]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_UPSERT_ITEM, rows)
            db.executemany(_UPSERT_FIELD, [(catalog_id, path, kind) for path, kind in fields.items()])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def delete_items(self, catalog_id: int, item_ids: Iterable[str]) -> None:
        """Delete these items where they exist (one transaction)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "DELETE FROM catalog_items WHERE catalog_id = ? AND item_id = ?",
                [(catalog_id, item_id) for item_id in set(item_ids)],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def count_items(self, catalog_id: int) -> int:
        return self._db.execute("SELECT count(*) FROM catalog_items WHERE catalog_id = ?", (catalog_id,)).fetchone()[0]

    def page_of_items(
        self, catalog_id: int, offset: int, limit: int, order_by: str | None, ascending: bool
    ) -> list[ItemRow]:
        """A page of items, by item id; or by the value of the top-level field `order_by` (`ascending`
        or not), items without that field last, ties by item id. `order_by` must not contain `"`."""
        order = "item_id"
        if order_by is not None:
            key = "json_extract(value, :path)"
            order = f"{key} IS NULL, {key} {'ASC' if ascending else 'DESC'}, item_id"
        sql = (
            "SELECT item_id, value, size, last_modified FROM catalog_items WHERE catalog_id = :catalog "
            f"ORDER BY {order} LIMIT :limit OFFSET :offset"
        )
        params = {"catalog": catalog_id, "path": f'$."{order_by}"', "limit": limit, "offset": offset}
        return [ItemRow(*row) for row in self._db.execute(sql, params)]

    # ---- admin

    def counts(self) -> dict[str, int]:
        """How many catalogs and catalog items are stored."""
        one = self._db.execute
        return {
            "catalogs": one("SELECT count(*) FROM catalogs").fetchone()[0],
            "catalog_items": one("SELECT count(*) FROM catalog_items").fetchone()[0],
        }

    def reset(self) -> None:
        """Remove every catalog, item and field type."""
        self._db.executescript(
            "BEGIN IMMEDIATE; DELETE FROM catalog_items; DELETE FROM catalog_fields; DELETE FROM catalogs; COMMIT;"
        )
