"""The SQL engine inside the fakes of databases that cannot run here (SQL Server, Oracle, Trino, BigQuery...).

A fake speaks its database's wire protocol or driver interface; what it answers comes from here: the
statement, as the connector wrote it in the database's dialect, is parsed by sqlglot *in that dialect* (a
statement the dialect cannot parse is the database's syntax error), written as DuckDB SQL, and run by DuckDB
over the contract suite's dataset (people, people_view, numbers). So the SQL a connector generates is
checked for its dialect and really runs, and the rows, the missing table or the missing column come back
as a real engine found them; the fake only dresses them as its database would (error codes, wire types).

A fake is read-only (a write is refused as a user with SELECT only would be refused) unless it is made
``writable``, as the Lightning engine's tests make theirs; there a dialect's row hash function that DuckDB
lacks (``xxhash64``, ``FARM_FINGERPRINT``) is computed with DuckDB's ``hash()``, and BigQuery's
``dataset.INFORMATION_SCHEMA.COLUMNS`` is DuckDB's ``information_schema.columns`` of that schema.

What this cannot show, each fake's docs say: the database's own type system beyond what DuckDB holds,
its optimiser, its privileges.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

Kind = Literal["syntax", "missing_table", "missing_column", "data", "write"]


@dataclass
class EngineError(Exception):
    """What the engine found wrong with a statement; a fake turns it into its database's error."""

    kind: Kind
    message: str  # the engine's own words, first line (for "syntax": sqlglot's, naming the offending text)
    name: str = ""  # the missing table or column, when that is the kind

    def __str__(self) -> str:
        return self.message


class FakeEngine:
    """DuckDB over the contract dataset, answering statements written in ``dialect`` (sqlglot's name).

    ``schema`` is the namespace the dataset lives in (people, people_view, numbers), so schema-qualified
    names (``schema.people``) resolve; unqualified names resolve too. ``statements`` records every
    statement received, as written, for tests on the SQL a connector generates."""

    def __init__(self, dialect: str, schema: str = "main", writable: bool = False) -> None:
        self.dialect = dialect
        self.schema = schema
        self.writable = writable
        self.statements: list[str] = []
        self._lock = threading.Lock()
        # Imported here: conftest loads the fakes' fixtures, which import this module.
        from .conftest import NUMBERS_ROWS, PEOPLE

        self._db = duckdb.connect()
        if schema != "main":
            self._db.execute(f'CREATE SCHEMA "{schema}"')
        self._db.execute(f"SET search_path = '\"{schema}\",main'")
        self._db.execute(
            f'CREATE TABLE "{schema}".people (id BIGINT PRIMARY KEY, name VARCHAR, balance DECIMAL(12,2), '
            "score DOUBLE, active BOOLEAN, born DATE, updated_at TIMESTAMPTZ, attrs JSON)"
        )
        rows = [list(r) for r in PEOPLE]
        self._db.executemany(f'INSERT INTO "{schema}".people VALUES (?, ?, ?, ?, ?, ?, ?, ?)', rows)
        self._db.execute(f'CREATE VIEW "{schema}".people_view AS SELECT id, name, balance FROM "{schema}".people')
        self._db.execute(
            f"CREATE TABLE \"{schema}\".numbers AS SELECT i::INTEGER AS id, 'n' || i AS label "
            f"FROM range(1, {NUMBERS_ROWS + 1}) r(i)"
        )

    def execute(self, sql: str) -> pa.Table:
        """Run a statement of the dialect; EngineError when the database would refuse it."""
        self.statements.append(sql)
        duck = self.translate(sql)
        with self._lock:
            try:
                relation = self._db.sql(duck)
                return relation.to_arrow_table() if relation is not None else pa.table({})
            except duckdb.CatalogException as exc:
                raise _catalog_error(exc) from exc
            except duckdb.BinderException as exc:
                raise _binder_error(exc) from exc
            except duckdb.ParserException as exc:
                raise EngineError("syntax", f"syntax error: {exc}") from exc
            except duckdb.Error as exc:
                raise EngineError("data", str(exc)) from exc

    def describe(self, sql: str) -> list[tuple[str, str]]:
        """(name, DuckDB type) of each column of a statement's result, without running it (Arrow results lose
        what a fake's database would say of some columns, e.g. that one is JSON)."""
        duck = self.translate(sql)
        with self._lock:
            try:
                relation = self._db.sql(duck)
            except duckdb.CatalogException as exc:
                raise _catalog_error(exc) from exc
            except duckdb.BinderException as exc:
                raise _binder_error(exc) from exc
            except duckdb.Error as exc:
                raise EngineError("syntax" if isinstance(exc, duckdb.ParserException) else "data", str(exc)) from exc
            return [(str(n), str(t)) for n, t in zip(relation.columns, relation.types, strict=True)]

    def translate(self, sql: str) -> str:
        """The statement as DuckDB SQL; EngineError("syntax") when the dialect cannot parse it."""
        try:
            statements = [s for s in sqlglot.parse(sql, read=self.dialect) if s is not None]
        except sqlglot.errors.ParseError as exc:
            found = exc.errors[0] if exc.errors else {}
            near = found.get("highlight") or found.get("description") or str(exc)
            raise EngineError("syntax", f"syntax error at or near {near!r}: {exc}") from exc
        if len(statements) != 1:
            raise EngineError("syntax", f"syntax error: {len(statements)} statements where one was expected")
        statement = statements[0]
        writes = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
        if not self.writable and (isinstance(statement, writes) or statement.find(*writes) is not None):
            # The fakes stand for a user with SELECT only: a write that reached them is refused.
            raise EngineError("write", "permission denied: the session may only read")
        return statement.transform(_duckdb_functions).sql(dialect="duckdb")

    def returns_rows(self, sql: str) -> bool:
        """Whether a statement of the dialect is a query (else DDL or DML, run once and answering no rows)."""
        return isinstance(sqlglot.parse_one(sql, read=self.dialect), exp.Query)

    def has_schema(self, name: str) -> bool:
        with self._lock:
            found = self._db.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?", [name])
            return bool(found.fetchall()[0][0])

    def tables(self) -> list[tuple[str, str]]:
        """(schema, name) of the dataset's tables and views."""
        with self._lock:
            rows = self._db.execute(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1, 2",
                [self.schema],
            ).fetchall()
        return [(str(s), str(n)) for s, n in rows]


