"""The Source contract, run against every connector (PostgreSQL, SQLite, DuckDB, MySQL, Redshift, Snowflake,
ClickHouse, Trino, Firebolt, SQL Server, Synapse, Oracle, Teradata, Databricks,
Athena, BigQuery) on the same dataset."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest
import sqlglot

from smartingest.columns import JSON_TEXT
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.errors import ModelError
from smartingest.sources.base import Source, SqlSource
from smartingest.sources.registry import open_source

from .conftest import NUMBERS_ROWS, Case


def table(name: str, pk: str = "id") -> ModelConfig:
    return ModelConfig(source="src", table=name, primary_key=pk)


def query(sql: str, pk: str = "id") -> ModelConfig:
    return ModelConfig(source="src", sql=sql, primary_key=pk)


def read_all(case: Case, model: ModelConfig, batch_rows: int = 1000) -> tuple[pa.Schema, list[pa.RecordBatch]]:
    with case.source.read(model, batch_rows) as stream:
        batches = list(stream)
        return stream.schema, batches  # type: ignore[attr-defined]


def rows_of(batches: list[pa.RecordBatch], schema: pa.Schema) -> list[dict]:
    rows = pa.Table.from_batches(batches, schema=schema).to_pylist()
    for row in rows:
        if row.get("attrs") is not None:
            row["attrs"] = json.loads(row["attrs"])
    return rows


def expected_rows(case: Case) -> list[dict]:
    return [r | {"attrs": json.loads(r["attrs"]) if r["attrs"] else None} for r in case.rows]


def assert_plain(schema: pa.Schema) -> None:
    assert schema.metadata is None
    for f in schema:
        assert not isinstance(f.type, pa.BaseExtensionType), f
        assert not pa.types.is_dictionary(f.type), f
        # The one marker sources keep: a JSON column says so (the mapping sends it parsed).
        assert f.metadata is None or f.metadata == JSON_TEXT, f


def test_is_a_source_and_built_by_the_registry(case: Case) -> None:
    assert isinstance(case.source, Source)
    assert isinstance(case.source, SqlSource)
    assert sqlglot.Dialect.get_or_raise(case.source.dialect())  # a dialect sqlglot can write SQL in
    built = open_source("src", SourceConfig(type=case.name, **case.settings))
    assert type(built) is type(case.source)
    built.test_connection()


def test_reads_every_row_with_plain_arrow_types(case: Case) -> None:
    schema, batches = read_all(case, table("people"))
    assert schema.names == list(case.types)
    assert dict(zip(schema.names, schema.types, strict=True)) == case.types
    assert_plain(schema)
    for batch in batches:
        assert batch.schema == schema
        assert_plain(batch.schema)
    assert sorted(rows_of(batches, schema), key=lambda r: r["id"]) == expected_rows(case)


def test_view_model(case: Case) -> None:
    schema, batches = read_all(case, table("people_view"))
    assert schema.names == ["id", "name", "balance"]
    assert schema.field("balance").type == case.types["balance"]
    assert sorted(r["id"] for r in rows_of(batches, schema)) == [1, 2, 3]


def test_sql_model(case: Case) -> None:
    schema, batches = read_all(
        case, query("SELECT id, name, score * 2 AS double_score FROM people WHERE id <> 2 -- a trailing comment")
    )
    assert schema.types == [pa.int64(), pa.string(), pa.float64()]
    assert sorted(rows_of(batches, schema), key=lambda r: r["id"]) == [
        {"id": 1, "name": "Ada", "double_score": 3.0},
        {"id": 3, "name": "Zoë", "double_score": 4.5},
    ]


def test_schema_qualified_table(case: Case) -> None:
    schema, batches = read_all(case, table(f"{case.schema_name}.people"))
    assert schema.names == list(case.types)
    assert sum(b.num_rows for b in batches) == 3


def test_batches_hold_at_most_batch_rows(case: Case) -> None:
    _, batches = read_all(case, table("numbers"), batch_rows=700)
    assert len(batches) >= NUMBERS_ROWS // 700
    assert all(0 < b.num_rows <= 700 for b in batches)
    ids = [i for b in batches for i in b.column("id").to_pylist()]
    assert sorted(ids) == list(range(1, NUMBERS_ROWS + 1))


def test_schema_matches_read_without_reading(case: Case) -> None:
    for model in (table("people"), table("people_view"), query("SELECT id, score * 2 AS s FROM people")):
        schema = case.source.schema(model)
        read_schema, _ = read_all(case, model)
        assert schema == read_schema
        assert_plain(schema)


def test_empty_model_yields_no_batches_but_has_a_schema(case: Case) -> None:
    model = query("SELECT * FROM people WHERE id < 0")
    schema, batches = read_all(case, model)
    assert batches == []
    assert schema.names == list(case.types)
    assert case.source.schema(model) == schema
    preview = case.source.preview(model)
    assert preview.num_rows == 0
    assert preview.schema == schema


def test_preview(case: Case) -> None:
    preview = case.source.preview(table("numbers"), limit=3)
    assert preview.num_rows == 3
    assert preview.schema == case.source.schema(table("numbers"))
    people = case.source.preview(table("people"))
    assert people.schema == case.source.schema(table("people"))
    assert people.num_rows == 3


def test_tables_lists_what_a_model_can_read_by_that_name(case: Case) -> None:
    listed = case.source.tables()
    bare = {name.rsplit(".", 1)[-1]: name for name in listed}
    assert {"people", "numbers"} <= set(bare), listed
    assert listed == sorted(listed)
    assert not any(name.startswith(("pg_catalog.", "information_schema.", "sqlite_")) for name in listed)
    assert case.source.preview(table(bare["people"])).num_rows == 3  # a listed name is a model's table
    assert len(case.source.tables(limit=1)) == 1


def test_bad_sql_is_a_model_error_with_the_database_message(case: Case) -> None:
    with pytest.raises(ModelError) as err, case.source.read(query("SELEC id FROM people")):
        pass
    assert "syntax error" in str(err.value)
    assert "SELEC" in str(err.value)
    with pytest.raises(ModelError, match="syntax error"):
        case.source.schema(query("SELEC id FROM people"))
    with pytest.raises(ModelError, match="syntax error"):
        case.source.preview(query("SELEC id FROM people"))


def test_missing_table_is_a_model_error(case: Case) -> None:
    with pytest.raises(ModelError, match="nosuch_table"), case.source.read(table("nosuch_table")):
        pass
    with pytest.raises(ModelError, match="nosuch_table"):
        case.source.schema(table("nosuch_table"))


def test_missing_column_is_a_model_error(case: Case) -> None:
    with (
        pytest.raises(ModelError, match="no_such_column"),
        case.source.read(query("SELECT no_such_column FROM people")),
    ):
        pass


def test_missing_primary_key_column_is_a_model_error(case: Case) -> None:
    with pytest.raises(ModelError) as err, case.source.read(table("people", pk="user_id")):
        pytest.fail("read must not start without the primary-key column")
    message = str(err.value)
    assert "'user_id'" in message
    assert "columns: id, name, balance, score, active, born, updated_at, attrs" in message


def test_models_cannot_write(case: Case) -> None:
    with pytest.raises(ModelError, match="would write"), case.source.read(query("DELETE FROM people")) as stream:
        list(stream)
    with pytest.raises(ModelError, match=case.writing_cte_refusal):
        case.source.preview(query("WITH gone AS (DELETE FROM people RETURNING id) SELECT * FROM gone"))
    assert case.source.preview(table("people")).num_rows == 3


def test_connection_is_released_after_a_full_read(case: Case) -> None:
    with case.source.read(table("numbers"), batch_rows=100) as stream:
        next(stream)
        assert not case.is_released(wait=0), "the probe must see the open read, or it proves nothing"
        list(stream)
    assert case.is_released(), case.released_means


def test_connection_is_released_on_early_exit_and_on_errors(case: Case) -> None:
    with case.source.read(table("numbers"), batch_rows=100) as stream:
        next(stream)
    assert case.is_released(), case.released_means

    class Boom(Exception):
        pass

    with pytest.raises(Boom), case.source.read(table("numbers"), batch_rows=100) as stream:
        next(stream)
        raise Boom  # the consumer's own error passes through untranslated
    assert case.is_released(), case.released_means

    with pytest.raises(ModelError), case.source.read(table("nosuch_table")):
        pass
    assert case.is_released(), case.released_means


def test_test_connection(case: Case) -> None:
    case.source.test_connection()
    assert case.is_released(), case.released_means


def test_values_arrive_as_they_are_in_the_database(real_case: Case) -> None:
    """The value rules at the source: exact decimals stay exact, the calendar's edge dates are dates, NaN
    stays NaN (the mapping then says why it cannot be sent), nesting keeps its shape."""
    assert real_case.values is not None, f"{real_case.name} runs here: give its case the value rules' query"
    sql, expected = real_case.values
    table = real_case.source.preview(query(sql))
    row = table.to_pylist()[0]
    for name, value in expected.items():
        got = row[name]
        if isinstance(value, float) and math.isnan(value):
            assert isinstance(got, float) and math.isnan(got), (name, got)
        elif isinstance(value, list | dict) and isinstance(got, str):
            assert json.loads(got) == value, (name, got)
        else:
            assert got == value and type(got) is type(value), (name, got)
