"""Oracle fixtures: a fake of python-oracledb at the driver boundary (Oracle Net is a binary protocol no test here
can serve), answering from the contract's dataset through ``FakeEngine`` in Oracle's SQL.

The fake stands in for the one name the connector imports (``smartingest.sources.oracle.oracledb``); everything
but ``connect`` is the real module (its DbType constants, its exception classes). It does what python-oracledb
does with what the connector gives it where that needs no server: the connect arguments go through the driver's
own ``ConnectParams``; errors are the driver's own, built by its own error table (ORA- codes with their Help
line, DPY- codes with their text). It answers as Oracle would: unquoted names in upper case, NUMBER/DATE/
TIMESTAMP WITH TIME ZONE/JSON in the description, ORA-00942 for a table that is missing or not granted,
ORA-00904, syntax errors, ORA-01017, the listener's DPY-6001 for an unknown service, the read-only transaction's
ORA-01456, DPY-4024 at the call timeout; and ``fetch_df_batches`` as its documentation says: the default
Arrow types of each Oracle type (NUMBER int64 or float64, text large_string, DATE timestamp[s]...), converted to
a ``requested_schema`` only where the documented table allows, a JSON column refused (DPY-3030), batches of
``size`` rows behind the Arrow PyCapsule interface.

What it cannot show: Oracle's own parser and type system (Oracle SQL as sqlglot reads it, run by DuckDB; the
DuckDB types stand for Oracle's: BIGINT for NUMBER(19), DOUBLE for BINARY_DOUBLE, DATE for DATE), TLS, the
break that stops a statement at the call timeout. ``JSON_SERIALIZE(x RETURNING CLOB)``, which sqlglot does not
parse, is read by the fake as ``JSON_SERIALIZE(x)``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import oracledb
import pyarrow as pa
import pytest
from oracledb import errors as ora_errors

from smartingest.sources.oracle import OracleSource

from .driver_fakes import DialectEngine, EngineError, FakeServer, dial, run

ORACLE_USER, ORACLE_PASSWORD = "READER", "r3ader-Pa55"
ORACLE_SERVICE = "FREEPDB1"
ORACLE_SCHEMA = "SMARTINGEST"

# Oracle's catalog as far as the connector asks it, over the dataset's schema and an Oracle-maintained one.
_CATALOG = (
    "CREATE TABLE main.dual (dummy VARCHAR)",
    "INSERT INTO main.dual VALUES ('X')",
    "CREATE SCHEMA ctxsys",
    "CREATE TABLE ctxsys.dr_parameter (par_name VARCHAR)",
    "CREATE VIEW main.all_tables AS SELECT upper(table_schema) AS owner, upper(table_name) AS table_name"
    " FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema IN ('SMARTINGEST', 'ctxsys')",
    "CREATE VIEW main.all_views AS SELECT upper(table_schema) AS owner, upper(table_name) AS view_name"
    " FROM information_schema.tables WHERE table_type = 'VIEW' AND table_schema = 'SMARTINGEST'",
    "CREATE VIEW main.all_users AS SELECT * FROM (VALUES ('SMARTINGEST', 'N'), ('READER', 'N'), ('CTXSYS', 'Y'))"
    " u(username, oracle_maintained)",
    "CREATE MACRO sys_extract_utc(x) AS timezone('UTC', x)",
    "CREATE MACRO json_serialize(x) AS CAST(x AS VARCHAR)",
)


def ora(code: int, text: str) -> oracledb.Error:
    """python-oracledb's exception for an Oracle error, built by its own error table."""
    error = ora_errors._Error(f"ORA-{code:05}: {text}", code=code)
    return error.exc_type(error)


def dpy(number: int, cause: BaseException | None = None, **args: Any) -> oracledb.Error:
    """python-oracledb's exception for one of its own errors (DPY-nnnn)."""
    return ora_errors._create_exception(number, cause=cause, **args)


@dataclass
class FakeOracleServer(FakeServer):
    """An Oracle listener and database as the fake driver sees them."""

    services: set[str] = field(default_factory=lambda: {ORACLE_SERVICE})
    connects_seen: list[dict[str, Any]] = field(default_factory=list)  # connect arguments, the password left out


