"""The SQL the Lightning engine writes, where databases differ: the row hash, the identifier, null-safe
comparisons, the planner schema and the GRANT that lets us use it.

Each database hashes a row with its own fastest deterministic function over typed values, so the hashes
of one database are only ever compared with that database's (the hash scheme, with the server's
version where its hash is not promised to stay, is stored with the snapshot: another scheme means the
keys are kept and every row is compared anew). What sqlglot writes well (quoting, casts, null-safe
comparison), it writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from smartingest.cdc.base import Identity
from smartingest.errors import ConfigError
from smartingest.sources.sql import quote_identifier


def string_literal(text: str, dialect: str) -> str:
    """A string literal of the dialect (quotes doubled; MySQL's backslashes escaped too)."""
    from sqlglot import exp

    return exp.Literal.string(text).sql(dialect=dialect)


@cache
def _cast_template(type_name: str, dialect: str) -> str:
    from sqlglot import exp

    return exp.cast(exp.column("smartingest_x"), type_name).sql(dialect=dialect)


def cast(expression: str, type_name: str, dialect: str) -> str:
    """``CAST(expression AS type)`` as the dialect writes it."""
    return _cast_template(type_name, dialect).replace("smartingest_x", f"({expression})", 1)


@cache
def _distinct_template(dialect: str) -> str:
    from sqlglot import exp

    return exp.NullSafeNEQ(this=exp.column("smartingest_a"), expression=exp.column("smartingest_b")).sql(
        dialect=dialect
    )


def is_distinct(a: str, b: str, dialect: str) -> str:
    """True when ``a`` and ``b`` differ, a null differing from any value and equal to another null."""
    return _distinct_template(dialect).replace("smartingest_a", f"({a})", 1).replace("smartingest_b", f"({b})", 1)


@dataclass(frozen=True)
class Warehouse:
    """What the Lightning engine's SQL needs to know of one database."""

    dialect: str  # sqlglot's name
    hash_type: str  # the column type the hashes are stored in
    text_type: str  # a type any value casts to as its text
    ident_type: str  # the column type identifiers are stored in
    version: str  # a query of the server's version
    begin: str = "BEGIN"
    current_user: str = "SELECT current_user"
    schema_noun: str = "schema"  # what the planner schema is called here (MySQL: a database)
    indexes: bool = True  # whether the snapshot gets a primary key (joins probe it)
    session: tuple[str, ...] = ()  # statements that start a planner session
    analyze: str = ""  # the statement (before a table's name) that gathers a table's statistics
    current_database: str = ""  # a query of the session's database, where the GRANT names it
    current_schema: str = ""  # a query of the session's schema, where creating a schema makes it the current one
    # Whether several statements can commit as one: where not, each merge makes the snapshot's next
    # generation and one INSERT of the sync's row, naming it, commits it (cdc/lightning.py, _rebuild).
    transactions: bool = True
    generation_type: str = "BIGINT"
    key_text_type: str = "VARCHAR(255)"  # smartingest_syncs' sync_key and committed_at
    scratch_table: str = "CREATE TABLE"  # how a table a crash may lose (made and dropped by one run) starts
    row_versions: bool = False  # whether ``table_version`` and ``written_since`` are this database's
    merge_settings: tuple[str, ...] = ()  # statements that start a merge's transaction, for it alone

    def literal(self, text: str) -> str:
        """A string literal of this database's SQL."""
        return string_literal(text, self.dialect)

    def distinct(self, a: str, b: str) -> str:
        """True when ``a`` and ``b`` differ, a null differing from any value and equal to another null."""
        return is_distinct(a, b, self.dialect)

    def scheme(self, version: str) -> str:
        """The name of the hash scheme, for a server of this version."""
        return f"lightning/1 {self.dialect}"

    def row_hash(self, fingerprint: str, columns: Sequence[str], hashable: Sequence[bool]) -> str:
        """An expression hashing ``columns`` (quoted expressions) under ``fingerprint``; ``hashable`` says,
        column by column, whether the database hashes the column's type itself (else its text is hashed)."""
        raise NotImplementedError

    def ident(self, column: str, identity: Identity) -> str:
        """The identifier of a row as the destination compares it (text, null when empty)."""
        text = cast(column, self.text_type, self.dialect)
        if identity.trim:
            text = f"TRIM({text})"
        if identity.ignore_case:
            text = f"LOWER({text})"
        return f"NULLIF({text}, '')"

    def schema_exists(self, schema: str) -> str:
        """A query whose one row says whether the schema exists (1) or not (0)."""
        return f"SELECT count(*) FROM information_schema.schemata WHERE schema_name = {self.literal(schema)}"

    def create_schema(self, quoted: str) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {quoted}"

    def use_schema(self, stored: str) -> str:
        """The statement that makes a schema (its name as stored) the session's current one again."""
        return f"USE SCHEMA {quote_identifier(stored, self.dialect)}"

    def grant(self, schema: str, exists: bool, user: str, database: str) -> str:
        """The statement an administrator runs so that ``user`` may keep the planner schema."""
        raise NotImplementedError

    def column_types(self, schema: str, table: str) -> str:
        """A query of a table's columns and their declared types, in order."""
        return (
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = {self.literal(schema)} "
            f"AND table_name = {self.literal(table)} ORDER BY ordinal_position"
        )

    def key_cast(self, expression: str, declared: str) -> str:
        """A loaded key value, compared with a snapshot key of the ``declared`` type: as it is where the
        database compares across types itself (its catalog names a type without its length, precision or
        scale, so a cast to it could round: DECIMAL is DECIMAL(18, 0) in Redshift, NUMBER in Snowflake)."""
        return expression

    def table_version(self, table: str) -> str | None:
        """A query of what a model's table (its name as the model gives it) is now, for reading only the rows
        written since a horizon (cdc/row_versions.py): one row of whether its rows' versions can say so (a
        plain table whose rows are all its own, every row visible to every reader), what identifies the
        table and its columns, the horizon a scan starting now may record and the next transaction's number
        (64-bit); None where the database keeps no row versions a query can read."""
        return None

    def written_since(self, alias: str, horizon: int) -> str:
        """True for a row of ``alias`` that a transaction numbered ``horizon`` or later wrote (see
        ``table_version``)."""
        raise NotImplementedError

    def primary_key(self, table: str, columns: Sequence[str]) -> str:
        return f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(columns)})"

    def index(self, table: str, name: str, column: str) -> str:
        return f"CREATE INDEX {name} ON {table} ({column})"

    def after_create(self, table: str) -> list[str]:
        """Statements that tune a snapshot table once it is made."""
        return []

    def primary_key_of(self, table: str) -> str | None:
        """A query of the primary key's columns of a model's table (no rows for a view), or None where the
        database cannot say."""
        return None

    def hashable(self, view: str) -> str | None:
        """A query of each column of a temporary view: its name, and whether the row hash takes its type as
        it is (else its text); None where every type is taken as it is."""
        return None

    def update_from(self, table: str, source: str, assignments: list[tuple[str, str]], matches: str, where: str) -> str:
        """UPDATE ``table`` with the rows of ``source`` (a table and its alias) that ``matches`` pairs with its
        own, where ``where`` holds; ``matches`` names ``table`` by its full name."""
        sets = ", ".join(f"{column} = {value}" for column, value in assignments)
        return f"UPDATE {table} SET {sets} FROM {source} WHERE {matches} AND {where}"


