"""Teradata fixtures: a fake of teradatasql at the driver boundary (Teradata's wire protocol is a binary one no
test here can serve), answering from the contract's dataset through ``FakeEngine`` in Teradata's SQL.

The fake stands in for the one name the connector imports (``smartingest.sources.teradata.teradatasql``);
everything but ``connect`` is the real module (its exception classes). It does what teradatasql does with what
the connector gives it where that needs no database: the connection parameters go through the driver's own
parser (its Go library: an unknown parameter or a bad value fails as it would), request-scope escape functions
(``{fn teradata_try_fastexport}``) are taken off the request. It answers as Teradata would: errors in the
driver's format (``[Teradata Database] [Error 3807] [SQLState 42S02] ...``) with Teradata's codes for a logon
refused, a default database that does not exist, no SELECT access, an object or a column that does not exist,
a syntax error (``TOP 0`` included: TOP takes a nonzero positive number, says Teradata's manual), the request
aborted at its ``request_timeout``; a description with Teradata's type names; and values as the driver gives
them with ``teradata_values=false``: DECIMAL, DATE and TIMESTAMP as their text, BOOLEAN (which Teradata does not
have) as BYTEINT (Decimal, date and datetime objects without that parameter).

What it cannot show: Teradata's own parser and type system (its SQL as sqlglot reads it, run by DuckDB),
FastExport's sessions (the escape is recorded, the rows come the same way), TLS and TDGSS encryption.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import teradatasql

from smartingest.sources.teradata import TeradataSource

from .driver_fakes import DialectEngine, EngineError, FakeServer, dial, run

TERADATA_USER, TERADATA_PASSWORD = "reader", "r3ader-Pa55"
TERADATA_DATABASE = "smartingest"
VERSION = "[Version 20.0.0.72]"

_CATALOG = (
    'CREATE SCHEMA "SYSLIB"',
    'CREATE TABLE "SYSLIB".fnc (name VARCHAR)',
    "CREATE SCHEMA dbc",
    "CREATE VIEW dbc.tablesvx AS SELECT table_schema AS DatabaseName, table_name AS TableName,"
    " CASE table_type WHEN 'VIEW' THEN 'V' ELSE 'T' END AS TableKind FROM information_schema.tables"
    " WHERE table_schema IN ('smartingest', 'SYSLIB')",
)


def database_error(code: int, sqlstate: str, text: str, session: int = 1001) -> teradatasql.OperationalError:
    """teradatasql's exception for an error the database answered, in the driver's own format."""
    return teradatasql.OperationalError(
        f"{VERSION} [Session {session}] [Teradata Database] [Error {code}] [SQLState {sqlstate}] {text}\n"
        " at gosqldriver/teradatasql.formatError ErrorUtil.go:84"
    )


def driver_error(code: int, sqlstate: str, text: str, cause: str = "") -> teradatasql.OperationalError:
    """teradatasql's exception for an error of its own (the Go driver's)."""
    caused = f"\nCaused by {cause}" if cause else ""
    return teradatasql.OperationalError(
        f"{VERSION} [Session 0] [Teradata SQL Driver] [Error {code}] [SQLState {sqlstate}] {text}\n"
        f" at gosqldriver/teradatasql.formatError ErrorUtil.go:84{caused}"
    )


def parse_parameters(parameters: dict[str, str]) -> None:
    """The driver's own parser of connection parameters (its Go library); its error raised as it would."""
    teradatasql._loadLibrary()
    error, log = ctypes.POINTER(ctypes.c_char)(), ctypes.c_uint64()
    teradatasql.goside.goParseParams(json.dumps(parameters).encode(), ctypes.byref(error), ctypes.byref(log))
    if error:
        message = ctypes.string_at(error).decode()
        teradatasql.goside.goFreePointer(0, error)
        raise teradatasql.OperationalError(message)


@dataclass
class FakeTeradataServer(FakeServer):
    """A Teradata system as the fake driver sees it."""

    parameters_seen: list[dict[str, str]] = field(default_factory=list)  # each connect's, the password left out