class FakeOracledb:
    """python-oracledb with ``connect`` over a FakeOracleServer; every other name is the real module's."""

    def __init__(self, server: FakeOracleServer) -> None:
        self.server = server

    def __getattr__(self, name: str) -> Any:
        return getattr(oracledb, name)

    def connect(self, **arguments: Any) -> FakeConnection:
        oracledb.ConnectParams(**arguments)  # the driver's own check of the arguments' names and types
        self.server.connects_seen.append({k: v for k, v in arguments.items() if "password" not in k})
        host, port = arguments["host"], arguments["port"]
        try:
            sock = dial(host, port, arguments.get("tcp_connect_timeout") or 20)
        except OSError as exc:
            raise dpy(ora_errors.ERR_CONNECTION_FAILED, cause=exc, connection_id="fake") from None
        try:
            self._login(arguments)
        except BaseException:
            sock.close()
            raise
        return FakeConnection(self.server, sock)

    def _login(self, arguments: dict[str, Any]) -> None:
        host, port = arguments["host"], arguments["port"]
        if arguments.get("sid") is not None:
            raise dpy(ora_errors.ERR_INVALID_SID, sid=arguments["sid"], host=host, port=port)
        if arguments.get("service_name") not in self.server.services:
            raise dpy(ora_errors.ERR_INVALID_SERVICE_NAME, service_name=arguments["service_name"], host=host, port=port)
        if self.server.logins.get(str(arguments["user"]).upper()) != arguments["password"]:
            raise ora(1017, "invalid credential or not authorized; logon denied")


class FakeConnection:
    def __init__(self, server: FakeOracleServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.call_timeout = 0  # milliseconds
        self.read_only = False
        self.time_zone = ""
        self.current_schema = ORACLE_SCHEMA

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def close(self) -> None:
        self.sock.close()

    def fetch_df_batches(
        self, statement: str, parameters: Any = None, size: int | None = None, *, requested_schema: Any = None
    ) -> Iterator[FakeDataFrame]:
        result = self._run(statement)
        table = _default_arrow(result)
        if requested_schema is not None:
            table = _requested(table, result.types, pa.schema(requested_schema))
        size = size or 100
        if table.num_rows == 0:
            yield FakeDataFrame(table)
        for batch in table.to_batches(max_chunksize=size):
            yield FakeDataFrame(pa.Table.from_batches([batch], schema=table.schema))

    def _run(self, sql: str) -> Result:
        server = self.server
        server.received.append(sql)
        engine_sql = sql.replace(" RETURNING CLOB)", ")")
        try:
            table = run(server, engine_sql, self.call_timeout / 1000)
        except EngineError as exc:
            raise _engine_error(exc, self.read_only) from None
        except PermissionError:
            raise ora(942, "table or view does not exist") from None
        except TimeoutError:
            raise dpy(ora_errors.ERR_CALL_TIMEOUT_EXCEEDED, timeout=self.call_timeout) from None
        return Result(table, server.engine.column_types(engine_sql), sql)


@dataclass
class Result:
    """A result as Oracle holds it: the rows, each column's Oracle type, the names as Oracle writes them."""

    table: pa.Table
    duck_types: list[str]
    sql: str

    @property
    def names(self) -> list[str]:
        # Unquoted names are stored in upper case; a name the statement quotes keeps its case.
        quoted = set(re.findall(r'"([^"]+)"', self.sql))
        return [n if n in quoted else n.upper() for n in self.table.column_names]

    @property
    def types(self) -> list[tuple[Any, int, int]]:
        return [_oracle_type(t) for t in self.duck_types]


_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


def _oracle_type(duck: str) -> tuple[Any, int, int]:
    """(DbType, precision, scale) of the Oracle column a DuckDB type stands for."""
    found = _DECIMAL.fullmatch(duck)
    if found:
        return oracledb.DB_TYPE_NUMBER, int(found[1]), int(found[2])
    return {
        "BIGINT": (oracledb.DB_TYPE_NUMBER, 19, 0),
        "INTEGER": (oracledb.DB_TYPE_NUMBER, 10, 0),
        "HUGEINT": (oracledb.DB_TYPE_NUMBER, 0, -127),  # an expression: NUMBER without precision
        "DOUBLE": (oracledb.DB_TYPE_BINARY_DOUBLE, 0, 0),
        "FLOAT": (oracledb.DB_TYPE_BINARY_FLOAT, 0, 0),
        "BOOLEAN": (oracledb.DB_TYPE_BOOLEAN, 0, 0),
        "DATE": (oracledb.DB_TYPE_DATE, 0, 0),
        "TIMESTAMP": (oracledb.DB_TYPE_TIMESTAMP, 0, 6),
        "TIMESTAMP WITH TIME ZONE": (oracledb.DB_TYPE_TIMESTAMP_TZ, 0, 6),
        "JSON": (oracledb.DB_TYPE_JSON, 0, 0),
        "BLOB": (oracledb.DB_TYPE_RAW, 0, 0),
    }.get(duck, (oracledb.DB_TYPE_VARCHAR, 0, 0))


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.description: list[tuple[Any, ...]] | None = None
        self._result: Result | None = None

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str) -> None:
        if self._session_statement(sql):
            return
        self._result = self.conn._run(sql)
        self.description = [
            (name, db_type, None, None, precision, scale, True)
            for name, (db_type, precision, scale) in zip(self._result.names, self._result.types, strict=True)
        ]

    def _session_statement(self, sql: str) -> bool:
        conn = self.conn
        if sql.startswith(("ALTER SESSION", "SET TRANSACTION")):
            conn.server.received.append(sql)
        if sql == "SET TRANSACTION READ ONLY":
            conn.read_only = True
        elif sql.startswith("ALTER SESSION SET TIME_ZONE = "):
            conn.time_zone = sql.split("= ", 1)[1].strip("'")
        elif sql.startswith("ALTER SESSION SET CURRENT_SCHEMA = "):
            schema = sql.split("= ", 1)[1].strip('"')
            if schema not in ("SMARTINGEST", "CTXSYS", "READER"):
                raise ora(1435, "user does not exist")
            conn.current_schema = schema
        else:
            return False
        return True

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._result.table.to_pylist() if self._result is not None else []
        return [tuple(row.values()) for row in rows]

    def close(self) -> None:
        self._result = None