class Postgres(Warehouse):
    def scheme(self, version: str) -> str:
        # hash_record_extended hashes each value with its type's extended hash function, those hash
        # partitioning uses: kept within a major version, so the major version names the scheme.
        found = re.match(r"\d+", version.strip())
        major = found.group() if found else ""
        if not major or int(major) < 14:
            raise ConfigError(
                f"the Lightning engine needs PostgreSQL 14 or later (this server: {version}): "
                "set the source's engine to basic"
            )
        return f"lightning/1 postgres {major} hash_record_extended"

    def row_hash(self, fingerprint: str, columns: Sequence[str], hashable: Sequence[bool]) -> str:
        values = [string_literal(fingerprint, self.dialect) + "::text"]
        values += [c if ok else f"{c}::text" for c, ok in zip(columns, hashable, strict=True)]
        return f"hash_record_extended(ROW({', '.join(values)}), 0)"

    def schema_exists(self, schema: str) -> str:
        # pg_namespace lists every schema; information_schema only those the role may use.
        return f"SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = {string_literal(schema, self.dialect)}"

    def grant(self, schema: str, exists: bool, user: str, database: str) -> str:
        quoted = '"' + schema.replace('"', '""') + '"'
        role = '"' + user.replace('"', '""') + '"'
        if exists:
            return f"GRANT USAGE, CREATE ON SCHEMA {quoted} TO {role}"
        return f"CREATE SCHEMA {quoted} AUTHORIZATION {role}"

    def column_types(self, schema: str, table: str) -> str:
        return (
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a "
            f"WHERE a.attrelid = to_regclass({string_literal(_pg_qualified(schema, table), self.dialect)}) "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        )

    def key_cast(self, expression: str, declared: str) -> str:
        return f"CAST(({expression}) AS {declared})"  # format_type's own words: PostgreSQL reads them back

    def after_create(self, table: str) -> list[str]:
        # Room in each page for a changed row's new version: an update that leaves the indexed columns as
        # they were then touches no index (a heap-only tuple).
        return [f"ALTER TABLE {table} SET (fillfactor = 85)"]

    def primary_key_of(self, table: str) -> str:
        return (
            "SELECT a.attname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            f"WHERE i.indisprimary AND i.indrelid = {self._regclass(table)}"
        )

    def _regclass(self, table: str) -> str:
        quoted = ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))
        return f"to_regclass({string_literal(quoted, self.dialect)})"

    def table_version(self, table: str) -> str:
        # Every row version carries the number of the transaction that wrote it (xmin); an update writes a
        # new version. Not so for rows a table gains otherwise: a partition attached or a child table
        # (relkind 'r' without subclasses), or rows a policy shows (row security). What identifies the table
        # changes when it is made again (its oid), rewritten (its file: TRUNCATE, VACUUM FULL, a column's
        # new type), restored elsewhere (the cluster's system identifier) or given other columns (a column
        # added with a default fills every row without writing it).
        return f"""SELECT c.relkind = 'r' AND NOT c.relhassubclass AND NOT c.relrowsecurity,
                   concat_ws(' ', (SELECT system_identifier FROM pg_catalog.pg_control_system()), c.oid,
                             c.relfilenode, (SELECT string_agg(a.attname || ':' || a.atttypid || ':' || a.atttypmod,
                                                        ',' ORDER BY a.attnum)
                                             FROM pg_catalog.pg_attribute a
                                             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)),
                   pg_snapshot_xmin(pg_current_snapshot())::text, pg_snapshot_xmax(pg_current_snapshot())::text
                   FROM pg_catalog.pg_class c WHERE c.oid = {self._regclass(table)}"""

    def written_since(self, alias: str, horizon: int) -> str:
        # xmin is 32 bits and wraps: age() measures both from the same transaction, which compares them
        # while the horizon is within 2^31 transactions (row_versions checks it is). A frozen row keeps its
        # xmin (PostgreSQL 9.4 and later), so it is judged by when it was written.
        return f"age({alias}.xmin) <= age('{horizon % 2**32}'::xid)"

    def hashable(self, view: str) -> str:
        # A type without a hash function (json, point) is hashed as its text.
        return f"""SELECT a.attname, EXISTS (
                       SELECT 1 FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_am am ON am.oid = o.opcmethod
                       WHERE am.amname = 'hash' AND o.opcdefault
                         AND o.opcintype = coalesce(nullif(t.typbasetype, 0), a.atttypid))
                   FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                   WHERE a.attrelid = {string_literal("pg_temp." + view, self.dialect)}::regclass
                     AND a.attnum > 0 ORDER BY a.attnum"""


