"""Shared fixtures: a PostgreSQL schema per test, the sandbox over real HTTP, project files."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy
import yaml

from smartingest import service
from smartingest.sandbox import SandboxServer, SandboxSettings

# The Snowflake emulator, one for the whole session (tests/sources and the sync tests).
pytest_plugins = ["tests.sources.snowflake_fixtures"]

PG_DSN = os.environ.get("SMARTINGEST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
API_KEY = "test-api-key"


class PgSchema:
    """A fresh schema in the test database, and an autocommit connection with it on the search path."""

    def __init__(self, con: psycopg.Connection, schema: str) -> None:
        self.con = con
        self.schema = schema

    def execute(self, query: str, params: Any = None) -> psycopg.Cursor:
        return self.con.execute(query, params)


@pytest.fixture
def pg() -> Iterator[PgSchema]:
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
        con.execute(f"SET search_path TO {schema}")
        try:
            yield PgSchema(con, schema)
        finally:
            con.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for a metadata database: its SQLAlchemy URL; dropped afterwards."""
    name = f"meta_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_DSN.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    """The metadata database the test's workspaces open, one test per kind: SQLite in their home (None),
    or a new PostgreSQL database (its URL, through SMARTINGEST_DATABASE_URL)."""
    if request.param == "sqlite":
        monkeypatch.delenv("SMARTINGEST_DATABASE_URL", raising=False)
        yield None
        return
    with fresh_pg_database() as url:
        monkeypatch.setenv("SMARTINGEST_DATABASE_URL", url)
        yield url  # dropped WITH (FORCE): the workspaces' pooled connections do not hold it


def stored_text(home: Path, url: str | None) -> bytes:
    """Everything the metadata database holds, as bytes to search: the SQLite files in ``home``, or every
    row of every table of the PostgreSQL database at ``url``."""
    if url is None:
        return b"".join(p.read_bytes() for p in home.glob("metadata.db*"))
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as con:
            selects = [sqlalchemy.text(f'SELECT * FROM "{t}"') for t in sqlalchemy.inspect(con).get_table_names()]
            return b"".join(repr(row).encode() for select in selects for row in con.execute(select))
    finally:
        engine.dispose()


@contextmanager
def running_sandbox(data_dir: Path, **settings: Any) -> Iterator[SandboxServer]:
    """A sandbox on a free port with the tests' API key, rate limits off unless ``settings`` turn them on."""
    defaults: dict[str, Any] = {"port": 0, "api_key": API_KEY, "data_dir": data_dir, "rate_limits": False}
    with SandboxServer(SandboxSettings(**{**defaults, **settings})) as server:
        yield server


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    """A sandbox on a free port, rate limits off (tests that need them turn them on)."""
    with running_sandbox(tmp_path / "sandbox") as server:
        yield server


class SandboxAdmin:
    """Test-side view of the sandbox: its users, faults and stats over its admin endpoints."""

    def __init__(self, server: SandboxServer) -> None:
        self.url = server.url
        self.http = httpx.Client(base_url=server.url, timeout=30)

    def users(self) -> dict[str, dict[str, Any]]:
        """Every stored user by email."""
        users: dict[str, dict[str, Any]] = {}
        after: int | None = 0
        while after is not None:
            page = self.http.get("/_sandbox/users", params={"after": after, "limit": 10_000}).json()
            users.update((user["email"], user) for user in page["users"])
            after = page["next_after"]
        return users

    def faults(self, **faults: Any) -> None:
        self.http.put("/_sandbox/faults", json=faults).raise_for_status()

    def requests(self, endpoint: str = "POST /api/users/bulkUpdate", outcome: str | None = None) -> int:
        """How many requests the sandbox answered on an endpoint, with a given outcome ("429", "dropped")."""
        outcomes = self.http.get("/_sandbox/stats").json()["requests"].get(endpoint, {})
        return outcomes.get(outcome, 0) if outcome else sum(outcomes.values())

    def get_fields(self) -> dict[str, str]:
        return self.http.get("/api/users/getFields", headers={"Api-Key": API_KEY}).json()["fields"]


