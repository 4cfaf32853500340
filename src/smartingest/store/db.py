"""Opening the metadata database and bringing its schema up to date with Alembic."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from smartingest.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration; a test checks it against the migrations directory. Knowing it lets a
# database that is up to date skip importing Alembic (a noticeable part of every command's start).
HEAD_REVISION = "0015"
MIGRATION_WAIT_SECONDS = 60.0


def open_database(url: str, migrate: bool = True) -> Engine:
    """An engine on ``url`` with the schema migrated to the latest version.

    SQLite gets WAL and a busy timeout so the CLI and a web server can share one file.
    Raises ConfigError when the URL is malformed or the database unreachable.
    """
    try:
        engine = create_engine(url, future=True, pool_pre_ping=True)
    except (SQLAlchemyError, ValueError) as exc:
        raise ConfigError(f"database_url {_redact(url)} is not usable: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        try:
            if not _at_head(engine):
                _upgrade_once(engine)
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc  # the driver's own error, when SQLAlchemy wrapped one
            raise ConfigError(f"cannot open the metadata database {_redact(url)}: {cause}") from exc
    return engine


def _upgrade_once(engine: Engine) -> None:
    """Upgrade, or let the process already upgrading the same database finish: two processes opening a new
    database at once (two workers starting) both find it behind, and one of them fails to create what the
    other just created."""
    try:
        upgrade(engine)
    except SQLAlchemyError:
        deadline = time.monotonic() + MIGRATION_WAIT_SECONDS
        while time.monotonic() < deadline:
            if _at_head(engine):
                return
            time.sleep(0.2)
        raise


def _at_head(engine: Engine) -> bool:
    """Whether the schema is the newest; False while another process migrating a SQLite file holds it
    locked (its migration may hold the lock past the busy timeout of a reader that started in between)."""
    try:
        return current_revision(engine) == HEAD_REVISION
    except OperationalError as exc:
        if engine.dialect.name == "sqlite" and "locked" in str(exc):
            return False
        raise


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> None:
    """Apply every pending migration."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # The timeout first: switching to WAL takes a lock, and without it another process holding one (two
    # workers starting at once) fails this connection at once with "database is locked".
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"