class MySQL(Warehouse):
    def scheme(self, version: str) -> str:
        return "lightning/1 mysql md5-60"

    def row_hash(self, fingerprint: str, columns: Sequence[str], hashable: Sequence[bool]) -> str:
        # No 64-bit hash of typed values: the MD5 of each value's bytes, length-prefixed (so that no two
        # rows write the same bytes) with a null written as '-', cut to 60 bits (a positive BIGINT).
        # Binary strings: no collation to mix.
        parts = [string_literal(fingerprint, self.dialect)]
        for column in columns:
            value = f"CAST({column} AS BINARY)"
            parts.append(f"COALESCE(CONCAT(LENGTH({value}), ':', {value}), '-')")
        return f"CAST(CONV(LEFT(MD5(CONCAT_WS('|', {', '.join(parts)})), 15), 16, 10) AS SIGNED)"

    def schema_exists(self, schema: str) -> str:
        return f"SELECT count(*) FROM information_schema.schemata WHERE schema_name = {self.literal(schema)}"

    def create_schema(self, quoted: str) -> str:
        return f"CREATE DATABASE IF NOT EXISTS {quoted}"

    def grant(self, schema: str, exists: bool, user: str, database: str) -> str:
        name, _, host = user.partition("@")
        quoted = "`" + schema.replace("`", "``") + "`"
        return f"GRANT ALL PRIVILEGES ON {quoted}.* TO '{name}'@'{host or '%'}'"

    def column_types(self, schema: str, table: str) -> str:
        return (
            "SELECT column_name, column_type FROM information_schema.columns "
            f"WHERE table_schema = {string_literal(schema, self.dialect)} "
            f"AND table_name = {string_literal(table, self.dialect)} ORDER BY ordinal_position"
        )

    def index(self, table: str, name: str, column: str) -> str:
        return f"CREATE INDEX {name} ON {table} ({column}(191))"  # a prefix: text is indexed by its start

    def update_from(self, table: str, source: str, assignments: list[tuple[str, str]], matches: str, where: str) -> str:
        sets = ", ".join(f"{table}.{column} = {value}" for column, value in assignments)
        return f"UPDATE {table} JOIN {source} ON {matches} SET {sets} WHERE {where}"

    def primary_key_of(self, table: str) -> str:
        schema, _, name = table.rpartition(".")
        where = f"table_schema = {string_literal(schema, self.dialect)}" if schema else "table_schema = DATABASE()"
        return (
            "SELECT column_name FROM information_schema.key_column_usage "
            f"WHERE {where} AND table_name = {string_literal(name, self.dialect)} AND constraint_name = 'PRIMARY'"
        )


