"""What the SQL connectors share (sources/sql.py): limits in each dialect's syntax around SQL left as
written, identifiers quoted each dialect's way, and models that would write refused before they run."""

from __future__ import annotations

import pytest

from smartingest.config.models import ModelConfig
from smartingest.errors import ModelError
from smartingest.sources.sql import limited, quote_identifier, refuse_writes

MODEL = ModelConfig(source="src", sql="SELECT 1 AS id", primary_key="id")


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        ("postgres", "SELECT * FROM (\nSELECT id FROM t -- note\n) m LIMIT 100"),
        ("mysql", "SELECT * FROM (\nSELECT id FROM t -- note\n) m LIMIT 100"),
        ("tsql", "SELECT TOP 100 * FROM (\nSELECT id FROM t -- note\n) m"),
        ("oracle", "SELECT * FROM (\nSELECT id FROM t -- note\n) m FETCH FIRST 100 ROWS ONLY"),
        ("teradata", "SELECT TOP 100 * FROM (\nSELECT id FROM t -- note\n) m"),
    ],
)
def test_a_limit_is_written_in_the_dialects_syntax_around_the_query_as_written(dialect, expected):
    assert limited("SELECT id FROM t -- note", 100, dialect) == expected


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [("postgres", '"a""b`c"'), ("mysql", '`a"b``c`'), ("tsql", '[a"b`c]'), ("bigquery", '`a"b\\`c`')],
)
def test_identifiers_are_quoted_the_dialects_way(dialect, expected):
    assert quote_identifier('a"b`c', dialect) == expected


@pytest.mark.parametrize(
    ("sql", "verb"),
    [
        ("DELETE FROM people", "DELETE"),
        ("WITH gone AS (DELETE FROM people RETURNING id) SELECT * FROM gone", "DELETE"),
        ("INSERT INTO people SELECT * FROM people", "INSERT"),
        ("UPDATE people SET name = 'x'", "UPDATE"),
        ("DROP TABLE people", "DROP"),
        ("CREATE TABLE copy AS SELECT * FROM people", "CREATE"),
        ("TRUNCATE TABLE people", "TRUNCATE"),
    ],
)
def test_a_model_that_would_write_is_refused_naming_the_write(sql, verb):
    with pytest.raises(ModelError, match=rf"would write \({verb}\)"):
        refuse_writes(sql, "postgres", MODEL)


def test_several_statements_are_refused():
    with pytest.raises(ModelError, match="holds 2 statements"):
        refuse_writes("SELECT 1; SELECT 2", "postgres", MODEL)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id, name FROM people WHERE name <> 'DELETE FROM x'",
        "WITH recent AS (SELECT * FROM people) SELECT * FROM recent UNION ALL SELECT * FROM people",
        "SELECT id FROM people WHERE @@@ weird syntax sqlglot cannot parse ((",  # the database judges it
    ],
)
def test_queries_pass(sql):
    refuse_writes(sql, "postgres", MODEL)
