"""Both engines give identical change sets: random histories of inserts, updates and deletes (null and
duplicate keys, identifiers shared but for case and spaces, nulls, rows Iterable refuses) applied to a real
PostgreSQL and a real MariaDB model (and the PostgreSQL one read as Redshift; and the Snowflake emulator's,
the ClickHouse engine's, and the Databricks and BigQuery fakes' models), each run planned by Basic
and by Lightning side by side, each with its own snapshot, and compared run after run: counts, the changes
and every column of them, and the invalid rows with their reasons."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smartingest.cdc.base import HASH, OP, PK, HashSpec, Identity
from smartingest.config.models import ModelConfig
from tests.cdc.conftest import DATABASES, EMULATED, Database, Harness, open_database

SPECS = [
    HashSpec("id", ("email", "plan", "amount"), "fp-1", Identity("email", "email", ignore_case=True, trim=True)),
    HashSpec("id", ("email", "plan", "amount"), "fp-2", Identity("email", "email", ignore_case=True, trim=True)),
    HashSpec("id", ("plan",), "fp-3", None),
]
_tables = itertools.count()

keys = st.one_of(st.none(), st.integers(1, 12))
emails = st.sampled_from(["a@x.io", "A@x.io", " a@x.io", "b@x.io", "c@x.io", "", None])
plans = st.sampled_from(["free", "pro", "Pro", None])
amounts = st.one_of(st.none(), st.decimals(-100, 100, places=2, allow_nan=False, allow_infinity=False))
insert = st.tuples(st.just("insert"), keys, emails, plans, amounts)
update = st.tuples(
    st.just("update"), st.integers(1, 12), st.sampled_from(["email", "plan", "amount"]), st.integers(0, 5)
)
delete = st.tuples(st.just("delete"), st.integers(1, 12))
step = st.fixed_dictionaries(
    {
        "mutations": st.lists(st.one_of(insert, update, delete), max_size=8),
        "refused": st.integers(0, 4),  # every n-th key Iterable refuses this run (0: none)
        "spec": st.sampled_from([0, 0, 0, 1, 2]),
        "full_resync": st.sampled_from([False, False, False, False, True]),
    }
)


def _opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    db: Database = open_database(request.param, tmp_path, request)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture(params=[kind for kind in DATABASES if kind not in (*EMULATED, "duckdb")])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from _opened(request, tmp_path)


@pytest.fixture(params=EMULATED)
def emulated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from _opened(request, tmp_path)


def _apply(db: Database, table: str, mutation: tuple[Any, ...], constrained: bool) -> None:
    qualified = db.table(table)
    if mutation[0] == "insert" and constrained:  # the primary key refuses a null or a taken key
        if mutation[1] is not None:
            values = ", ".join(
                "NULL" if v is None else f"'{v}'" if isinstance(v, str) else str(v) for v in mutation[1:]
            )
            ignore = (
                "INSERT IGNORE INTO {} VALUES ({})"
                if db.kind == "mariadb"
                else "INSERT INTO {} VALUES ({}) ON CONFLICT DO NOTHING"
            )
            db.execute(ignore.format(qualified, values))
    elif mutation[0] == "insert":
        db.insert(table, [mutation[1:]])
    elif mutation[0] == "update":
        _, key, column, choice = mutation
        value = {
            "email": ["a@x.io", "B@X.IO", "c@x.io ", None, "d@x.io", ""],
            "plan": ["free", "pro", None] * 2,
            "amount": [Decimal("1.50"), Decimal("-2.25"), None, Decimal("0.00"), Decimal("99.99"), Decimal(1)],
        }
        literal = value[column][choice]
        shown = "NULL" if literal is None else (f"'{literal}'" if isinstance(literal, str) else str(literal))
        db.execute(f"UPDATE {qualified} SET {column} = {shown} WHERE id = {key}")
    else:
        db.execute(f"DELETE FROM {qualified} WHERE id = {mutation[1]}")


def _comparable(batches: list[pa.RecordBatch]) -> list[dict[str, Any]]:
    """The changes' rows, every column but the hash (each engine has its own)."""
    rows = pa.Table.from_batches(batches).drop_columns([HASH]).to_pylist() if batches else []
    return sorted(rows, key=lambda row: (row[PK], row[OP]))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=st.lists(step, min_size=1, max_size=4), constrained=st.booleans())
def test_basic_and_lightning_give_the_same_change_sets(
    database: Database, tmp_path: Path, history: list[dict[str, Any]], constrained: bool
):
    """``constrained``: the model is a table whose primary key is the model's (Lightning then relies on it
    for unique keys and, when the counts agree, for no removed key)."""
    _compare_engines(database, tmp_path, history, constrained)


# Fewer examples where the database is an emulator or a fake: what they add is their dialect's SQL.
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=st.lists(step, min_size=1, max_size=4), constrained=st.booleans())
def test_the_engines_agree_on_emulated_databases(
    emulated: Database, tmp_path: Path, history: list[dict[str, Any]], constrained: bool
):
    _compare_engines(emulated, tmp_path, history, constrained)


def _compare_engines(database: Database, tmp_path: Path, history: list[dict[str, Any]], constrained: bool) -> None:
    assume(not (constrained and database.kind == "clickhouse"))  # its primary key is an order, not a constraint
    n = next(_tables)
    table = f"agree_{n}"
    key = "id BIGINT PRIMARY KEY" if constrained else "id BIGINT"
    database.execute(
        f"CREATE TABLE {database.table(table)} ({key}, email VARCHAR(20), plan VARCHAR(10), amount DECIMAL(10,2))"
    )
    database.insert(table, [(i, f"u{i}@x.io", "free", Decimal("10.00")) for i in range(1, 7)])
    model = ModelConfig(source="db", table=database.table(table), primary_key="id")
    engines = {name: Harness(database, name, tmp_path / f"state-{n}-{name}") for name in ("basic", "lightning")}
    for number, run in enumerate(history):
        for mutation in run["mutations"]:
            _apply(database, table, mutation, constrained)
        refused = run["refused"]

        def acknowledge(pk: str, op: str, refused: int = refused, number: int = number) -> bool:
            return not refused or zlib.crc32(f"{pk}/{op}/{number}".encode()) % refused != 0

        spec = SPECS[run["spec"]]
        found = {
            name: harness.run(spec, acknowledge, run["full_resync"], model=model, sync=f"agree-{n}")
            for name, harness in engines.items()
        }
        basic, lightning = found["basic"], found["lightning"]
        assert lightning.counts == basic.counts, f"run {number}"
        assert sorted(lightning.rows) == sorted(basic.rows), f"run {number}"
        assert _comparable(lightning.batches) == _comparable(basic.batches), f"run {number}"
        assert lightning.invalid == basic.invalid, f"run {number}"
        assert (lightning.new_baseline is None) == (basic.new_baseline is None)
        assert (lightning.remapped is None) == (basic.remapped is None)