class Redshift(Warehouse):
    """Amazon Redshift: only SQL that Redshift and PostgreSQL both have, since it is tested on PostgreSQL (a
    profile: see docs/sources.md)."""

    def scheme(self, version: str) -> str:
        return "lightning/1 redshift md5"  # MD5 of each value's text: the same on every release

    def row_hash(self, fingerprint: str, columns: Sequence[str], hashable: Sequence[bool]) -> str:
        # No hash of typed values (nor hash_record_extended): the MD5 of each value's text, length-prefixed
        # (so that no two rows write the same text) with a null written as '-', joined by '|' (Redshift's
        # CONCAT takes two arguments, and it has no CONCAT_WS): 32 hexadecimal digits.
        parts = [self.literal(fingerprint)]
        for column in columns:
            text = cast(column, self.text_type, self.dialect)
            parts.append(f"COALESCE(CAST(LENGTH({text}) AS VARCHAR(20)) || ':' || {text}, '-')")
        joined = " || '|' || ".join(parts)
        return f"MD5({joined})"

    def literal(self, text: str) -> str:
        # Quotes doubled; a backslash as CHR(92), since Redshift reads it as an escape in a literal and
        # PostgreSQL (standard_conforming_strings) does not.
        pieces = ["'" + piece.replace("'", "''") + "'" for piece in text.split("\\")]
        return pieces[0] if len(pieces) == 1 else "(" + " || CHR(92) || ".join(pieces) + ")"

    def distinct(self, a: str, b: str) -> str:
        # Redshift has no IS DISTINCT FROM.
        return f"(CASE WHEN ({a}) = ({b}) OR (({a}) IS NULL AND ({b}) IS NULL) THEN 0 ELSE 1 END) = 1"

    def schema_exists(self, schema: str) -> str:
        # pg_namespace lists every schema; information_schema only those the user may use.
        return f"SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = {self.literal(schema)}"

    def grant(self, schema: str, exists: bool, user: str, database: str) -> str:
        role = '"' + user.replace('"', '""') + '"'
        if exists:
            return f"GRANT USAGE, CREATE ON SCHEMA {_quoted(schema)} TO {role}"
        return f"GRANT CREATE ON DATABASE {_quoted(database) if database else '<the database>'} TO {role}"


class Snowflake(Warehouse):
    """Snowflake: unquoted names are stored in upper case (the planner resolves ours so), no indexes, and
    DDL commits the open transaction (the merge's transaction holds none)."""

    def scheme(self, version: str) -> str:
        return "lightning/1 snowflake hash"

    def row_hash(self, fingerprint: str, columns: Sequence[str], hashable: Sequence[bool]) -> str:
        # HASH takes values of every type (VARIANT, ARRAY...) and is a signed 64-bit integer; its low 63 bits,
        # non-negative, are read as a 64-bit integer whatever width the server gives the result.
        return f"BITAND(HASH({', '.join([self.literal(fingerprint), *columns])}), 9223372036854775807)"

    def grant(self, schema: str, exists: bool, user: str, database: str) -> str:
        role = quote_identifier(user, self.dialect)
        db = quote_identifier(database, self.dialect) if database else "<the database>"
        if exists:
            return f"GRANT USAGE, CREATE TABLE ON SCHEMA {db}.{quote_identifier(schema, self.dialect)} TO ROLE {role}"
        return f"GRANT USAGE, CREATE SCHEMA ON DATABASE {db} TO ROLE {role}"