# The dialects' row hash functions, which DuckDB does not have, computed with its own hash() (a fake's hashes
# are only compared with its own).
_HASH_FUNCTIONS = frozenset({"XXHASH64"})


def _duckdb_functions(node: exp.Expression) -> exp.Expression:
    dialect_hash = isinstance(node, exp.Anonymous) and str(node.name).upper() in _HASH_FUNCTIONS
    if dialect_hash or isinstance(node, exp.FarmFingerprint):
        hashed = exp.Anonymous(this="hash", expressions=node.expressions)  # UBIGINT: its top 63 bits fit BIGINT
        return exp.cast(exp.BitwiseRightShift(this=hashed, expression=exp.Literal.number(1)), "BIGINT")
    if isinstance(node, exp.Table) and node.name.upper() == "INFORMATION_SCHEMA.COLUMNS" and node.db:
        # BigQuery's view of one dataset's columns: DuckDB's of that schema.
        columns = (
            sqlglot.select("*")
            .from_("information_schema.columns")
            .where(exp.column("table_schema").eq(exp.Literal.string(node.db)))
        )
        return columns.subquery(node.alias_or_name)
    return node


def _catalog_error(exc: duckdb.CatalogException) -> EngineError:
    text = str(exc).splitlines()[0]
    name = text.split(" with name ", 1)[1].split(" does not exist", 1)[0] if " with name " in text else ""
    return EngineError("missing_table", text, name)


def _binder_error(exc: duckdb.BinderException) -> EngineError:
    text = str(exc).splitlines()[0]
    if 'Referenced column "' in text:
        name = text.split('Referenced column "', 1)[1].split('"', 1)[0]
        return EngineError("missing_column", text, name)
    return EngineError("data", text)