class FakeTeradatasql:
    """teradatasql with ``connect`` over a FakeTeradataServer; every other name is the real module's."""

    def __init__(self, server: FakeTeradataServer) -> None:
        self.server = server

    def __getattr__(self, name: str) -> Any:
        return getattr(teradatasql, name)

    def connect(self, **parameters: str) -> FakeConnection:
        parse_parameters(parameters)
        self.server.parameters_seen.append({k: v for k, v in parameters.items() if k != "password"})
        host, port = parameters["host"], int(parameters.get("dbs_port", "1025"))
        try:
            sock = dial(host, port, int(parameters.get("connect_timeout", "10000")) / 1000)
        except OSError as exc:
            raise driver_error(444, "08001", f"Failed to connect to {host}", f"dial tcp {host}:{port}: {exc}") from None
        try:
            self._logon(parameters)
        except BaseException:
            sock.close()
            raise
        values_as_text = parameters.get("teradata_values", "true") == "false"
        return FakeConnection(self.server, sock, int(parameters.get("request_timeout", "0")), values_as_text)

    def _logon(self, parameters: dict[str, str]) -> None:
        if self.server.logins.get(parameters.get("user", "").lower()) != parameters.get("password"):
            raise database_error(8017, "28000", "The UserId, Password or Account is invalid.", session=0)
        database = parameters.get("database")
        if database is not None and database.lower() != TERADATA_DATABASE:
            raise database_error(3802, "42S02", f"Database '{database}' does not exist.")


class FakeConnection:
    def __init__(
        self, server: FakeTeradataServer, sock: socket.socket, request_timeout: int, values_as_text: bool
    ) -> None:
        self.server = server
        self.sock = sock
        self.request_timeout = request_timeout
        self.values_as_text = values_as_text  # teradata_values=false

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def close(self) -> None:
        self.sock.close()


_ESCAPES = re.compile(r"^(?:\{fn teradata_[a-z_]+(?:\([^)]*\))?\})+")
_TOP_ZERO = re.compile(r"\bTOP\s+0\b", re.I)
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.description: list[list[Any]] | None = None
        self.columntypename: list[str] = []
        self._rows: Iterator[tuple[Any, ...]] = iter(())

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, request: str) -> None:
        server = self.conn.server
        server.received.append(request)
        sql = _ESCAPES.sub("", request)  # request-scope escapes never reach the database
        if _TOP_ZERO.search(sql):
            raise database_error(3706, "42000", "Syntax error: expected something between 'TOP' and the integer '0'.")
        try:
            table = run(server, sql, self.conn.request_timeout)
        except EngineError as exc:
            raise _engine_error(exc, sql) from None
        except PermissionError as exc:
            raise database_error(
                3523, "42000", f"The user does not have SELECT access to {TERADATA_DATABASE}.{exc.args[0]}."
            ) from None
        except TimeoutError:
            raise database_error(3110, "25000", "The transaction was aborted by the user.") from None
        kinds = [_teradata_type(t) for t in server.engine.column_types(sql)]
        self.columntypename = [kind for kind, _, _ in kinds]
        self.description = [
            [name, str, None, 0, precision, scale, True]
            for name, (_, precision, scale) in zip(table.column_names, kinds, strict=True)
        ]
        give = _as_text if self.conn.values_as_text else _as_python
        self._rows = iter([tuple(give(v) for v in row.values()) for row in table.to_pylist()])

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        return [row for _, row in zip(range(size), self._rows, strict=False)]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def close(self) -> None:
        self._rows = iter(())


