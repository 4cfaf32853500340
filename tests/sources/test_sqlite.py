"""SQLite-specific behaviour: file errors, read-only opening, dynamic typing across batches."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest

from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError, SourceConnectionError, SourceError
from smartingest.sources.sqlite import SqliteSource


def source(path: Path) -> SqliteSource:
    return SqliteSource(SqliteSource.Settings(path=str(path)))


def table(name: str) -> ModelConfig:
    return ModelConfig(source="lite", table=name, primary_key="id")


def test_missing_file_is_a_connection_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(SourceConnectionError, match=r"nope\.db"):
        source(missing).test_connection()
    with pytest.raises(SourceConnectionError, match="does not exist"), source(missing).read(table("t")):
        pass
    assert not missing.exists(), "a read-only source must never create the file"


def test_a_file_that_is_not_a_database_is_a_permanent_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("hello, I am not SQLite" * 100)
    with pytest.raises(SourceConnectionError, match="not a usable SQLite database") as err:
        source(junk).test_connection()
    assert err.value.transient is False


def test_database_is_opened_read_only(sqlite_path: Path) -> None:
    with source(sqlite_path)._session() as conn, pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("CREATE TABLE intruder (x)")


@pytest.fixture
def dynamic_db(tmp_path: Path) -> Path:
    """Columns whose storage classes change after the first batches (what breaks first-batch inference)."""
    path = tmp_path / "dynamic.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, ints_and_nulls INTEGER, ints_then_floats, ints_and_text,"
        " nulls_then_text, nulls_then_ints, always_null, flag BOOLEAN, amount NUMERIC)"
    )
    rows = [
        (
            i,
            None if i % 3 == 0 else i,
            i if i <= 1500 else i + 0.5,
            i if i % 2 else f"t{i}",
            None if i <= 2000 else f"late{i}",
            None if i <= 2000 else i,
            None,
            i % 2,
            i if i % 2 else i + 0.25,
        )
        for i in range(1, 3001)
    ]
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return path


def test_dynamic_typing_is_decided_for_the_whole_result(dynamic_db: Path) -> None:
    src = source(dynamic_db)
    with src.read(table("t"), batch_rows=500) as stream:
        batches = list(stream)
    assert len(batches) == 6
    expected = {
        "id": pa.int64(),
        "ints_and_nulls": pa.int64(),
        "ints_then_floats": pa.float64(),
        "ints_and_text": pa.string(),
        "nulls_then_text": pa.string(),
        "nulls_then_ints": pa.int64(),
        "always_null": pa.string(),
        "flag": pa.bool_(),
        "amount": pa.float64(),
    }
    for batch in batches:
        assert dict(zip(batch.schema.names, batch.schema.types, strict=True)) == expected
    assert src.schema(table("t")) == batches[0].schema
    rows = pa.Table.from_batches(batches).to_pylist()
    assert rows[2]["ints_and_nulls"] is None and rows[3]["ints_and_nulls"] == 4
    assert rows[0]["ints_then_floats"] == 1.0 and rows[2999]["ints_then_floats"] == 3000.5
    assert rows[0]["ints_and_text"] == "1" and rows[1]["ints_and_text"] == "t2"
    assert rows[0]["nulls_then_text"] is None and rows[2999]["nulls_then_text"] == "late3000"
    assert rows[2999]["nulls_then_ints"] == 3000
    assert rows[0]["flag"] is True and rows[1]["flag"] is False
    assert rows[1]["amount"] == 2.25


def test_value_not_fitting_its_declared_type_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "dirty.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, qty INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, 5), (2, "five")])
    conn.commit()
    conn.close()
    with pytest.raises(ModelError, match=r"column 'qty'.*'five'"), source(path).read(table("t")) as stream:
        list(stream)
    # The documented fix works: cast in the model's SQL.
    fixed = ModelConfig(source="lite", sql="SELECT id, CAST(qty AS TEXT) AS qty FROM t", primary_key="id")
    assert source(path).preview(fixed).column("qty").to_pylist() == ["5", "five"]


def test_query_timeout_interrupts_the_query_and_names_the_setting(sqlite_path: Path) -> None:
    slow = ModelConfig(
        source="s",
        sql="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
        "SELECT count(*) AS id FROM c",
        primary_key="id",
    )
    limited = SqliteSource(SqliteSource.Settings(path=str(sqlite_path), query_timeout_seconds=0.2))
    with pytest.raises(SourceError, match=r"query_timeout_seconds \(0.2\)") as err, limited.read(slow) as stream:
        list(stream)
    assert err.value.transient is False
    assert limited.preview(ModelConfig(source="s", table="people", primary_key="id")).num_rows == 3
