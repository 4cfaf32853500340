"""SQL Server and Synapse fixtures: a fake of mssql-python at the driver boundary (TDS is a binary protocol no
test here can serve), answering from the contract's dataset through ``FakeEngine`` in T-SQL.

The fake stands in for the one name the connector imports (``smartingest.sources.sqlserver.mssql_python``). It
does what mssql-python does with what the connector gives it, where that can be done without a server: the
connection-string keys go through mssql-python's own parser and builder (an unknown or reserved key fails as it
would), errors are mssql-python's own exception classes built by its own SQLSTATE table, with the ODBC driver's
message prefixes. It answers as SQL Server would: its messages for a login refused, a database it cannot open,
a permission denied, an invalid object or column name, incorrect syntax, the query timeout; datetimeoffset as
mssql-python's UTC timestamps (``+00:00``), BIT as booleans, batches of at most its own size.

What it cannot show: SQL Server's own parser and type system (T-SQL as sqlglot reads it, run by DuckDB), TLS
and Entra logins (the keys the connector sends are checked, not a handshake), the attention that stops a
statement at its timeout (the fake raises the driver's timeout error after waiting that long).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import mssql_python.exceptions as mssql_errors
import pyarrow as pa
import pytest
from mssql_python.connection import Connection as RealConnection

from smartingest.sources.sqlserver import SqlServerSource, SynapseSource

from .driver_fakes import DialectEngine, EngineError, FakeServer, dial, run

SQLSERVER_USER, SQLSERVER_PASSWORD = "reader", "r3ader;Pa55{w}rd"
SQLSERVER_DATABASE = "smartingest"
ODBC = "[Microsoft][ODBC Driver 18 for SQL Server]"
CHUNK_ROWS = 400  # the most rows the fake's arrow_batch returns at once ("up to batch_size")


def error(sqlstate: str, text: str, *, server: bool = True) -> mssql_errors.Exception:
    """mssql-python's exception for an ODBC diagnostic, as its own SQLSTATE table builds it."""
    message = ODBC + ("[SQL Server]" if server else "") + text
    built = mssql_errors.sqlstate_to_exception(sqlstate, message)
    return built or mssql_errors.DatabaseError(f"An error occurred with SQLSTATE code: {sqlstate}", message)


@dataclass
class FakeMssqlServer(FakeServer):
    """A SQL Server (or, with ``synapse``, a Synapse pool) as the fake driver sees it."""

    synapse: bool = False
    logins_seen: list[dict[str, str]] = field(default_factory=list)  # the normalised keys of each login


class FakeMssql:
    """mssql-python's ``connect`` over a FakeMssqlServer; the rest of the module is the real one's."""

    def __init__(self, server: FakeMssqlServer) -> None:
        self.server = server
        self.exceptions = mssql_errors

    def connect(
        self, connection_str: str = "", autocommit: bool = False, timeout: int = 0, **keys: Any
    ) -> FakeConnection:
        _, params = RealConnection._construct_connection_string(None, connection_str, **keys)  # type: ignore[arg-type]
        self.server.logins_seen.append(params)
        host, _, port = params["Server"].removeprefix("tcp:").rpartition(",")
        try:
            sock = dial(host, int(port), timeout or 15)
        except OSError as exc:
            code = "0x2AF9" if isinstance(exc, socket.gaierror) else "0x2749"
            raise error("08001", f"TCP Provider: Error code {code}", server=False) from None
        try:
            self._login(params)
        except BaseException:
            sock.close()
            raise
        return FakeConnection(self.server, sock)

    def _login(self, params: dict[str, str]) -> None:
        user, password = params.get("UID", ""), params.get("PWD")
        if self.server.logins.get(user) != password:
            if "Authentication" in params:
                raise error(
                    "FA004",
                    f"Failed to authenticate the user '{user}' in Active Directory (Authentication option is "
                    f"'{params['Authentication']}'). AADSTS7000215: Invalid client secret provided.",
                    server=False,
                )
            raise error("28000", f"Login failed for user '{user}'.")
        if not self.server.knows_database(params.get("Database")):
            raise error(
                "42000",
                f'Cannot open database "{params["Database"]}" requested by the login. The login failed.',
            )