def _teradata_type(duck: str) -> tuple[str, int, int]:
    """(type name, precision, scale) of the Teradata column a DuckDB type stands for."""
    found = _DECIMAL.fullmatch(duck)
    if found:
        return "DECIMAL", int(found[1]), int(found[2])
    named = {
        "HUGEINT": ("DECIMAL", 38, 0),
        "DOUBLE": ("FLOAT", 0, 0),
        "BOOLEAN": ("BYTEINT", 0, 0),
        "TIMESTAMP WITH TIME ZONE": ("TIMESTAMP WITH TIME ZONE", 26, 6),
        "TIMESTAMP": ("TIMESTAMP", 26, 6),
        "BLOB": ("VARBYTE", 0, 0),
    }
    return named.get(duck, (duck, 0, 0))


def _as_python(value: Any) -> Any:
    """A value as teradatasql gives it by default: Decimal, date and datetime objects; BYTEINT for a boolean."""
    return int(value) if isinstance(value, bool) else value


def _as_text(value: Any) -> Any:
    """A value as teradatasql gives it with teradata_values=false: DECIMAL, DATE and TIMESTAMP as their text."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _engine_error(exc: EngineError, sql: str) -> teradatasql.OperationalError:
    if exc.kind == "missing_table":
        return database_error(3807, "42S02", f"Object '{exc.name}' does not exist.")
    if exc.kind == "missing_column":
        return database_error(3810, "52003", f"Column/Parameter '{exc.name}' does not exist.")
    if exc.kind == "syntax":
        near = re.search(r"at or near '([^']*)'", exc.message)
        word = near[1] if near else sql.split()[0]
        return database_error(3706, "42000", f"Syntax error: expected something between the word '{word}' and ...")
    if exc.kind == "write":
        verb = sql.split()[0].upper()
        return database_error(3523, "42000", f"The user does not have {verb} access to {TERADATA_DATABASE}.people.")
    return database_error(2620, "22018", f"The format or data contains a bad character. ({exc.message})")


# ------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def teradata_server() -> Iterator[FakeTeradataServer]:
    server = FakeTeradataServer(
        DialectEngine("teradata", TERADATA_DATABASE, _CATALOG), logins={TERADATA_USER: TERADATA_PASSWORD}
    )
    try:
        yield server
    finally:
        server.close()


def teradata_settings(server: FakeServer, **overrides: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "user": TERADATA_USER,
        "password": TERADATA_PASSWORD,
        "database": TERADATA_DATABASE,
        "sslmode": "disable",
    } | overrides


@pytest.fixture
def fake_teradata(teradata_server: FakeTeradataServer, monkeypatch: pytest.MonkeyPatch) -> FakeTeradataServer:
    """The Teradata connector's driver replaced by the fake over ``teradata_server``."""
    teradata_server.reset()
    monkeypatch.setattr("smartingest.sources.teradata.teradatasql", FakeTeradatasql(teradata_server))
    return teradata_server


TERADATA_TYPES = {
    "id": pa.int64(),  # BIGINT
    "name": pa.string(),  # VARCHAR
    "balance": pa.decimal128(12, 2),
    "score": pa.float64(),  # FLOAT
    "active": pa.int64(),  # BYTEINT: Teradata has no BOOLEAN
    "born": pa.date32(),
    "updated_at": pa.timestamp("us", tz="UTC"),  # TIMESTAMP WITH TIME ZONE
    "attrs": pa.string(),  # JSON
}


@pytest.fixture
def teradata_case(fake_teradata: FakeTeradataServer) -> Any:
    from .conftest import Case, _expected_rows

    rows = _expected_rows(decimal=True, native_dates=True)
    for row in rows:
        row["active"] = None if row["active"] is None else int(row["active"])
    settings = teradata_settings(fake_teradata)
    return Case(
        name="teradata",
        source=TeradataSource(TeradataSource.Settings(**settings)),
        schema_name=TERADATA_DATABASE,
        types=TERADATA_TYPES,
        rows=rows,
        is_released=lambda wait=2.0: fake_teradata.released(wait),
        settings=settings,
        released_means=(
            "no connection of the source's to the fake server is open (a real socket each, held while the driver's "
            "connection is; FastExport's own sessions are not faked)"
        ),
    )
