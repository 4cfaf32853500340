"""Looking at sources and models without running a sync: settings checks, connection tests, previews.

The service reaches sources only through the engine, which keeps the house's imports running downwards.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.sources.base import PREVIEW_ROWS
from smartingest.sources.registry import CONNECTORS, open_source, secret_keys, settings_model

__all__ = ["PREVIEW_ROWS", "check_connection", "check_settings", "model_schema", "preview_model", "python_rows"]


SOURCE_TYPES = tuple(sorted(CONNECTORS))


def source_settings(source_type: str) -> type[BaseModel]:
    """The model of a source type's connector settings (see sources.registry.settings_model)."""
    return settings_model(source_type)


def check_settings(name: str, source: SourceConfig) -> None:
    """Validate a source's connector settings without connecting; raises ConfigError naming the key."""
    open_source(name, source)


def secret_settings(source: SourceConfig) -> frozenset[str]:
    """The keys of a source's settings that are secrets (never exported in the clear)."""
    return secret_keys(source)


def check_connection(name: str, source: SourceConfig) -> None:
    """Connect and run a trivial query; raises a SourceError saying what is wrong."""
    open_source(name, source).test_connection()


def preview_model(name: str, source: SourceConfig, model: ModelConfig, limit: int = PREVIEW_ROWS) -> pa.Table:
    """The first ``limit`` rows of a model on the named source."""
    return open_source(name, source).preview(model, limit)


def source_tables(name: str, source: SourceConfig) -> list[str]:
    """The tables and views a model could read on the named source (see Source.tables)."""
    return open_source(name, source).tables()


def key_problems(table: pa.Table, key_columns: list[str]) -> list[str]:
    """What a preview shows wrong with a primary key: a column it lacks, null keys, keys held by several
    rows (a preview is a sample: a clean one proves nothing of the whole model, a dirty one does)."""
    missing = [c for c in key_columns if c not in table.column_names]
    if missing:
        return [f"the model has no column {', '.join(map(repr, missing))} (columns: {', '.join(table.column_names)})"]
    problems = []
    nulls = sum(table.column(c).null_count for c in key_columns)
    if nulls:
        problems.append(f"{nulls} of the {table.num_rows} rows shown have a null in the primary key")
    counts = table.select(key_columns).group_by(key_columns).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts.column("count_all"), 1))
    if repeated.num_rows:
        example = ", ".join(str(repeated.column(c)[0].as_py()) for c in key_columns)
        problems.append(
            f"{repeated.num_rows} primary key value(s) are held by several of the rows shown (for example {example})"
        )
    return problems


def model_schema(name: str, source: SourceConfig, model: ModelConfig) -> pa.Schema:
    """Column names and types of a model on the named source."""
    return open_source(name, source).schema(model)


def python_rows(table: pa.Table) -> list[dict[str, Any]]:
    """A table's rows as Python values, for showing. Dates and timestamps Python cannot hold (PostgreSQL's
    ±infinity, years outside 1-9999) are shown as text (``infinity``, ``-infinity``, ``out of range: N``)
    instead of failing the whole preview."""
    columns = {name: _python_values(table.column(name)) for name in table.column_names}
    return [{name: values[i] for name, values in columns.items()} for i in range(table.num_rows)]


_FIRST_DAY, _LAST_DAY = -719_162, 2_932_896  # 0001-01-01 and 9999-12-31, in days from 1970-01-01
_TICKS_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _python_values(column: pa.ChunkedArray) -> list[Any]:
    dtype = column.type
    array = column.combine_chunks()
    if pa.types.is_date32(dtype):
        ticks = pc.cast(array.view(pa.int32()), pa.int64())
        low, high, infinite = _FIRST_DAY, _LAST_DAY, (-(2**31), 2**31 - 1)
    elif pa.types.is_timestamp(dtype):
        per_day = _TICKS_PER_DAY[dtype.unit]
        ticks = array.view(pa.int64())
        low, high = max(_FIRST_DAY * per_day, -(2**63)), min((_LAST_DAY + 1) * per_day - 1, 2**63 - 1)
        infinite = (-(2**63), 2**63 - 1)
    else:
        return array.to_pylist()
    outside = pc.fill_null(pc.or_(pc.less(ticks, low), pc.greater(ticks, high)), False)
    if not pc.any(outside).as_py():
        return array.to_pylist()
    values = pc.if_else(outside, pa.scalar(None, dtype), array).to_pylist()
    shown = {infinite[0]: "-infinity", infinite[1]: "infinity"}
    for i, (tick, out) in enumerate(zip(ticks.to_pylist(), outside.to_pylist(), strict=True)):
        if out:
            values[i] = shown.get(tick, f"out of range: {tick}")
    return values