class FakeDataFrame:
    """python-oracledb's DataFrame as far as a reader of it goes: the Arrow PyCapsule stream interface."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._table.__arrow_c_stream__(requested_schema)


def _engine_error(exc: EngineError, read_only: bool) -> oracledb.Error:
    if exc.kind == "missing_table":
        return ora(942, "table or view does not exist")
    if exc.kind == "missing_column":
        return ora(904, f'"{exc.name.upper()}": invalid identifier')
    if exc.kind == "syntax":
        return ora(900, "invalid SQL statement")
    if exc.kind == "write":
        if read_only:
            return ora(1456, "may not perform insert, delete, update operation inside a READ ONLY transaction")
        return ora(1031, "insufficient privileges")
    return ora(1722, f"invalid number ({exc.message})")


# The Arrow type python-oracledb gives each Oracle type by default, and those a requested schema may ask for.
_DEFAULT_ARROW: dict[str, pa.DataType] = {
    "DB_TYPE_BINARY_DOUBLE": pa.float64(),
    "DB_TYPE_BINARY_FLOAT": pa.float32(),
    "DB_TYPE_BOOLEAN": pa.bool_(),
    "DB_TYPE_VARCHAR": pa.large_string(),
    "DB_TYPE_DATE": pa.timestamp("s"),
    "DB_TYPE_TIMESTAMP": pa.timestamp("us"),
    "DB_TYPE_TIMESTAMP_TZ": pa.timestamp("us"),
    "DB_TYPE_RAW": pa.large_binary(),
}
_ALLOWED = {
    "DB_TYPE_NUMBER": lambda t: pa.types.is_decimal(t) or pa.types.is_floating(t) or pa.types.is_integer(t),
    "DB_TYPE_RAW": lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t),
    "DB_TYPE_BOOLEAN": pa.types.is_boolean,
    "DB_TYPE_DATE": lambda t: pa.types.is_date(t) or pa.types.is_timestamp(t),
    "DB_TYPE_TIMESTAMP": lambda t: pa.types.is_date(t) or pa.types.is_timestamp(t),
    "DB_TYPE_TIMESTAMP_TZ": lambda t: pa.types.is_date(t) or pa.types.is_timestamp(t),
    "DB_TYPE_BINARY_DOUBLE": pa.types.is_floating,
    "DB_TYPE_BINARY_FLOAT": pa.types.is_floating,
    "DB_TYPE_VARCHAR": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
}


def _number_arrow(precision: int, scale: int) -> pa.DataType:
    return pa.int64() if scale == 0 and 0 < precision <= 18 else pa.float64()


def _as_oracle_holds(column: pa.ChunkedArray, db_type: Any) -> pa.ChunkedArray:
    """DuckDB's values as Oracle holds them: TIMESTAMP WITH TIME ZONE as its UTC time, DATE with a time."""
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        return column.cast(pa.timestamp("us"))
    if db_type is oracledb.DB_TYPE_DATE and pa.types.is_date(column.type):
        return column.cast(pa.timestamp("s"))
    return column


