"""Results typed by a plan made from the database's own description of them, before the first row.

The cloud warehouses (Snowflake, Databricks, BigQuery, Athena) describe a statement's result before its rows:
each column's name and SQL type. A connector turns that description into one ``ResultColumn`` per column
(its plain Arrow type), and every batch it then reads, whichever way it came (an Arrow chunk, a page of a
REST answer, a CSV file), is conformed to that plan. So ``schema``, ``preview`` and ``read`` agree, an empty
result has its types, and a chunk that happens to carry a narrower or zoned type reads the same as the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from smartingest.columns import JSON_TEXT
from smartingest.errors import ModelError
from smartingest.sources._common import one_line


@dataclass(frozen=True)
class ResultColumn:
    """One column of a result: its name, its plain Arrow type, whether it holds JSON text."""

    name: str
    type: pa.DataType
    json: bool = False

    @property
    def field(self) -> pa.Field:
        return pa.field(self.name, self.type, metadata=JSON_TEXT if self.json else None)


def planned_schema(columns: list[ResultColumn]) -> pa.Schema:
    return pa.schema([c.field for c in columns])


def conformed(
    batches: Iterable[pa.RecordBatch], columns: list[ResultColumn], subject: str, cast_hint: Callable[[str], str]
) -> Iterator[pa.RecordBatch]:
    """Each batch with its columns (by position) cast to the planned types; temporal values are cut to the
    plan's unit. A value that does not fit is a ModelError naming the column and ``cast_hint(column)``, the
    cast that reads it in the database's SQL."""
    schema = planned_schema(columns)
    for batch in batches:
        if batch.num_columns != len(columns):
            described = len(columns)
            raise ModelError(f"{subject}: the result has {batch.num_columns} columns where {described} were described")
        arrays = [_conform(batch.column(i), c, subject, cast_hint) for i, c in enumerate(columns)]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _conform(values: pa.Array, column: ResultColumn, subject: str, cast_hint: Callable[[str], str]) -> pa.Array:
    if isinstance(values, pa.ExtensionArray):
        values = values.storage
    if values.type == column.type:
        return values
    temporal = pa.types.is_temporal(column.type)
    try:
        return values.cast(column.type, safe=not temporal)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise ModelError(
            f"{subject}: column {column.name!r} holds a value that is not read as {column.type} "
            f"({one_line(str(exc))}); cast it in the model's SQL: {cast_hint(column.name)}"
        ) from exc


__all__ = ["ResultColumn", "conformed", "planned_schema"]
