"""Keys and identities in the Basic CDC engine, on a real DuckDB source: floating-point keys compare by
value, composite keys, rows sharing an identifier, and snapshots that belong to another baseline."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from smartingest import service
from smartingest.cdc.base import OP, PK, HashSpec, Identity
from smartingest.cdc.basic import BasicChangeDetector
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.sources.registry import open_source

EMAIL = Identity("email", "email", ignore_case=True)


def _db(tmp_path: Path, *statements: str) -> Path:
    path = tmp_path / "source.duckdb"
    with duckdb.connect(str(path)) as con:
        for statement in statements:
            con.execute(statement)
    return path


def _run(detector, path: Path, spec: HashSpec, primary_key: str | list[str] = "id"):
    """Plan, acknowledge every change, commit; returns (counts, changes as (pk, op), invalid rows, baseline)."""
    source = open_source("db", SourceConfig.model_validate({"type": "duckdb", "path": str(path)}))
    model = ModelConfig(source="db", table="t", primary_key=primary_key)
    change_set = detector.plan("sync", source, model, spec)
    try:
        rows = [
            row
            for batch in change_set.changes(100)
            for row in zip(batch.column(PK).to_pylist(), batch.column(OP).to_pylist(), strict=True)
        ]
        invalid = sorted(((r.pk or ""), r.reason) for r in change_set.invalid_rows())
        change_set.settle([pk for pk, _ in rows], [op for _, op in rows], [True] * len(rows))
        change_set.commit()
        return change_set.counts, sorted(rows), invalid, change_set.new_baseline
    finally:
        change_set.close()


def test_floating_point_keys_compare_by_value_not_by_text(tmp_path):
    path = _db(
        tmp_path,
        "CREATE TABLE t AS SELECT * FROM (VALUES (0.3::DOUBLE, 'a'), (0.1::DOUBLE + 0.2::DOUBLE, 'b')) v(id, x)",
    )
    detector = BasicChangeDetector(tmp_path / "state")
    counts, rows, _, _ = _run(detector, path, HashSpec("id", ("x",), "f"))
    assert (counts.invalid, counts.added) == (0, 2)
    assert [pk for pk, _ in rows] == ["0.3", "0.30000000000000004"]
    counts, rows, _, _ = _run(detector, path, HashSpec("id", ("x",), "f"))
    assert (counts.unchanged, rows) == (2, [])


def test_composite_keys(tmp_path):
    path = _db(
        tmp_path,
        "CREATE TABLE t (account INT, id VARCHAR, x INT)",
        "INSERT INTO t VALUES (1, 'a', 1), (2, 'a', 1), (1, 'b', 1), (1, NULL, 1), (3, 'c', 1), (3, 'c', 2)",
    )
    detector = BasicChangeDetector(tmp_path / "state")
    spec = HashSpec(("account", "id"), ("x",), "f")
    counts, rows, invalid, _ = _run(detector, path, spec, ["account", "id"])
    assert (counts.queried, counts.invalid, counts.added) == (6, 3, 3)
    assert [pk for pk, _ in rows] == ['[1,"a"]', '[1,"b"]', '[2,"a"]']
    assert [pk for pk, _ in invalid] == ["", '[3,"c"]', '[3,"c"]']
    assert "primary key account, id is null" in invalid[0][1]
    _db(tmp_path, "UPDATE t SET x = 9 WHERE account = 2", "DELETE FROM t WHERE id = 'b'")
    counts, rows, _, _ = _run(detector, path, spec, ["account", "id"])
    assert rows == [('[1,"b"]', "removed"), ('[2,"a"]', "changed")]
    assert counts.unchanged == 1


def test_rows_sharing_an_identifier_are_invalid_and_named(tmp_path):
    path = _db(
        tmp_path,
        "CREATE TABLE t (id INT, email VARCHAR)",
        "INSERT INTO t VALUES (1, 'Ann@x.io'), (2, 'ann@X.io'), (3, 'bob@x.io'), (4, NULL), (5, NULL), (6, 'cy@x.io')",
    )
    detector = BasicChangeDetector(tmp_path / "state")
    spec = HashSpec("id", ("email",), "f", EMAIL)
    counts, rows, invalid, _ = _run(detector, path, spec)
    assert (counts.queried, counts.invalid, counts.added) == (6, 2, 4)
    assert [pk for pk, _ in rows] == ["3", "4", "5", "6"]  # null identifiers are the mapping's to reject
    assert invalid[0][0] == "1" and "email 'ann@x.io' (compared ignoring case)" in invalid[0][1]
    assert "with primary key 2:" in invalid[0][1] and "with primary key 1:" in invalid[1][1]
    change_set = detector.plan(
        "sync",
        open_source("db", SourceConfig.model_validate({"type": "duckdb", "path": str(path)})),
        ModelConfig(source="db", table="t", primary_key="id"),
        spec,
    )
    try:
        assert {row.code for row in change_set.invalid_rows()} == {"shared_identifier"}
    finally:
        change_set.close()
    # userIds are compared exactly: the same two values are two users.
    spec = HashSpec("id", ("email",), "g", Identity("email", "userId"))
    counts, _, _, _ = _run(BasicChangeDetector(tmp_path / "other"), path, spec)
    assert counts.invalid == 0


def test_an_unchanged_row_and_a_new_one_with_its_identifier_are_both_held_back(tmp_path):
    path = _db(tmp_path, "CREATE TABLE t AS SELECT 1 AS id, 'a@x.io' AS email")
    detector = BasicChangeDetector(tmp_path / "state")
    spec = HashSpec("id", ("email",), "f", EMAIL)
    _run(detector, path, spec)
    _db(tmp_path, "INSERT INTO t VALUES (2, 'A@x.io')")
    counts, rows, invalid, _ = _run(detector, path, spec)
    assert (counts.invalid, rows, [pk for pk, _ in invalid]) == (2, [], ["1", "2"])
    assert detector.snapshot_size("sync") == 1  # the row synced before keeps its state, nothing is removed


def test_another_baseline_sends_every_row_as_added(tmp_path):
    path = _db(tmp_path, "CREATE TABLE t AS SELECT i AS id, i AS x FROM range(5) r(i)")
    detector = BasicChangeDetector(tmp_path / "state")
    test_project = json.dumps({"destination": "test project", "sync type": "users"})
    production = json.dumps({"destination": "production", "sync type": "users"})
    _run(detector, path, HashSpec("id", ("x",), "f", baseline=test_project))
    counts, _, _, baseline = _run(detector, path, HashSpec("id", ("x",), "f", baseline=test_project))
    assert (counts.unchanged, baseline) == (5, None)
    _db(tmp_path, "DELETE FROM t WHERE id = 0")
    counts, rows, _, baseline = _run(detector, path, HashSpec("id", ("x",), "f", baseline=production))
    assert (counts.added, counts.removed, len(rows)) == (4, 0, 4)
    assert baseline is not None and "destination 'test project' -> 'production'" in baseline
    counts, _, _, baseline = _run(detector, path, HashSpec("id", ("x",), "f", baseline=production))
    assert (counts.unchanged, baseline) == (4, None)


@pytest.mark.parametrize(
    "change", [{"destination": {"api_key": "another-project-key"}}, {"sync": {"match_on": "user_id"}}]
)
def test_pointing_a_sync_elsewhere_is_a_new_baseline(change, pg, sandbox, workspace_factory):
    pg.execute(
        "CREATE TABLE people AS SELECT i AS id, 'u' || i || '@x.io' AS email, 'u' || i AS uid"
        " FROM generate_series(1, 3) i"
    )
    mappings = [{"from": "email", "to": "email"}, {"from": "uid", "to": "userId"}]
    sql = f"select id, email, uid from {pg.schema}.people"
    ws = workspace_factory(sandbox.url, sql=sql, mappings=mappings, destination={"project_type": "hybrid"})
    assert service.run(ws, "customers_to_users").counts["synced"] == 3
    assert service.plan(ws, "customers_to_users").counts.unchanged == 3
    ws = workspace_factory(
        sandbox.url,
        sql=sql,
        mappings=mappings,
        destination={"project_type": "hybrid", **change.get("destination", {})},
        sync=change.get("sync"),
    )
    plan = service.plan(ws, "customers_to_users")
    assert plan.counts.added == 3
    assert any("new baseline" in w for w in plan.warnings), plan.warnings
    run = service.run(ws, "customers_to_users")
    assert any("new baseline" in w for w in run.warnings), run.warnings


def test_runs_show_prints_composite_keys_as_tuples(pg, sandbox, tmp_path):
    from typer.testing import CliRunner

    from smartingest.cli import app
    from tests.conftest import write_project

    pg.execute("CREATE TABLE members (account int, login text, email text)")
    pg.execute("INSERT INTO members VALUES (1, 'x', 'a@x.io'), (2, 'x', 'b@x.io'), (2, 'y', 'not-an-email')")
    project = write_project(
        tmp_path, sandbox.url, sql=f"select * from {pg.schema}.members", mappings=[{"from": "email", "to": "email"}]
    )
    text = project.read_text().replace("primary_key: id", "primary_key: [account, login]")
    project.write_text(text)
    env = {"SMARTINGEST_HOME": str(tmp_path / "home")}
    result = CliRunner().invoke(app, ["--project", str(project), "sync", "run", "customers_to_users"], env=env)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["--project", str(project), "runs", "show", "1"], env=env)
    cells = [line.split("│")[1].strip() for line in result.output.splitlines() if line.startswith("│")]
    assert "(2, 'y')" in cells and "(1, 'x')" in cells and "(2, 'x')" in cells, result.output


def test_a_removed_row_keeps_the_identifier_it_was_committed_with(tmp_path):
    path = _db(tmp_path, "CREATE TABLE t AS SELECT * FROM (VALUES (1, 'Ann@X.io'), (2, 'bob@x.io')) v(id, email)")
    detector = BasicChangeDetector(tmp_path / "state")
    spec = HashSpec("id", ("email",), "f", EMAIL)
    _run(detector, path, spec)
    _db(tmp_path, "DELETE FROM t WHERE id = 1")
    source = open_source("db", SourceConfig.model_validate({"type": "duckdb", "path": str(path)}))
    change_set = detector.plan("sync", source, ModelConfig(source="db", table="t", primary_key="id"), spec)
    try:
        (batch,) = list(change_set.changes(10))
        assert batch.select([PK, OP, "__ident", "email"]).to_pylist() == [
            {PK: "1", OP: "removed", "__ident": "ann@x.io", "email": None}
        ]
    finally:
        change_set.close()