class ClickHouse(Warehouse):
    """ClickHouse: no transactions (each merge makes a new generation of the snapshot), a database for a
    schema, tables of its default engine (MergeTree)."""

    def scheme(self, version: str) -> str:
        return "lightning/1 clickhouse sipHash64"

    def row_hash(self, fingerprint: str, columns: Sequence[str], hashable: Sequence[bool]) -> str:
        # sipHash64 of a tuple hashes each element by its type, a null included (a null argument outside a
        # tuple would make the whole hash null); read as a signed 64-bit integer.
        return f"reinterpretAsInt64(sipHash64(tuple({', '.join([self.literal(fingerprint), *columns])})))"

    def create_schema(self, quoted: str) -> str:
        return f"CREATE DATABASE IF NOT EXISTS {quoted}"

    def grant(self, schema: str, exists: bool, user: str, database: str) -> str:
        quoted = quote_identifier(schema, self.dialect)
        privileges = "SELECT, INSERT, CREATE TABLE, DROP TABLE, ALTER DELETE"
        if not exists:
            privileges = "CREATE DATABASE, " + privileges
        return f"GRANT {privileges} ON {quoted}.* TO {quote_identifier(user, self.dialect)}"


class Databricks(Warehouse):
    """Databricks SQL (Unity Catalog): a statement at a time, no transactions across them (each merge makes a
    new generation of the snapshot), Delta tables of the catalog's defaults."""

    def scheme(self, version: str) -> str:
        return "lightning/1 databricks xxhash64"

    def row_hash(self, fingerprint: str, columns: Sequence[str], hashable: Sequence[bool]) -> str:
        # xxhash64 skips a null argument: each value is followed by whether it is null, so that no two rows
        # hash the same values in other places.
        parts = [self.literal(fingerprint)]
        for column in columns:
            parts += [column, f"{column} IS NULL"]
        return f"xxhash64({', '.join(parts)})"

    def grant(self, schema: str, exists: bool, user: str, database: str) -> str:
        principal = quote_identifier(user, self.dialect)
        catalog = quote_identifier(database, self.dialect) if database else "<the catalog>"
        if exists:
            qualified = f"{catalog}.{quote_identifier(schema, self.dialect)}"
            return f"GRANT USE SCHEMA, CREATE TABLE, SELECT, MODIFY ON SCHEMA {qualified} TO {principal}"
        return f"GRANT USE CATALOG, CREATE SCHEMA ON CATALOG {catalog} TO {principal}"


class BigQuery(Warehouse):
    """BigQuery: datasets for schemas, a job per statement and no transaction across them (each merge makes
    a new generation of the snapshot)."""

    def scheme(self, version: str) -> str:
        return "lightning/1 bigquery farm_fingerprint json"

    def row_hash(self, fingerprint: str, columns: Sequence[str], hashable: Sequence[bool]) -> str:
        # FARM_FINGERPRINT takes one string: the row's JSON text, each value typed and a null written null.
        return f"FARM_FINGERPRINT(TO_JSON_STRING(STRUCT({', '.join([self.literal(fingerprint), *columns])})))"

    def grant(self, schema: str, exists: bool, user: str, database: str) -> str:
        kind = "serviceAccount" if user.endswith(".gserviceaccount.com") else "user"
        if exists:
            dataset = quote_identifier(schema, self.dialect)
            return f'GRANT `roles/bigquery.dataEditor` ON SCHEMA {dataset} TO "{kind}:{user}"'
        return f"grant {kind}:{user} roles/bigquery.dataEditor on the project (it may then create datasets)"

    def column_types(self, schema: str, table: str) -> str:
        # Qualified by its dataset: the view answers for that dataset's tables, wherever it lies.
        return (
            f"SELECT column_name, data_type FROM {quote_identifier(schema, self.dialect)}.INFORMATION_SCHEMA.COLUMNS "
            f"WHERE table_name = {self.literal(table)} ORDER BY ordinal_position"
        )


