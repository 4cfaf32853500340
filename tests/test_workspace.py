"""Opening a project: where state, metadata and file sources are found."""

from __future__ import annotations

import yaml

from smartingest import service


def _write(directory, **top):
    project = {
        "sources": {"local": {"type": "duckdb", "path": "data/source.duckdb"}},
        "models": {"m": {"source": "local", "table": "users", "primary_key": "id"}},
        **top,
    }
    path = directory / "project" / "smartingest.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(project))
    return path


def test_relative_paths_are_relative_to_the_project_file(tmp_path, monkeypatch):
    path = _write(tmp_path, state_dir="cdc-state")
    monkeypatch.chdir(tmp_path)
    ws = service.open_workspace(path, home=tmp_path / "home")
    assert ws.state_dir == tmp_path / "project" / "cdc-state"
    assert ws.config.sources["local"].connector_settings()["path"] == str(tmp_path / "project" / "data/source.duckdb")
    assert (tmp_path / "home" / "metadata.db").exists()


def test_home_and_database_url_from_the_environment(tmp_path, monkeypatch):
    path = _write(tmp_path)
    monkeypatch.setenv("SMARTINGEST_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("SMARTINGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'meta.db'}")
    ws = service.open_workspace(path)
    assert ws.state_dir == tmp_path / "elsewhere" / "state"
    assert (tmp_path / "meta.db").exists()
    assert not (tmp_path / "elsewhere" / "metadata.db").exists()


def test_home_relative_source_paths_are_left_to_the_connector(tmp_path):
    path = _write(tmp_path)
    text = path.read_text().replace("data/source.duckdb", "~/source.duckdb")
    path.write_text(text)
    ws = service.open_workspace(path, home=tmp_path / "home")
    assert ws.config.sources["local"].connector_settings()["path"] == "~/source.duckdb"


def test_a_users_sync_from_a_sqlite_file_next_to_the_project(tmp_path, sandbox, admin):
    import sqlite3

    (tmp_path / "project").mkdir()
    with sqlite3.connect(tmp_path / "project" / "app.db") as con:
        con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, score REAL, vip BOOLEAN)")
        con.executemany(
            "INSERT INTO users VALUES (?, ?, ?, ?)", [(i, f"s{i}@example.com", i / 2, i % 2) for i in range(1, 31)]
        )
    path = tmp_path / "project" / "smartingest.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "sources": {"app": {"type": "sqlite", "path": "app.db"}},
                "models": {"users": {"source": "app", "table": "users", "primary_key": "id"}},
                "destinations": {"sandbox": {"api_key": "test-api-key", "base_url": sandbox.url}},
                "syncs": {
                    "s": {
                        "model": "users",
                        "destination": "sandbox",
                        "type": "users",
                        "mappings": [
                            {"from": "email", "to": "email"},
                            {"from": "score", "to": "score"},
                            {"from": "vip", "to": "vip"},
                        ],
                    }
                },
            }
        )
    )
    ws = service.open_workspace(path, home=tmp_path / "home")
    result = service.run(ws, "s")
    assert result.status == "succeeded", result.error
    assert result.counts["synced"] == 30
    assert admin.users()["s3@example.com"]["dataFields"] == {"score": 1.5, "vip": True}
    assert service.run(ws, "s").counts["unchanged"] == 30
