"""Rows streamed as Arrow by connectorx, for the connectors whose session runs through a DB-API driver.

connectorx reads a query's rows in Rust, over a connection of its own, as Arrow record batches; the
connector keeps its DB-API driver for what that driver answers better (an error code at once, the model's
description, the table list). This module is the part such connectors share:

* a **plan**, one ``PlannedColumn`` per column of the model, made by the connector from its driver's
  description: the SQL that selects the column (a cast where connectorx would read it badly, e.g. decimals
  as their exact text) and the conversion its Arrow values then need;
* the **stream**: the planned query run by connectorx, each batch converted and normalised, an error
  translated, and a read left before its end handed to the connector to end the query (connectorx's
  reader thread would otherwise wait for a reader forever, its query running and its connection held).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import connectorx
import pyarrow as pa

from smartingest.columns import JSON_TEXT
from smartingest.errors import SourceError
from smartingest.sources._common import BatchStream, Converter, Normaliser, close_quietly, one_line, rebatch


@dataclass(frozen=True)
class PlannedColumn:
    """How one column of a model is read: the SQL that selects it, and what its Arrow values become."""

    name: str
    select: str = "{}"  # ``{}`` is the quoted column
    convert: Converter | None = None
    json: bool = False  # the column holds JSON text (sent parsed)


def planned_query(query: str, columns: list[PlannedColumn], quote: Callable[[str], str]) -> str:
    """``query``, wrapped to select the columns as planned (as written when no column needs a cast). The
    names are unique: a derived table that repeats one is refused by the database, and planning ran the
    query as one."""
    if all(c.select == "{}" for c in columns):
        return query + "\n"
    select = ", ".join(f"{c.select.format(quote(c.name))} AS {quote(c.name)}" for c in columns)
    return f"SELECT {select} FROM (\n{query}\n) m"


def statement_mark() -> str:
    """A mark for a statement's text that finds connectorx's connection among the server's sessions."""
    return f"smartingest stream {secrets.token_hex(8)}"


def connectorx_stream(
    url: str,
    query: str,
    columns: list[PlannedColumn],
    batch_rows: int,
    *,
    pre_execution: list[str],
    translate: Callable[[BaseException], SourceError | None],
    abandon: Callable[[], object],
    on_close: Callable[[], object] | None = None,
) -> BatchStream:
    """Start ``query`` (already planned) through connectorx and return its normalised batches.

    ``pre_execution`` runs first on connectorx's connection (the session's settings); ``abandon`` is called
    when the stream is closed before its end and must end the query on the server; ``on_close`` whenever
    the stream is closed.
    """
    reader = connectorx.read_sql(
        url, query, return_type="arrow_stream", batch_size=batch_rows, pre_execution_query=pre_execution
    )
    raw = reader.schema
    fields = [pa.field(c.name, raw.field(i).type) for i, c in enumerate(columns)]
    converters = [c.convert for c in columns]
    # The converted types, from an empty batch: the schema is known before the first row arrives.
    probe = pa.RecordBatch.from_arrays(
        [_convert(pa.array([], f.type), conv) for f, conv in zip(fields, converters, strict=True)],
        names=[c.name for c in columns],
    )
    normalise = Normaliser(probe.schema)
    schema = pa.schema(
        [f.with_metadata(JSON_TEXT) if c.json else f for f, c in zip(normalise.schema, columns, strict=True)]
    )
    finished = False

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal finished
        try:
            for batch in reader:
                arrays = [_convert(batch.column(i), conv) for i, conv in enumerate(converters)]
                plain = normalise(pa.RecordBatch.from_arrays(arrays, schema=probe.schema))
                yield pa.RecordBatch.from_arrays(plain.columns, schema=schema)
        except BaseException as exc:
            # connectorx reports some failures as a Rust panic, which is not an Exception.
            if type(exc).__name__ != "PanicException":
                raise
            raise (translate(exc) or SourceError(one_line(str(exc))[:500])) from exc
        finished = True

    def release() -> None:
        if on_close is not None:
            close_quietly(on_close)
        close_quietly(reader.close)
        if not finished:
            close_quietly(abandon)

    return BatchStream(schema, rebatch(batches(), batch_rows), translate, on_close=release)


def _convert(values: pa.Array, convert: Converter | None) -> pa.Array:
    return values if convert is None else convert(values)


__all__ = ["PlannedColumn", "connectorx_stream", "planned_query", "statement_mark"]
