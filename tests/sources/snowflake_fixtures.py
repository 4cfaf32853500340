"""The Snowflake emulator the Snowflake tests run against: fakesnow (DuckDB underneath) in server mode on
loopback, once per test session, spoken to by the real snowflake-connector-python. A plugin of the whole
suite (tests/conftest.py), so that one emulator serves tests/sources and the sync tests alike.

Four things are added in front of fakesnow, each what Snowflake itself does, so that the tests see it:

* **Logins are checked.** fakesnow lets any password in; here a password login must give the emulator's
  password, or it is refused with the answer Snowflake gives (code 390100, "Incorrect username or password
  was specified."). Every login's request is kept (``Emulator.logins``): its session parameters, what its URL
  asks for (database, schema, warehouse, role) and, for a key-pair login, the JWT the driver signed.
* **A login's answer holds a master token.** fakesnow's has none, and without one the driver never ends its
  session on ``close()`` ("Connection is closed"): sessions would pile up where Snowflake ends each one.
* **NUMBERs travel as Snowflake sends them**: as integers of the narrowest width the values need (int8 for
  small ones), scaled by 10^scale, with the scale in the column's metadata, and as decimal128 only beyond
  int64; the driver turns them back into numbers (exact decimals only when asked). fakesnow sends DuckDB's
  int64 and decimal128 columns as they are, which would leave both the driver's conversion and the
  connector's conforming of each width untried.
* **A NULL timestamp is sent as NULL.** fakesnow 0.12.1 sends a NULL TIMESTAMP_* as a valid value of zero
  seconds, which the driver reads as 1970-01-01; Snowflake sends it as a null. The fix gives the emulator's
  timestamp structs the null mask of the values they encode.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    import snowflake.connector

import pyarrow as pa
import pytest

from .loopback import released

PASSWORD = "snow-Pa55"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# Snowflake's answer to a login with a wrong password.
_REFUSED = {
    "data": {"nextAction": "RETRY_LOGIN", "authnMethod": "USERNAME_PASSWORD", "errorCode": "390100"},
    "code": "390100",
    "message": "Incorrect username or password was specified.",
    "success": False,
    "headers": None,
}


@dataclass
class Emulator:
    """A running emulator: where it listens and the logins it received."""

    port: int
    logins: list[dict[str, Any]] = field(default_factory=list)

    def settings(self, database: str, **overrides: Any) -> dict[str, Any]:
        """A snowflake source's settings, as in a project file, for this emulator."""
        return {
            "account": "fakesnow",
            "user": "smartingest",
            "password": PASSWORD,
            "database": database,
            "host": "127.0.0.1",
            "port": self.port,
            "protocol": "http",
            "login_timeout_seconds": 5,
        } | overrides

    def admin(self, database: str) -> snowflake.connector.SnowflakeConnection:
        """A connection that writes (the tests' own, to lay their data out)."""
        import snowflake.connector

        return snowflake.connector.connect(
            account="fakesnow",
            user="admin",
            password=PASSWORD,
            database=database,
            schema="PUBLIC",
            host="127.0.0.1",
            port=self.port,
            protocol="http",
            platform_detection_timeout_seconds=0.0,  # no probes of cloud metadata services from the tests either
        )


class _LoginCheck:
    """ASGI middleware before fakesnow: keeps each login's request, refuses a wrong password as Snowflake does,
    and gives a login's answer the master token Snowflake's holds."""

    def __init__(self, app: App, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/session/v1/login-request":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        headers = dict(scope["headers"])
        login = json.loads(gzip.decompress(body) if headers.get(b"content-encoding") == b"gzip" else body)["data"]
        # The database, schema, warehouse and role a login asks for travel in its URL.
        login["URL_PARAMETERS"] = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        self.emulator.logins.append(login)
        if "PASSWORD" in login and login["PASSWORD"] != PASSWORD:
            await _answer(send, _REFUSED)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, _with_master_token(send))


