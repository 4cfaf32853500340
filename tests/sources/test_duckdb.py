"""DuckDB-specific behaviour: file errors, a writer's lock, type normalisation, errors while streaming."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError, SourceConnectionError, SourceError
from smartingest.sources.duckdb import DuckDBSource


def source(path: Path) -> DuckDBSource:
    return DuckDBSource(DuckDBSource.Settings(path=str(path)))


def query(sql: str) -> ModelConfig:
    return ModelConfig(source="duck", sql=sql, primary_key="id")


def test_missing_file_is_a_connection_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.duckdb"
    with pytest.raises(SourceConnectionError, match=r"nope\.duckdb"):
        source(missing).test_connection()
    assert not missing.exists(), "a read-only source must never create the file"


def test_a_file_that_is_not_a_database_is_a_permanent_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database" * 500)
    with pytest.raises(SourceConnectionError, match="not a usable DuckDB database") as err:
        source(junk).test_connection()
    assert err.value.transient is False


@pytest.mark.timeout(60)
def test_file_locked_by_a_writer_is_a_transient_connection_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    duckdb.connect(str(path)).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(SourceConnectionError, match="lock") as err:
            source(path).test_connection()
        assert err.value.transient is True
    finally:
        holder.communicate("", timeout=30)


def test_duckdb_types_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "types.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("CREATE TYPE mood AS ENUM ('sad', 'ok')")
    conn.execute(
        "CREATE TABLE t AS SELECT 1::BIGINT AS id, 'ok'::mood AS m, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::UUID AS u,"
        " '{\"a\": 1}'::JSON AS j, [1, 2] AS l, 12345678901234567890::HUGEINT AS h,"
        " TIMESTAMPTZ '2024-01-02 03:04:05+02' AS ts"
    )
    conn.close()
    table = source(path).preview(ModelConfig(source="duck", table="t", primary_key="id"))
    types = dict(zip(table.schema.names, table.schema.types, strict=True))
    assert types == {
        "id": pa.int64(),
        "m": pa.string(),
        "u": pa.string(),
        "j": pa.string(),
        "l": pa.list_(pa.field("l", pa.int32())),
        "h": pa.decimal128(38, 0),
        "ts": pa.timestamp("us", tz="UTC"),
    }
    row = table.to_pylist()[0]
    assert row["m"] == "ok"
    assert row["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert row["ts"].isoformat() == "2024-01-02T01:04:05+00:00"


def test_error_while_streaming_is_a_model_error(duckdb_path: Path) -> None:
    model = query("SELECT (CASE WHEN i > 3000 THEN 'x' ELSE '1' END)::INTEGER AS id FROM range(5000) r(i)")
    with pytest.raises(ModelError, match="Could not convert"), source(duckdb_path).read(model, 500) as stream:
        list(stream)


def test_statement_that_returns_no_rows_is_a_model_error(duckdb_path: Path) -> None:
    with pytest.raises(ModelError), source(duckdb_path).read(query("SET threads = 1")):
        pass


def test_query_timeout_interrupts_the_query_and_names_the_setting(duckdb_path: Path) -> None:
    slow = ModelConfig(source="d", sql="SELECT sum(hash(i)) AS id FROM range(100000000000) t(i)", primary_key="id")
    limited = DuckDBSource(DuckDBSource.Settings(path=str(duckdb_path), query_timeout_seconds=0.2))
    with pytest.raises(SourceError, match=r"query_timeout_seconds \(0.2\)") as err, limited.read(slow) as stream:
        list(stream)
    assert err.value.transient is False
    assert limited.preview(ModelConfig(source="d", table="people", primary_key="id")).num_rows == 3
