"""Conventions of the Arrow data that sources hand to the rest of the engine.

Sources normalise their results to plain Arrow types; what a plain type cannot say about a column is
said by a marker in the field's metadata, read by whoever needs it (the mapping sends JSON columns
parsed).
"""

from __future__ import annotations

import pyarrow as pa

# The column holds JSON text (PostgreSQL json/jsonb, and arrays read as JSON to keep their nesting).
JSON_TEXT = {b"smartingest:content": b"json"}


def is_json_text(field: pa.Field) -> bool:
    """Whether the source marked the column as JSON text."""
    return (field.metadata or {}).get(b"smartingest:content") == b"json"