def _with_master_token(send: Send) -> Send:
    """``send`` for a login's answer, which gains a master token (fakesnow answers in one body message)."""
    start: Message = {}

    async def send_answer(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        answer = json.loads(message["body"])
        if answer.get("success"):
            answer["data"]["masterToken"] = "master-" + answer["data"]["token"]
        await _answer(send, answer, int(start["status"]))

    return send_answer


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, payload: dict[str, Any], status: int = 200) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _null_masked(encode: Callable[[Any], pa.Array]) -> Callable[[Any], pa.Array]:
    def encode_with_nulls(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
        struct = encode(ts)
        values = ts.combine_chunks() if isinstance(ts, pa.ChunkedArray) else ts
        children = [struct.field(i) for i in range(struct.type.num_fields)]
        return pa.StructArray.from_arrays(children, fields=list(struct.type), mask=values.is_null())

    return encode_with_nulls


_WIDTHS = (pa.int8(), pa.int16(), pa.int32(), pa.int64())


def _wire_number(values: pa.Array, scale: int) -> pa.Array:
    """A FIXED column as Snowflake's wire has it: the narrowest integers holding value * 10^scale."""
    scaled = [None if v is None else int(Decimal(v).scaleb(scale)) for v in values.to_pylist()]
    present = [v for v in scaled if v is not None] or [0]
    for width in _WIDTHS:
        bits = width.bit_width - 1
        if -(2**bits) <= min(present) and max(present) < 2**bits:
            return pa.array(scaled, width)
    return values.cast(pa.decimal128(38, scale))


def _as_snowflake_numbers(to_sf: Callable[..., pa.Table]) -> Callable[..., pa.Table]:
    def to_sf_wire(table: pa.Table, rowtype: list[Any]) -> pa.Table:
        encoded = to_sf(table, rowtype)
        columns, fields = [], []
        for column, field_ in zip(encoded.columns, encoded.schema, strict=True):
            meta = field_.metadata or {}
            if meta.get(b"logicalType") == b"FIXED" and not pa.types.is_floating(column.type):
                column = _wire_number(column.combine_chunks(), int(meta[b"scale"]))
                field_ = field_.with_type(column.type)
            columns.append(column)
            fields.append(field_)
        return pa.Table.from_arrays(columns, schema=pa.schema(fields))

    return to_sf_wire


@pytest.fixture(scope="session")
def snowflake_emulator() -> Iterator[Emulator]:
    """fakesnow's server on a free loopback port, for the whole test session."""
    # Imported here: every test session loads this plugin, and most never start the emulator.
    import fakesnow.arrow
    import fakesnow.server
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    emulator = Emulator(port)
    encode, to_sf = fakesnow.arrow.timestamp_to_sf_struct, fakesnow.server.to_sf
    fakesnow.arrow.timestamp_to_sf_struct = _null_masked(encode)
    fakesnow.server.to_sf = _as_snowflake_numbers(to_sf)
    app = _LoginCheck(fakesnow.server.app, emulator)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="fakesnow", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        if not server.started:
            pytest.fail("the fakesnow emulator did not start")
        yield emulator
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        fakesnow.arrow.timestamp_to_sf_struct, fakesnow.server.to_sf = encode, to_sf


def emulator_sessions(database: str) -> int:
    """How many sessions the emulator holds open on a database (a closed connection ends its session)."""
    import fakesnow.server

    return sum(1 for conn in list(fakesnow.server.sessions.values()) if conn.database == database.upper())


def snowflake_released(database: str, wait: float = 2.0) -> bool:
    return released(lambda: emulator_sessions(database), wait)


def fresh_database(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}".upper()


@contextlib.contextmanager
def admin_cursor(emulator: Emulator, database: str) -> Iterator[Any]:
    with contextlib.closing(emulator.admin(database)) as conn, contextlib.closing(conn.cursor()) as cur:
        yield cur


def lay_out_dataset(emulator: Emulator, database: str, people: list[tuple[Any, ...]], numbers: int) -> None:
    """people, people_view and numbers in ``database``, created with unquoted names as most schemas are."""
    with admin_cursor(emulator, database) as cur:
        cur.execute(
            "CREATE TABLE people (id NUMBER(38, 0), name TEXT, balance NUMBER(12, 2), score FLOAT, active BOOLEAN,"
            " born DATE, updated_at TIMESTAMP_TZ, attrs VARIANT)"
        )
        for row in people:
            cur.execute(
                "INSERT INTO people SELECT %s, %s, %s::NUMBER(12, 2), %s, %s, %s::DATE, %s::TIMESTAMP_TZ,"
                " PARSE_JSON(%s)",
                [None if v is None else v.isoformat() if hasattr(v, "isoformat") else v for v in row],
            )
        cur.execute("CREATE VIEW people_view AS SELECT id, name, balance FROM people")
        cur.execute("CREATE TABLE numbers (id NUMBER(38, 0), label TEXT)")
        cur.execute("INSERT INTO numbers VALUES " + ", ".join(f"({i}, 'n{i}')" for i in range(1, numbers + 1)))
