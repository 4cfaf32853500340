"""The row hash: a digest of the mapped columns and the mapping's fingerprint, computed by DuckDB.

DuckDB's ``hash()`` runs vectorised over typed values (no text encoding, no per-row Python), which
makes hashing a million rows cost a fraction of reading them. It is deterministic for a given DuckDB
release but not promised across releases, so every snapshot records ``HASH_SCHEME``; a snapshot
written under another scheme is compared by key only (every row is sent once more, nothing is lost).
64 bits suffice: a missed change needs two versions of the same key to collide.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from smartingest.cdc.base import HashSpec

HASH_SCHEME = f"duckdb-hash/1 duckdb {duckdb.__version__}"


def quote(identifier: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def key_text_sql(columns: Sequence[str], packed: str | None = None) -> str:
    """SQL expression (VARCHAR) of a row's key as text, as the ledger and the snapshot store it and runs
    show it: a JSON array for a composite key. ``packed`` reads the key from one expression instead of
    its columns (the key's value, or a struct of a composite key's columns)."""
    if len(columns) == 1:
        return f"CAST({packed or quote(columns[0])} AS VARCHAR)"
    parts = (f"{packed}.{quote(c)}" if packed else quote(c) for c in columns)
    return "json_array(" + ", ".join(parts) + ")::VARCHAR"


def row_hash_sql(spec: HashSpec) -> str:
    """SQL expression (UBIGINT) hashing one row of a relation that has spec.columns."""
    return hash_sql(spec.fingerprint, spec.columns)


def hash_sql(fingerprint: str, columns: Sequence[str]) -> str:
    """SQL expression (UBIGINT) hashing ``columns`` of one row under a mapping's ``fingerprint``."""
    quoted = "".join(f", {quote(column)}" for column in columns)
    return f"hash({literal(fingerprint)}{quoted})"
