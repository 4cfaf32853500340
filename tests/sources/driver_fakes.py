"""What the fakes at the driver boundary share (SQL Server and Synapse, Oracle, Teradata): databases whose wire
protocols (TDS, Oracle Net, Teradata's) no test here can serve, so each is faked as its driver's module.

A ``FakeServer`` stands for the database's port: a loopback TCP listener. A fake driver opens a real socket to
the host and port the connector gives it (a closed port refuses it as a server that is down would; an SSH
tunnel's forward reaches it through the bastion) and holds it while its connection is open, so the server
counts the sessions really open (the contract's released checks). The rest of what a server knows comes from
the ``FakeServer`` too: its logins, its databases or schemas, the tables a user may not read, how long a
statement takes; and every statement a fake connection received, as sent, for the tests of generated SQL.

The statements themselves are answered by ``fake_engine.FakeEngine``: parsed in the database's dialect by
sqlglot, run by DuckDB over the contract dataset. ``DialectEngine`` adds what a database's catalog or functions
hold beyond the dataset (Oracle's DUAL and ALL_TABLES, Teradata's DBC.TablesVX...) as DuckDB views and macros.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import sqlglot
from sqlglot import exp

from .fake_engine import EngineError, FakeEngine
from .loopback import released


class DialectEngine(FakeEngine):
    """The contract dataset in ``schema``, plus the catalog views and functions a database's fake needs."""

    def __init__(self, dialect: str, schema: str, setup: Iterable[str] = ()) -> None:
        super().__init__(dialect, schema)
        with self._lock:
            for statement in setup:
                self._db.execute(statement)

    def column_types(self, sql: str) -> list[str]:
        """DuckDB's type of each column of a statement of the dialect (what a fake shows as its database's)."""
        with self._lock:
            return [str(t) for t in self._db.sql(self.translate(sql)).types]

    def referenced_tables(self, sql: str) -> set[str]:
        """The bare names (lower case) of the tables a statement of the dialect reads; none when it does not parse."""
        try:
            parsed = [s for s in sqlglot.parse(sql, read=self.dialect) if s is not None]
        except sqlglot.errors.SqlglotError:
            return set()
        return {t.name.lower() for statement in parsed for t in statement.find_all(exp.Table)}


GREETING = b"+"  # what the server sends once it has counted a connection


class _Holder(socketserver.BaseRequestHandler):
    """Holds a client's socket open until the client closes it, counted meanwhile."""

    server: _Listener

    def handle(self) -> None:
        with self.server.lock:
            self.server.open += 1
        try:
            self.request.sendall(GREETING)  # counted: the client may go on (see dial)
            while self.request.recv(4096):
                pass
        except OSError:
            pass
        finally:
            with self.server.lock:
                self.server.open -= 1


class _Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Holder)
        self.lock = threading.Lock()
        self.open = 0


@dataclass
class FakeServer:
    """A database server as its fake driver sees it (see the module docstring)."""

    engine: DialectEngine
    logins: dict[str, str]  # user -> password
    databases: set[str] = field(default_factory=set)  # what a login may name as its database (case-insensitive)
    denied: set[str] = field(default_factory=set)  # tables (bare, lower case) the user may not read
    statement_seconds: float = 0.0  # how long a model's statement runs before its first rows
    received: list[str] = field(default_factory=list)  # every statement sent, as sent

    def __post_init__(self) -> None:
        self._listener = _Listener()
        threading.Thread(target=self._listener.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._listener.server_address[1])

    def open_connections(self) -> int:
        with self._listener.lock:
            return self._listener.open

    def released(self, wait: float = 2.0) -> bool:
        """Whether no connection is open (after a moment to see a close arrive)."""
        return released(self.open_connections, wait)

    def close(self) -> None:
        self._listener.shutdown()
        self._listener.server_close()

    def reset(self) -> None:
        """Back to a server that lets every login read everything at once (between tests)."""
        self.denied.clear()
        self.statement_seconds = 0.0
        self.received.clear()

    def knows_database(self, name: str | None) -> bool:
        return name is None or name.lower() in {d.lower() for d in self.databases}

    def denied_in(self, sql: str) -> str | None:
        """The first table the statement reads that the user may not read."""
        found = sorted(self.engine.referenced_tables(sql) & self.denied)
        return found[0] if found else None


def dial(host: str, port: int, timeout: float) -> socket.socket:
    """The real TCP connection a fake driver opens to its server; OSError as the network answers. It returns
    once the server has counted the connection (its greeting read), so a count right after sees it."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if sock.recv(len(GREETING)) != GREETING:
            raise ConnectionResetError(f"{host}:{port} closed the connection")
    except BaseException:
        sock.close()
        raise
    return sock


def closed_port() -> int:
    """A loopback port nothing listens on (a server that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(server: FakeServer, sql: str, timeout: float | None) -> pa.Table:
    """A model's statement run by the server's engine, after its denied tables and its delay are checked.

    Raises EngineError for what the engine refuses, PermissionError(table) for a table the user may not read,
    TimeoutError when the statement takes longer than ``timeout`` (seconds; None or 0: no limit)."""
    table = server.denied_in(sql)
    if table is not None:
        raise PermissionError(table)
    if server.statement_seconds:
        if timeout and server.statement_seconds > timeout:
            time.sleep(timeout)
            raise TimeoutError(sql)
        time.sleep(server.statement_seconds)
    return server.engine.execute(sql)


__all__ = ["DialectEngine", "EngineError", "FakeServer", "closed_port", "dial", "run"]