class FakeConnection:
    def __init__(self, server: FakeMssqlServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.timeout = 0  # the query timeout, seconds, as mssql-python's Connection.timeout
        self.context: dict[str, str] = {}

    def cursor(self) -> FakeCursor:
        if self.sock.fileno() < 0:
            raise mssql_errors.InterfaceError("Connection is closed", "")
        return FakeCursor(self)

    def close(self) -> None:
        self.sock.close()


_SESSION_CONTEXT = re.compile(r"EXEC sys\.sp_set_session_context @key = N'(.*?)', @value = N'(.*?)'", re.S)


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.description: list[tuple[Any, ...]] | None = None
        self._result: pa.Table | None = None

    def execute(self, sql: str) -> FakeCursor:
        server = self.conn.server
        server.received.append(sql)
        found = _SESSION_CONTEXT.match(sql)
        if found:
            if server.synapse:  # dedicated SQL pools have no session context
                raise error("42000", "Could not find stored procedure 'sys.sp_set_session_context'.")
            self.conn.context[found[1]] = found[2].replace("''", "'")
            return self
        try:
            table = run(server, sql, self.conn.timeout)
        except EngineError as exc:
            raise _engine_error(exc, sql) from None
        except PermissionError as exc:
            verb = "SELECT"
            raise error(
                "42000",
                f"The {verb} permission was denied on the object '{exc.args[0]}', database "
                f"'{SQLSERVER_DATABASE}', schema 'dbo'.",
            ) from None
        except TimeoutError:
            raise error("HYT00", "Query timeout expired", server=False) from None
        self._result = _as_driver_sends(table)
        self.description = [(f.name, str, None, 0, 0, 0, True) for f in self._result.schema] or None
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._result.to_pylist() if self._result is not None else []
        return [tuple(row.values()) for row in rows]

    def arrow_reader(self, batch_size: int = 8192) -> pa.RecordBatchReader:
        table = self._result if self._result is not None else pa.table({})
        size = max(1, min(batch_size, CHUNK_ROWS))
        return pa.RecordBatchReader.from_batches(table.schema, iter(table.to_batches(max_chunksize=size)))

    def close(self) -> None:
        self._result = None


def _engine_error(exc: EngineError, sql: str) -> mssql_errors.Exception:
    if exc.kind == "missing_table":
        return error("42S02", f"Invalid object name '{exc.name}'.")
    if exc.kind == "missing_column":
        return error("42S22", f"Invalid column name '{exc.name}'.")
    if exc.kind == "syntax":
        near = re.search(r"at or near '([^']*)'", exc.message)
        return error("42000", f"Incorrect syntax near '{near[1] if near else sql.split()[0]}'.")
    if exc.kind == "write":
        return error("42000", f"The {sql.split()[0].upper()} permission was denied on the object 'people'.")
    return error("22018", exc.message)


def _as_driver_sends(table: pa.Table) -> pa.Table:
    """DuckDB's result typed as mssql-python sends SQL Server's: datetimeoffset as ``tsu:+00:00``, JSON text as
    plain strings (NVARCHAR), everything else as DuckDB has it (its types are SQL Server's here)."""
    columns, fields = [], []
    for f, column in zip(table.schema, table.columns, strict=True):
        typ = f.type
        if isinstance(typ, pa.BaseExtensionType):
            column, typ = column.cast(typ.storage_type), typ.storage_type
        if pa.types.is_timestamp(typ) and typ.tz is not None:
            typ = pa.timestamp("us", tz="+00:00")
            column = column.cast(typ)
        columns.append(column)
        fields.append(pa.field(f.name, typ))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


# ------------------------------------------------------------------------------------------------- fixtures


def _server(synapse: bool) -> FakeMssqlServer:
    return FakeMssqlServer(
        DialectEngine("tsql", "dbo"),
        logins={SQLSERVER_USER: SQLSERVER_PASSWORD},
        databases={SQLSERVER_DATABASE},
        synapse=synapse,
    )


@pytest.fixture(scope="session")
def sqlserver_server() -> Iterator[FakeMssqlServer]:
    server = _server(synapse=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def synapse_server() -> Iterator[FakeMssqlServer]:
    server = _server(synapse=True)
    try:
        yield server
    finally:
        server.close()


def sqlserver_settings(server: FakeServer, **overrides: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "database": SQLSERVER_DATABASE,
        "user": SQLSERVER_USER,
        "password": SQLSERVER_PASSWORD,
        "trust_server_certificate": True,
    } | overrides


@pytest.fixture
def fake_mssql(sqlserver_server: FakeMssqlServer, monkeypatch: pytest.MonkeyPatch) -> FakeMssqlServer:
    """The SQL Server connector's driver replaced by the fake over ``sqlserver_server``."""
    sqlserver_server.reset()
    monkeypatch.setattr("smartingest.sources.sqlserver.mssql_python", FakeMssql(sqlserver_server))
    return sqlserver_server


@pytest.fixture
def fake_synapse(synapse_server: FakeMssqlServer, monkeypatch: pytest.MonkeyPatch) -> FakeMssqlServer:
    synapse_server.reset()
    monkeypatch.setattr("smartingest.sources.sqlserver.mssql_python", FakeMssql(synapse_server))
    return synapse_server


SQLSERVER_TYPES = {
    "id": pa.int64(),  # BIGINT
    "name": pa.string(),
    "balance": pa.decimal128(12, 2),
    "score": pa.float64(),  # FLOAT
    "active": pa.bool_(),  # BIT
    "born": pa.date32(),
    "updated_at": pa.timestamp("us", tz="UTC"),  # DATETIMEOFFSET
    "attrs": pa.string(),  # NVARCHAR(MAX) holding JSON: SQL Server does not say it is JSON
}

_FAKE_RELEASED = (
    "no connection of the source's to the fake server is open (a real socket each, held while the driver's "
    "connection is; whether SQL Server stops a statement whose client left is not shown here)"
)


def _case(name: str, source_class: type[SqlServerSource], server: FakeMssqlServer) -> Any:
    from .conftest import Case, _expected_rows

    settings = sqlserver_settings(server)
    return Case(
        name=name,
        source=source_class(source_class.Settings(**settings)),
        schema_name="dbo",
        types=SQLSERVER_TYPES,
        rows=_expected_rows(decimal=True, native_dates=True),
        is_released=lambda wait=2.0: server.released(wait),
        settings=settings,
        released_means=_FAKE_RELEASED,
    )


@pytest.fixture
def sqlserver_case(fake_mssql: FakeMssqlServer) -> Any:
    return _case("sqlserver", SqlServerSource, fake_mssql)


@pytest.fixture
def synapse_case(fake_synapse: FakeMssqlServer) -> Any:
    return _case("synapse", SynapseSource, fake_synapse)
