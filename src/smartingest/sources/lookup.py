"""A model narrowed to the rows of one primary key, so that the database finds them (through its index,
for a table) instead of every row being streamed out to be filtered.

Only what compares the same in every dialect named here is narrowed: integer and text key columns,
compared with a literal of their own type. Any other key (a timestamp, a UUID, a decimal...) is looked
for by streaming the model; the caller filters the rows it gets either way.
"""

from __future__ import annotations

import re

import pyarrow as pa

from smartingest.config.models import ModelConfig
from smartingest.sources.base import Source
from smartingest.sources.sql import SqlConnector

# Dialects where 'text' literals (quotes doubled, backslashes plain) and SELECT * FROM (query) AS alias hold.
_NARROWED_DIALECTS = frozenset({"postgres", "duckdb", "sqlite"})
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def narrowed_to_key(source: Source, model: ModelConfig, schema: pa.Schema, key_text: list[str]) -> ModelConfig | None:
    """The model with only the rows whose key columns equal ``key_text`` (each column's value as text), or
    None when the key cannot be compared in SQL here (the caller then streams the model)."""
    if not isinstance(source, SqlConnector) or source.dialect() not in _NARROWED_DIALECTS:
        return None
    conditions = []
    for column, text in zip(model.key_columns, key_text, strict=True):
        literal = _literal(schema.field(column).type, text)
        if literal is None:
            return None
        conditions.append(f"{source.quote(column)} = {literal}")
    sql = f"SELECT * FROM ({source.model_sql(model)}\n) AS smartingest_row WHERE {' AND '.join(conditions)}"
    # Not validated again: the model was, and only its query changes.
    return model.model_copy(update={"sql": sql, "table": None})


def _literal(dtype: pa.DataType, text: str) -> str | None:
    if pa.types.is_integer(dtype):
        return text if _INTEGER.fullmatch(text) else None
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "'" + text.replace("'", "''") + "'"
    return None
