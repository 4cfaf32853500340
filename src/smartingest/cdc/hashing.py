"""The row hash: a stable digest of the mapped columns and the mapping's fingerprint.

Each value is cast to text and length-prefixed (so no two different rows can encode alike), nulls
get their own marker, and DuckDB computes MD5 over the whole row, vectorised. The low 64 bits are
kept: a collision would need two versions of the same primary key to agree on all 64 bits.
"""

from __future__ import annotations

from smartingest.cdc.base import HashSpec


def quote(identifier: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def row_hash_sql(spec: HashSpec) -> str:
    """SQL expression (UBIGINT) hashing one row of a relation that has spec.columns."""
    parts = []
    for column in spec.columns:
        text = f"CAST({quote(column)} AS VARCHAR)"
        parts.append(f"coalesce(CAST(length({text}) AS VARCHAR) || ':' || {text}, '~')")
    encoded = " || ',' || ".join(parts) if parts else "''"
    return f"md5_number_lower({literal(spec.fingerprint)} || '|' || {encoded})"


def pk_text_sql(spec: HashSpec) -> str:
    """SQL expression giving the primary key as text (how snapshots and the ledger store keys)."""
    return f"CAST({quote(spec.primary_key)} AS VARCHAR)"