def _default_arrow(result: Result) -> pa.Table:
    arrays, fields = [], []
    for name, column, (db_type, precision, scale) in zip(result.names, result.table.columns, result.types, strict=True):
        if db_type is oracledb.DB_TYPE_JSON:
            raise dpy(ora_errors.ERR_ARROW_UNSUPPORTED_DATA_TYPE, db_type_name="DB_TYPE_JSON")
        held = _as_oracle_holds(column, db_type)
        target = _number_arrow(precision, scale) if db_type is oracledb.DB_TYPE_NUMBER else _DEFAULT_ARROW[db_type.name]
        arrays.append(held.cast(target, safe=False) if not pa.types.is_decimal(held.type) else held)
        fields.append(pa.field(name, target if not pa.types.is_decimal(held.type) else held.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _requested(table: pa.Table, types: list[tuple[Any, int, int]], requested: pa.Schema) -> pa.Table:
    if len(requested) != table.num_columns:
        raise dpy(
            ora_errors.ERR_WRONG_REQUESTED_SCHEMA_LENGTH,
            num_schema_columns=len(requested),
            num_fetched_columns=table.num_columns,
        )
    arrays = []
    for column, wanted, (db_type, _, _) in zip(table.columns, requested, types, strict=True):
        if not _ALLOWED[db_type.name](wanted.type):
            raise dpy(ora_errors.ERR_CANNOT_CONVERT_TO_ARROW_TYPE, db_type=db_type.name, arrow_type=str(wanted.type))
        try:
            arrays.append(column.cast(wanted.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise dpy(ora_errors.ERR_CANNOT_CONVERT_TO_ARROW_INTEGER, value=str(exc)) from None
    return pa.Table.from_arrays(arrays, schema=pa.schema([pa.field(f.name, f.type) for f in requested]))


# ------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def oracle_server() -> Iterator[FakeOracleServer]:
    server = FakeOracleServer(DialectEngine("oracle", ORACLE_SCHEMA, _CATALOG), logins={ORACLE_USER: ORACLE_PASSWORD})
    try:
        yield server
    finally:
        server.close()


def oracle_settings(server: FakeServer, **overrides: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "service_name": ORACLE_SERVICE,
        "user": "reader",
        "password": ORACLE_PASSWORD,
        "schema": "smartingest",
    } | overrides


@pytest.fixture
def fake_oracle(oracle_server: FakeOracleServer, monkeypatch: pytest.MonkeyPatch) -> FakeOracleServer:
    """The Oracle connector's driver replaced by the fake over ``oracle_server``."""
    oracle_server.reset()
    monkeypatch.setattr("smartingest.sources.oracle.oracledb", FakeOracledb(oracle_server))
    return oracle_server


ORACLE_TYPES = {
    "id": pa.int64(),  # NUMBER(19)
    "name": pa.string(),  # VARCHAR2
    "balance": pa.decimal128(12, 2),  # NUMBER(12, 2)
    "score": pa.float64(),  # BINARY_DOUBLE
    "active": pa.bool_(),  # BOOLEAN (23ai)
    "born": pa.timestamp("us"),  # DATE, which holds a time
    "updated_at": pa.timestamp("us", tz="UTC"),  # TIMESTAMP WITH TIME ZONE
    "attrs": pa.string(),  # JSON (21c), its text
}


@pytest.fixture
def oracle_case(fake_oracle: FakeOracleServer) -> Any:
    import datetime as dt

    from .conftest import Case, _expected_rows

    rows = _expected_rows(decimal=True, native_dates=True)
    for row in rows:  # Oracle's DATE holds a time: midnight
        row["born"] = row["born"] and dt.datetime.combine(row["born"], dt.time())
    settings = oracle_settings(fake_oracle)
    return Case(
        name="oracle",
        source=OracleSource(OracleSource.Settings(**settings)),
        schema_name="smartingest",  # SMARTINGEST, as the connector shows a name Oracle stores in upper case
        types=ORACLE_TYPES,
        rows=rows,
        is_released=lambda wait=2.0: fake_oracle.released(wait),
        settings=settings,
        released_means=(
            "no connection of the source's to the fake server is open (a real socket each, held while the driver's "
            "connection is; whether Oracle stops a statement whose client left is not shown here)"
        ),
    )
