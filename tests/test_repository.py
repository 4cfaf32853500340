"""Definitions in the metadata database: written through the service, validated as a project file is,
encrypted at rest, renamed with their references and history, imported with `apply` and exported back.
SQLite and a real PostgreSQL metadata database; a real run against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from smartingest import service
from smartingest.cli import app
from smartingest.errors import ConfigError, StateError
from smartingest.repository.secrets import KEY_ENV, new_key
from tests.conftest import API_KEY, create_customers, fresh_pg_database, write_project

SOURCE = {"type": "postgres", "host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres"}
PASSWORD = "planted-password-7f3a"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path, monkeypatch) -> Iterator[str | None]:
    """Where the metadata database is: SQLite under the home (None) or a fresh PostgreSQL database."""
    monkeypatch.chdir(tmp_path)  # no smartingest.yaml here: definitions come from the database
    monkeypatch.delenv(KEY_ENV, raising=False)
    if request.param == "sqlite":
        monkeypatch.delenv("SMARTINGEST_DATABASE_URL", raising=False)
        yield None
        return
    with fresh_pg_database() as url:
        monkeypatch.setenv("SMARTINGEST_DATABASE_URL", url)
        yield url


def _open(tmp_path: Path) -> service.Workspace:
    return service.open_workspace(home=tmp_path / "home")


def _define(ws: service.Workspace, base_url: str, sql: str) -> None:
    service.save_definition(ws, "source", "warehouse", {**SOURCE, "password": PASSWORD})
    service.save_definition(ws, "model", "customers", {"source": "warehouse", "sql": sql, "primary_key": "id"})
    destination = {"api_key": API_KEY, "base_url": base_url, "environment": "test", "rate_limit_scale": 100}
    service.save_definition(ws, "destination", "iterable", destination)
    sync = {
        "type": "users",
        "model": "customers",
        "destination": "iterable",
        "match_on": "email",
        "mappings": [{"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}],
    }
    service.save_definition(ws, "sync", "people", sync)


def _stored_bytes(tmp_path: Path, database: str | None) -> bytes:
    """Every byte the metadata database holds of the definitions."""
    if database is None:
        return b"".join(path.read_bytes() for path in (tmp_path / "home").glob("metadata.db*"))
    with psycopg.connect(database.replace("postgresql+psycopg://", "postgresql://")) as con:
        rows = con.execute("SELECT kind, id, name, body FROM definitions").fetchall()
    return repr(rows).encode()


def test_definitions_saved_in_the_database_run_and_stay_encrypted(pg, sandbox, admin, tmp_path, database):
    create_customers(pg, 3)
    ws = _open(tmp_path)
    assert ws.repository.location.startswith("the metadata database")
    _define(ws, sandbox.url, f"select id, email, plan from {pg.schema}.customers")

    reopened = _open(tmp_path)
    assert list(reopened.config.syncs) == ["people"]
    assert reopened.config.destinations["iterable"].api_key.get_secret_value() == API_KEY
    run = service.run(reopened, "people")
    assert (run.status, run.counts["synced"]) == ("succeeded", 3)
    assert len(admin.users()) == 3

    stored = _stored_bytes(tmp_path, database)
    for secret in (PASSWORD.encode(), API_KEY.encode(), b"select id, email"):
        assert secret not in stored


def test_a_write_is_checked_as_a_project_file_is_and_a_refused_one_changes_nothing(sandbox, tmp_path, database):
    ws = _open(tmp_path)
    _define(ws, sandbox.url, "select 1 as id, 'a@x.io' as email, 'free' as plan")
    with pytest.raises(ConfigError, match=r"models.other.source: no source named 'nowhere'"):
        service.save_definition(ws, "model", "other", {"source": "nowhere", "table": "t", "primary_key": "id"})
    with pytest.raises(ConfigError, match=r"syncs.people.mappings\[1\]"):
        service.save_definition(
            ws,
            "sync",
            "people",
            {
                "type": "users",
                "model": "customers",
                "destination": "iterable",
                "mappings": [{"from": "email", "to": "email"}, {"form": "plan", "to": "plan"}],
            },
        )
    with pytest.raises(ConfigError, match=r"sources\.warehouse: port"):
        service.save_definition(ws, "source", "warehouse", {**SOURCE, "port": "not a port"})
    with pytest.raises(ConfigError, match=r"models\.customers is used by syncs people"):
        service.delete_definition(ws, "model", "customers")
    reopened = _open(tmp_path)
    assert list(reopened.config.models) == ["customers"]
    assert reopened.config.syncs["people"].mappings[1].from_ == "plan"  # type: ignore[union-attr]


def test_a_rename_keeps_the_id_its_history_and_the_references_to_it(pg, sandbox, tmp_path, database):
    create_customers(pg, 2)
    ws = _open(tmp_path)
    _define(ws, sandbox.url, f"select id, email, plan from {pg.schema}.customers")
    first = service.run(ws, "people")
    model = {"id": "customers", "source": "warehouse", "sql": ws.config.models["customers"].sql, "primary_key": "id"}
    service.save_definition(ws, "model", "clients", model)
    sync = {**_plain(ws, "sync", "people"), "id": "people", "model": "clients"}
    assert service.save_definition(ws, "sync", "members", sync) == "people"

    reopened = _open(tmp_path)
    assert (list(reopened.config.models), reopened.config.syncs["members"].model) == (["clients"], "clients")
    assert service.plan(reopened, "members").counts.changed == 0
    assert [r.id for r in service.list_runs(reopened, "members")] == [first.run_id]
    with pytest.raises(ConfigError, match="an object's id never changes"):
        service.save_definition(reopened, "sync", "members", {**sync, "id": "another"})
    service.delete_definition(reopened, "sync", "members")
    assert list(_open(tmp_path).config.syncs) == []


def _code_dir(tmp_path: Path) -> Path:
    """A directory of its own for a project file to apply (the workspace's directory has none)."""
    code = tmp_path / "code"
    code.mkdir()
    return code


def _plain(ws: service.Workspace, kind: str, name: str) -> dict[str, Any]:
    text, _ = service.export_project(ws, with_secrets=True)
    return yaml.safe_load(text)[kind + "s"][name]


def test_apply_is_idempotent_and_export_writes_a_file_apply_takes_back(sandbox, tmp_path, database, monkeypatch):
    project = write_project(_code_dir(tmp_path), sandbox.url)
    doc = yaml.safe_load(project.read_text())
    # Top-level settings travel too, their secrets sealed like the definitions'.
    doc["sync_quota"] = 8
    doc["alerts"] = [{"type": "webhook", "url": "https://ops.example.com/hook", "secret": PASSWORD}]
    project.write_text(yaml.safe_dump(doc))
    ws = _open(tmp_path)
    applied = service.apply_project(ws, project)
    assert applied.created == [
        "settings",
        "sources.warehouse",
        "models.customers",
        "destinations.iterable",
        "syncs.customers_to_users",
    ]
    reopened = _open(tmp_path)
    assert reopened.config.sync_quota == 8
    assert reopened.config.alerts[0].secret.get_secret_value() == PASSWORD  # type: ignore[union-attr]
    assert PASSWORD.encode() not in _stored_bytes(tmp_path, database)
    again = service.apply_project(_open(tmp_path), project)
    assert (again.created, again.updated, len(again.unchanged)) == ([], [], 5)

    doc = yaml.safe_load(project.read_text())
    doc["syncs"]["customers_to_users"]["batch_size"] = 50
    project.write_text(yaml.safe_dump(doc))
    changed = service.apply_project(_open(tmp_path), project)
    assert (changed.updated, len(changed.unchanged)) == (["syncs.customers_to_users"], 4)

    text, variables = service.export_project(_open(tmp_path))
    assert variables == ["SETTINGS_ALERTS_0_SECRET", "DESTINATIONS_ITERABLE_API_KEY"]
    assert API_KEY not in text and PASSWORD not in text
    exported = tmp_path / "exported.yaml"
    exported.write_text(text)
    monkeypatch.setenv("DESTINATIONS_ITERABLE_API_KEY", API_KEY)
    monkeypatch.setenv("SETTINGS_ALERTS_0_SECRET", PASSWORD)
    assert len(service.apply_project(_open(tmp_path), exported).unchanged) == 5

    doc["syncs"] = {}
    project.write_text(yaml.safe_dump(doc))
    pruned = service.apply_project(_open(tmp_path), project, prune=True)
    assert pruned.deleted == ["syncs.customers_to_users"]


def test_a_project_file_workspace_refuses_writes_and_apply(sandbox, tmp_path):
    ws = service.open_workspace(write_project(tmp_path, sandbox.url), home=tmp_path / "home")
    with pytest.raises(ConfigError, match="config as code"):
        service.save_definition(ws, "model", "m", {"source": "warehouse", "table": "t", "primary_key": "id"})
    with pytest.raises(ConfigError, match="run it without --project"):
        service.apply_project(ws, tmp_path / "smartingest.yaml")


def test_keys_rotate_and_a_wrong_key_is_told(sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old, new = new_key(), new_key()
    monkeypatch.setenv(KEY_ENV, old)
    _define(_open(tmp_path), sandbox.url, "select 1 as id, 'a@x.io' as email, 'free' as plan")

    monkeypatch.setenv(KEY_ENV, f"{new},{old}")
    assert service.rotate_secrets(_open(tmp_path)) == 4
    monkeypatch.setenv(KEY_ENV, new)
    assert list(_open(tmp_path).config.syncs) == ["people"]
    monkeypatch.setenv(KEY_ENV, old)
    with pytest.raises(StateError, match="cannot be decrypted with the key of SMARTINGEST_SECRET_KEY"):
        _open(tmp_path)
    monkeypatch.setenv(KEY_ENV, "not-a-key")
    with pytest.raises(ConfigError, match="SMARTINGEST_SECRET_KEY: not a key"):
        _open(tmp_path)


def test_the_command_line_applies_exports_and_rotates(sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(KEY_ENV, raising=False)
    project = write_project(_code_dir(tmp_path), sandbox.url)
    env = {"SMARTINGEST_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    applied = runner.invoke(app, ["apply", str(project)], env=env)
    assert applied.exit_code == 0, applied.output
    assert (
        "created: sources.warehouse, models.customers, destinations.iterable, syncs.customers_to_users"
        in applied.output
    )
    listed = runner.invoke(app, ["sync", "list", "--json"], env=env)
    assert listed.exit_code == 0 and '"customers_to_users"' in listed.output
    exported = runner.invoke(app, ["export"], env=env)
    assert exported.exit_code == 0 and "${DESTINATIONS_ITERABLE_API_KEY}" in exported.output
    assert (tmp_path / "home" / "secret.key").stat().st_mode & 0o777 == 0o600
    refused = runner.invoke(app, ["--project", str(project), "apply", str(project)], env=env)
    assert refused.exit_code == 2 and "without --project" in refused.output
