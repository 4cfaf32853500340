"""Bad input gets a clear error naming what to fix, and never corrupts state."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from smartingest import service
from smartingest.cli import app
from smartingest.config import parse_project
from smartingest.errors import ConfigError, MappingError, ModelError, SourceAuthError, SourceConnectionError
from tests.conftest import create_customers, write_project


def _sql(pg) -> str:
    return f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"


def test_bad_sql_fails_the_run_with_the_databases_message(pg, sandbox, workspace_factory):
    ws = workspace_factory(sandbox.url, sql="selec id from nowhere")
    result = service.run(ws, "customers_to_users")
    assert result.status == "failed"
    assert "syntax error" in (result.error or "")
    with pytest.raises(ModelError, match="syntax error"):
        service.plan(ws, "customers_to_users")


def test_missing_table_names_it(pg, sandbox, workspace_factory):
    ws = workspace_factory(sandbox.url, sql=f"select * from {pg.schema}.no_such_table")
    with pytest.raises(ModelError, match="no_such_table"):
        service.plan(ws, "customers_to_users")


def test_missing_primary_key_column_is_named(pg, sandbox, workspace_factory):
    create_customers(pg, 3)
    ws = workspace_factory(sandbox.url, sql=f"select email, first_name from {pg.schema}.customers")
    with pytest.raises(ModelError, match="'id'"):
        service.plan(ws, "customers_to_users")


def test_missing_mapped_column_is_named(pg, sandbox, workspace_factory):
    create_customers(pg, 3)
    ws = workspace_factory(
        sandbox.url,
        sql=f"select id, email from {pg.schema}.customers",
        mappings=[{"from": "email", "to": "email"}, {"from": "nickname", "to": "nick"}],
    )
    with pytest.raises(MappingError, match=r"no column 'nickname'.*columns: id, email"):
        service.plan(ws, "customers_to_users")
    result = service.run(ws, "customers_to_users")
    assert result.status == "failed"
    assert "nickname" in (result.error or "")


def test_wrong_credentials_and_host(pg, sandbox, workspace_factory):
    ws = workspace_factory(
        sandbox.url,
        sql=_sql(pg),
        source={"type": "postgres", "host": "127.0.0.1", "database": "test", "user": "nobody_here", "password": "x"},
    )
    with pytest.raises(SourceAuthError, match="nobody_here"):
        service.plan(ws, "customers_to_users")
    ws = workspace_factory(
        sandbox.url,
        sql=_sql(pg),
        source={"type": "postgres", "host": "127.0.0.1", "port": 1, "database": "test", "user": "postgres"},
    )
    with pytest.raises(SourceConnectionError, match=r"127\.0\.0\.1:1"):
        service.check_source(ws, "warehouse")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sources: [oops", "invalid YAML at line 1"),
        (
            "sources: {}\nmodels:\n  m: {source: nowhere, sql: select 1, primary_key: id}\n",
            "models.m.source: no source named 'nowhere'",
        ),
        (
            "sources:\n  s: {type: sqlite, path: x.db}\nmodels:\n  m: {source: s, sql: select 1, primary_key: id, "
            "primry: x}\n",
            "models.m.primry: unknown key",
        ),
        (
            "sources:\n  s: {type: sqlite, path: x.db}\nmodels:\n  m: {source: s, primary_key: id}\n",
            "set exactly one of 'sql' or 'table'",
        ),
        (
            "destinations:\n  d: {api_key: '${NO_SUCH_VARIABLE_X}'}\n",
            "destinations.d.api_key: environment variable NO_SUCH_VARIABLE_X is not set",
        ),
        ("destinations:\n  d: {api_key: k, project_type: emial}\n", "destinations.d.project_type"),
    ],
)
def test_malformed_project_files_name_the_problem(text: str, expected: str):
    with pytest.raises(ConfigError) as info:
        parse_project(text, env={})
    assert expected in str(info.value)


def test_sync_settings_are_validated(sandbox, tmp_path: Path):
    path = write_project(tmp_path, sandbox.url, sync={"schedule": {"every": "5m"}, "batch_size": 5000})
    with pytest.raises(ConfigError) as info:
        service.open_workspace(path, home=tmp_path / "home")
    assert "batch_size" in str(info.value)
    assert "at most every 15 minutes" in str(info.value)


def test_env_var_secrets_are_interpolated(sandbox, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MY_ITERABLE_KEY", "from-env")
    path = write_project(tmp_path, sandbox.url, destination={"api_key": "${MY_ITERABLE_KEY}"})
    ws = service.open_workspace(path, home=tmp_path / "home")
    key = ws.config.destinations["iterable"].api_key
    assert key.get_secret_value() == "from-env"
    assert "from-env" not in repr(ws.config)


def test_cli_reports_errors_without_a_traceback(sandbox, tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(app, ["--project", str(tmp_path / "missing.yaml"), "sync", "run", "x"])
    assert result.exit_code == 2
    assert "not found" in result.output
    assert "Traceback" not in result.output
    path = write_project(tmp_path, sandbox.url)
    result = runner.invoke(
        app, ["--project", str(path), "sync", "run", "nope"], env={"SMARTINGEST_HOME": str(tmp_path)}
    )
    assert result.exit_code == 2
    assert "no sync named 'nope' (defined: customers_to_users)" in result.output