@pytest.fixture
def admin(sandbox: SandboxServer) -> SandboxAdmin:
    return SandboxAdmin(sandbox)


USERS_MAPPINGS = [
    {"from": "email", "to": "email"},
    {"from": "first_name", "to": "firstName"},
    {"from": "plan", "to": "plan"},
    {"from": "ltv", "to": "lifetimeValue"},
    {"from": "city", "to": "address.city"},
    {"from": "signed_up_at", "to": "signedUpAt"},
    {"static": "gold", "to": "tier"},
]


def write_project(
    directory: Path,
    base_url: str,
    sql: str | None = None,
    table: str | None = None,
    source: dict[str, Any] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    destination: dict[str, Any] | None = None,
    sync: dict[str, Any] | None = None,
) -> Path:
    """A project file with one source, model, destination and users sync named customers_to_users."""
    model: dict[str, Any] = {"source": "warehouse", "primary_key": "id"}
    if table:
        model["table"] = table
    else:
        model["sql"] = sql or "select id, email, first_name, plan, ltv, city, signed_up_at from customers"
    project = {
        "sources": {
            "warehouse": source
            or {"type": "postgres", "host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres"}
        },
        "models": {"customers": model},
        "destinations": {
            "iterable": {
                "api_key": API_KEY,
                "base_url": base_url,
                "project_type": "email",
                "environment": "test",
                "backoff_base_seconds": 0.05,
                "backoff_max_seconds": 0.5,
                # Pacing is not under test unless a test says so: its tests set their own scale.
                "rate_limit_scale": 100,
                **(destination or {}),
            }
        },
        "syncs": {
            "customers_to_users": {
                key: value
                for key, value in {
                    "model": "customers",
                    "destination": "iterable",
                    "type": "users",
                    "match_on": "email",
                    "batch_size": 100,
                    "mappings": mappings or USERS_MAPPINGS,
                    **(sync or {}),
                }.items()
                if value is not None  # sync={"match_on": None} leaves a key out (for types without it)
            }
        },
    }
    path = directory / "smartingest.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def workspace_factory(tmp_path: Path):
    """Builds a Workspace from write_project's arguments, with its home in the test's tmp dir."""

    def make(base_url: str, **kwargs: Any) -> service.Workspace:
        path = write_project(tmp_path, base_url, **kwargs)
        return service.open_workspace(path, home=tmp_path / "home")

    return make


def create_customers(con: PgSchema, n: int, start: int = 1) -> None:
    """A customers table with n realistic rows (ids start..start+n-1)."""
    con.execute(
        """CREATE TABLE IF NOT EXISTS customers (
             id bigint PRIMARY KEY, email text, first_name text, plan text, ltv numeric(12,2), city text,
             signed_up_at timestamptz)"""
    )
    con.execute(
        """INSERT INTO customers
           SELECT i, 'user' || i || '@example.com', 'First' || i, (ARRAY['free','pro','team'])[1 + i %% 3],
                  (i * 7 %% 1000) + 0.25, (ARRAY['Paris','Austin','Osaka'])[1 + i %% 3],
                  timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour'
           FROM generate_series(%s::bigint, %s::bigint) AS i""",
        (start, start + n - 1),
    )


# Chromium's own background connections are refused on a closed network: switched off.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, driven by Playwright (imported here: only the browser tests pay for it). One per
    module: Playwright's synchronous API keeps an event loop running in this thread while it is open, and
    the tests after the browser tests call asyncio.run."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20_000)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def ui_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The service as ``serve`` runs it (the web UI and the API) on a loopback port, its definitions in a
    new SQLite metadata database, and a client holding a token (tests/api_support.py)."""
    from tests.api_support import Api

    monkeypatch.chdir(tmp_path)  # no project file: definitions live in the metadata database
    monkeypatch.delenv("SMARTINGEST_SECRET_KEY", raising=False)
    monkeypatch.delenv("SMARTINGEST_DATABASE_URL", raising=False)
    server = Api(tmp_path / "home")
    yield server
    server.stop()
