"""Stable ids: a sync's runs, CDC snapshot and lock belong to its id (its name unless it says `id:`), so
renaming it while keeping the id keeps them. Real PostgreSQL, the sandbox over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smartingest import service
from smartingest.errors import ConfigError
from tests.conftest import create_customers, write_project

OLD = "customers_to_users"
MAPPINGS = [
    {"from": "email", "to": "email"},
    {"variable": "sync_name", "to": "viaName"},
    {"variable": "sync_id", "to": "viaId"},
]


def _rename(project: Path, new: str, **keys: object) -> None:
    doc = yaml.safe_load(project.read_text())
    doc["syncs"][new] = {**doc["syncs"].pop(OLD), **keys}
    project.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_a_renamed_sync_that_keeps_its_id_keeps_its_runs_and_snapshot(pg, sandbox, admin, tmp_path):
    create_customers(pg, 4)
    sql = f"select id, email from {pg.schema}.customers"
    project = write_project(tmp_path, sandbox.url, sql=sql, mappings=MAPPINGS)
    home = tmp_path / "home"
    first = service.run(service.open_workspace(project, home=home), OLD)
    assert (first.status, first.counts["added"]) == ("succeeded", 4)
    assert admin.users()["user1@example.com"]["dataFields"] == {"viaName": OLD, "viaId": OLD}

    _rename(project, "people", id=OLD)
    ws = service.open_workspace(project, home=home)
    assert service.plan(ws, "people").counts.changed == 0  # the snapshot is the one the old name wrote
    [earlier] = service.list_runs(ws, "people")
    assert (earlier.id, earlier.sync_id, earlier.sync_name) == (first.run_id, OLD, OLD)
    [listed] = service.list_syncs(ws)
    assert (listed.name, listed.id, listed.snapshot_rows) == ("people", OLD, 4)
    assert listed.last_run is not None and listed.last_run.id == first.run_id

    pg.execute("UPDATE customers SET email = 'new1@example.com' WHERE id = 1")
    second = service.run(ws, "people")
    assert (second.counts["changed"], second.counts["synced"]) == (1, 1)
    assert admin.users()["new1@example.com"]["dataFields"] == {"viaName": "people", "viaId": OLD}
    assert [r.sync_name for r in service.list_runs(ws, "people")] == ["people", OLD]


def test_a_sync_renamed_without_its_id_starts_afresh(pg, sandbox, tmp_path):
    create_customers(pg, 3)
    project = write_project(
        tmp_path, sandbox.url, sql=f"select id, email from {pg.schema}.customers", mappings=MAPPINGS
    )
    home = tmp_path / "home"
    service.run(service.open_workspace(project, home=home), OLD)
    _rename(project, "people")
    ws = service.open_workspace(project, home=home)
    assert service.plan(ws, "people").counts.added == 3
    assert service.list_runs(ws, "people") == []


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"id": "other"}, "syncs.second.id: 'other' is also the id of syncs.other"),
        ({"id": OLD}, f"syncs.second.id: {OLD!r} is also the id of syncs.{OLD}"),
        ({"id": "1bad"}, "syncs.second.id"),
    ],
    ids=["another's name", "another's id", "not a name"],
)
def test_ids_are_unique_per_kind(sandbox, tmp_path, keys, message):
    project = write_project(tmp_path, sandbox.url)
    doc = yaml.safe_load(project.read_text())
    doc["syncs"]["other"] = dict(doc["syncs"][OLD])
    doc["syncs"]["second"] = {**doc["syncs"][OLD], **keys}
    project.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError, match=message):
        service.open_workspace(project, home=tmp_path / "home")