class DuckDB(Warehouse):
    def key_cast(self, expression: str, declared: str) -> str:
        return cast(expression, declared, self.dialect)  # DuckDB's catalog names a type whole

    def scheme(self, version: str) -> str:
        return f"lightning/1 duckdb {version} hash"  # hash() is not promised across releases

    def row_hash(self, fingerprint: str, columns: Sequence[str], hashable: Sequence[bool]) -> str:
        return f"hash({', '.join([string_literal(fingerprint, self.dialect), *columns])})"

    def grant(self, schema: str, exists: bool, user: str, database: str) -> str:
        return "make the database file writable by the user the engine runs as"


WAREHOUSES: dict[str, Warehouse] = {
    "postgres": Postgres(
        "postgres",
        "BIGINT",
        "TEXT",
        "TEXT",
        "SELECT current_setting('server_version')",
        # The planner cannot know that few rows pass the diff's hash comparison; at its default cost of
        # passing a row between processes it would diff a large model on one core.
        session=("SET parallel_tuple_cost = 0.001",),
        # Random reads cost what sequential ones do once pages are cached (or on SSDs): at the default,
        # the merge of a checkpoint's rows into a large snapshot scanned it whole rather than probing its
        # primary key, twice as slow. For the merge only: a count of the model's rows would then walk its
        # primary key's index, fetching each row whose page changed since the last VACUUM.
        merge_settings=("SET LOCAL random_page_cost = 1.1",),
        analyze="ANALYZE",
        scratch_table="CREATE UNLOGGED TABLE",
        row_versions=True,
    ),
    "mysql": MySQL(
        "mysql",
        "BIGINT",
        "CHAR",
        "LONGTEXT",
        "SELECT VERSION()",
        begin="START TRANSACTION",
        current_user="SELECT CURRENT_USER()",
        schema_noun="database",
    ),
    "redshift": Redshift(
        "redshift",
        "VARCHAR(32)",
        "VARCHAR(65535)",  # Redshift's longest (its TEXT is VARCHAR(256))
        "VARCHAR(65535)",
        "SELECT version()",
        indexes=False,  # Redshift has no indexes (a primary key is not enforced): joins scan
        analyze="ANALYZE",
        current_database="SELECT current_database()",
    ),
    "snowflake": Snowflake(
        "snowflake",
        "NUMBER(19, 0)",
        "VARCHAR",
        "VARCHAR",
        "SELECT CURRENT_VERSION()",
        current_user="SELECT CURRENT_ROLE()",  # privileges are granted to roles
        indexes=False,  # Snowflake has no indexes, and its primary keys are not enforced
        current_database="SELECT CURRENT_DATABASE()",
        current_schema="SELECT CURRENT_SCHEMA()",  # CREATE SCHEMA makes the new schema the current one
    ),
    "clickhouse": ClickHouse(
        "clickhouse",
        "Int64",
        "Nullable(String)",
        "Nullable(String)",
        "SELECT version()",
        current_user="SELECT currentUser()",
        schema_noun="database",
        indexes=False,  # a join probes a hash table of the smaller side; no index would serve it
        transactions=False,
        generation_type="Int64",
    ),
    "databricks": Databricks(
        "databricks",
        "BIGINT",
        "STRING",
        "STRING",
        "SELECT version()",
        current_user="SELECT current_user()",
        indexes=False,  # Delta tables have no indexes
        current_database="SELECT current_catalog()",
        transactions=False,
    ),
    "bigquery": BigQuery(
        "bigquery",
        "INT64",
        "STRING",
        "STRING",
        "SELECT 'bigquery'",  # no version to read: the hash's is the API's
        current_user="SELECT SESSION_USER()",
        schema_noun="dataset",
        indexes=False,
        transactions=False,
        generation_type="INT64",
        key_text_type="STRING",
    ),
    "duckdb": DuckDB("duckdb", "UBIGINT", "VARCHAR", "VARCHAR", "SELECT version()", indexes=False),
}


def warehouse_for(dialect: str, source_type: str) -> Warehouse:
    """The Lightning SQL of a source's dialect; ConfigError where the engine does not run yet."""
    try:
        return WAREHOUSES[dialect]
    except KeyError:
        raise ConfigError(
            f"the Lightning engine does not run on {source_type} sources yet (it runs on "
            f"{', '.join(sorted(WAREHOUSES))}): set the source's engine to basic"
        ) from None


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pg_qualified(schema: str, table: str) -> str:
    return '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'
