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


def row_hash_sql(spec: HashSpec) -> str:
    """SQL expression (UBIGINT) hashing one row of a relation that has spec.columns."""
    return hash_sql(spec.fingerprint, spec.columns)


def hash_sql(fingerprint: str, columns: Sequence[str]) -> str:
    """SQL expression (UBIGINT) hashing ``columns`` of one row under a mapping's ``fingerprint``."""
    quoted = "".join(f", {quote(column)}" for column in columns)
    return f"hash({literal(fingerprint)}{quoted})"
