"""Values leave exactly: decimals, floats, dates, nesting and JSON, by the rules of docs/values.md.

The first tests look at the JSON the mapping writes (pure, no I/O); the last ones send real PostgreSQL
rows to the sandbox over HTTP and read back what Iterable would hold.
"""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from smartingest import service
from smartingest.config.models import UsersSync
from smartingest.mapping import compile_user_plan
from smartingest.mapping.encode import Encoder, Problems, json_dates
from smartingest.synctypes.common import record_columns, user_objects

D = decimal.Decimal


def _encode(array: pa.Array, invalid_values: str = "reject", parse_json: bool = False) -> tuple[list, list]:
    problems = Problems(len(array))
    out = Encoder(invalid_values).encode(array, "f", problems, parse_json)
    return out.to_pylist(), [(mask.to_pylist(), reason) for mask, reason in problems.masks]


def test_decimals_leave_as_their_own_digits():
    cents = [D(i) / 100 for i in range(0, 10_001)]  # 0.00 .. 100.00: about 13% gained float noise before
    out, problems = _encode(pa.array(cents, pa.decimal128(10, 2)))
    assert problems == []
    assert out == [f"{c:.2f}" for c in cents]
    assert all(D(repr(float(text))) == c for text, c in zip(out, cents, strict=True))


def test_a_decimal_a_double_cannot_hold_is_rejected_and_one_it_can_is_sent():
    values = [D("1234567890123456789.0123456789"), D("1.5000000000"), D("0.1234567890"), D("12345678.9012345678")]
    out, problems = _encode(pa.array(values, pa.decimal128(38, 10)))
    assert out == [None, "1.5000000000", "0.1234567890", None]
    assert problems[0][0] == [True, False, False, True]
    assert "more digits than Iterable's numbers (doubles) keep" in problems[0][1]


def test_whole_decimals_are_longs_within_a_longs_range():
    out, problems = _encode(
        pa.array([D("12345678901234567890"), D("-9223372036854775808"), D(7)], pa.decimal128(20, 0))
    )
    assert out == [None, "-9223372036854775808", "7"]
    assert problems[0][0] == [True, False, False]


def test_floats_leave_in_shortest_form_and_stay_doubles():
    out, _ = _encode(pa.array([0.1, 1.0, 3.4e38, None], pa.float32()))
    assert out == ["0.1", "1.0", "3.4e+38", None]
    out, _ = _encode(pa.array([0.1 + 0.2, 2.0, -0.0, 1e-7]))
    assert out == ["0.30000000000000004", "2.0", "-0.0", "1e-7"]
    assert [type(orjson.loads(text)) for text in out] == [float] * 4


@pytest.mark.parametrize(
    "policy, expected", [("reject", [None, None, None, "1.5"]), ("null", [None, None, None, "1.5"])]
)
def test_nan_and_infinity_are_rejected_or_nulled(policy, expected):
    out, problems = _encode(pa.array([float("nan"), float("inf"), float("-inf"), 1.5]), policy)
    assert out == expected
    if policy == "reject":
        assert [mask for mask, _ in problems] == [[True, False, False, False], [False, True, True, False]]
        assert "NaN is not a number" in problems[0][1]
    else:
        assert problems == []


def test_dates_outside_years_1_to_9999_are_problems():
    days = pa.array([-719_162, -719_163, 2_932_896, 2_932_897, 2**31 - 1, None], pa.int32()).view(pa.date32())
    out, problems = _encode(days)
    assert out == ['"0001-01-01"', None, '"9999-12-31"', None, None, None]
    assert problems[0][0] == [False, True, False, True, True, False]
    stamps = pa.array([2**63 - 1, 0, -(2**63)], pa.int64()).view(pa.timestamp("us"))
    out, problems = _encode(stamps)
    assert out == [None, '"1970-01-01 00:00:00 +00:00"', None]
    assert "0001-01-01..9999-12-31" in problems[0][1]


def test_nesting_is_kept_maps_are_objects_and_json_is_parsed():
    out, _ = _encode(pa.array([[[1, 2], [3]], [], None, [None]]))
    assert out == ["[[1,2],[3]]", "[]", None, "[null]"]
    out, _ = _encode(pa.array([[("a", 1), ("b", None)], []], pa.map_(pa.string(), pa.int64())))
    assert out == ['{"a":1,"b":null}', "{}"]
    out, problems = _encode(pa.array(['{"price": 1.10, "tags": ["x"]}', "not json", None]), parse_json=True)
    assert out == ['{"price": 1.10, "tags": ["x"]}', None, None]
    assert problems == [([False, True, False], "f: the value is not valid JSON")]
    assert _encode(pa.array(['{"a": 1}']))[0] == ['"{\\"a\\": 1}"']  # text unless asked


def test_a_problem_deep_in_a_list_rejects_its_row_only():
    values = pa.array([[{"x": 1.0}], [{"x": float("nan")}, {"x": 2.0}], None])
    out, problems = _encode(values)
    assert out[0] == '[{"x":1.0}]'
    assert problems == [([False, True, False], "f[].x: NaN is not a number Iterable can store")]


def test_strings_are_escaped_exactly():
    values = ['a"b\\c', "line\nbreak\x01", "é ✓", ""]
    out, _ = _encode(pa.array(values))
    assert [orjson.loads(text) for text in out] == values


def _plan(*mappings: dict, **sync: object):
    config = UsersSync.model_validate(
        {"model": "m", "destination": "d", "type": "users", "mappings": list(mappings), **sync}
    )
    return config


def test_rows_with_problems_are_rejected_with_the_field_named():
    sync = _plan({"from": "email", "to": "email"}, {"from": "score", "to": "stats.score"})
    batch = pa.record_batch({"id": [1, 2], "email": ["a@x.io", "b@x.io"], "score": [float("nan"), 2.5]})
    plan = compile_user_plan(sync.mappings, batch.schema, "email")
    mapped = user_objects(plan, batch, "id", None)
    assert mapped.rejected == [
        ("1", "upsert", "stats.score (column 'score'): NaN is not a number Iterable can store", "invalid_value")
    ]
    assert [orjson.loads(r.body) for r in record_columns(mapped)] == [
        {"email": "b@x.io", "dataFields": {"stats": {"score": 2.5}}}
    ]


def test_identifier_options_trim_and_lower_case():
    sync = _plan({"from": "email", "to": "email"}, trim_identifier=True, lowercase_identifier=True)
    batch = pa.record_batch({"id": [1], "email": ["  Ann@X.io "]})
    plan = compile_user_plan(sync.mappings, batch.schema, "email", trim_identifier=True, lowercase_identifier=True)
    (record,) = record_columns(user_objects(plan, batch, "id", None))
    assert (record.email, orjson.loads(record.body)) == ("ann@x.io", {"email": "ann@x.io"})


# -- over real PostgreSQL and the sandbox -----------------------------------------------------------------


def values_sql(pg) -> str:
    return f"select id, email, amount, ratio, precise, seen, born, matrix, prefs, score from {pg.schema}.vals"


VALUES_MAPPINGS = [
    {"from": "email", "to": "email"},
    {"from": "amount", "to": "amount"},
    {"from": "ratio", "to": "ratio"},
    {"from": "precise", "to": "precise"},
    {"from": "seen", "to": "seen"},
    {"from": "born", "to": "born"},
    {"from": "matrix", "to": "matrix"},
    {"from": "prefs", "to": "prefs"},
    {"from": "score", "to": "score"},
]


@pytest.fixture
def vals(pg):
    pg.execute(
        """CREATE TABLE vals (id int primary key, email text, amount numeric(10,2), ratio real,
             precise numeric(38,10), seen timestamptz, born date, matrix int[][], prefs jsonb, score float8)"""
    )
    pg.execute(
        """INSERT INTO vals VALUES
           (1, 'a@x.io', 13.37, 0.1, 1.5, '2024-01-31 13:45:00+00', '1990-05-17', '{{1,2},{3,4}}',
            '{"plan": "pro", "price": 9.10}', 1.5),
           (2, 'b@x.io', 0.07, 0.2, 1234567890123456789.0123456789, 'infinity', '2000-01-01', '{1}',
            '{"tags": [1, 2]}', 2),
           (3, 'c@x.io', 99.99, 0.3, 2.25, '2024-02-01 00:00:00+00', '-infinity', null, null, 'NaN'),
           (4, 'd@x.io', 100.10, null, null, null, null, null, null, 'Infinity')"""
    )
    return pg


def test_postgres_values_arrive_exactly_and_bad_ones_are_rejected_per_row(vals, sandbox, admin, workspace_factory):
    ws = workspace_factory(sandbox.url, sql=values_sql(vals), mappings=VALUES_MAPPINGS)
    result = service.run(ws, "customers_to_users")
    assert result.counts["synced"] == 1 and result.counts["rejected"] == 3, result
    first = admin.users()["a@x.io"]["dataFields"]
    assert first == {
        "amount": 13.37,
        "ratio": 0.1,
        "precise": 1.5,
        "seen": "2024-01-31 13:45:00 +00:00",
        "born": "1990-05-17",
        "matrix": [[1, 2], [3, 4]],
        "prefs": {"plan": "pro", "price": 9.1},
        "score": 1.5,
    }
    rows = service.run_rows(ws, result.run_id, status="rejected")
    assert {row.code for row in rows} == {"invalid_value"}
    reasons = {row.pk: row.reason for row in rows}
    assert "precise (column 'precise'): the decimal has more digits" in reasons["2"]
    assert "seen (column 'seen'): a date after 9999-12-31 (or infinity)" in reasons["2"]
    assert "born (column 'born'): a date before 0001-01-01 (or -infinity)" in reasons["3"]
    assert "score (column 'score'): NaN" in reasons["3"]
    assert "score (column 'score'): Infinity" in reasons["4"]
    fields = admin.get_fields()
    assert (fields["seen"], fields["born"], fields["amount"]) == ("date", "date", "double")


def test_invalid_values_null_sends_null_in_their_place(vals, sandbox, admin, workspace_factory):
    ws = workspace_factory(sandbox.url, sql=values_sql(vals), mappings=VALUES_MAPPINGS, sync={"invalid_values": "null"})
    result = service.run(ws, "customers_to_users")
    assert result.counts["synced"] == 4, result
    users = admin.users()
    assert users["b@x.io"]["dataFields"]["seen"] is None and users["b@x.io"]["dataFields"]["precise"] is None
    assert users["c@x.io"]["dataFields"]["born"] is None and users["d@x.io"]["dataFields"]["score"] is None


def test_preview_shows_infinite_dates(vals, tmp_path: Path, sandbox, workspace_factory):
    ws = workspace_factory(sandbox.url, sql=values_sql(vals), mappings=VALUES_MAPPINGS)
    rows = service.preview_rows(ws, "customers")
    by_id = {row["id"]: row for row in rows}
    assert by_id[2]["seen"] == "infinity" and by_id[3]["born"] == "-infinity"
    assert by_id[1]["seen"] == dt.datetime(2024, 1, 31, 13, 45, tzinfo=dt.UTC)


def test_duckdb_maps_nested_lists_and_json_text_keep_their_shape(tmp_path, sandbox, admin, workspace_factory):
    import duckdb

    path = tmp_path / "shapes.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            """CREATE TABLE shapes AS SELECT 1 AS id, 'a@x.io' AS email, map(['eu', 'us'], [2, 3]) AS visits,
                   [[1, 2], [3]] AS grid, '{"theme": "dark", "ratio": 0.10}'::JSON AS prefs,
                   {'city': 'Oslo', 'zip': NULL} AS address"""
        )
    mappings = [
        {"from": "email", "to": "email"},
        {"from": "visits", "to": "visits"},
        {"from": "grid", "to": "grid"},
        {"from": "prefs", "to": "prefs", "parse_json": True},
        {"from": "address", "to": "address"},
    ]
    ws = workspace_factory(sandbox.url, table="shapes", source={"type": "duckdb", "path": str(path)}, mappings=mappings)
    assert service.run(ws, "customers_to_users").counts["synced"] == 1
    assert admin.users()["a@x.io"]["dataFields"] == {
        "visits": {"eu": 2, "us": 3},
        "grid": [[1, 2], [3]],
        "prefs": {"theme": "dark", "ratio": 0.1},
        "address": {"city": "Oslo", "zip": None},
    }


def test_plan_warns_of_a_floating_point_key(pg, sandbox, workspace_factory):
    pg.execute(
        "CREATE TABLE fk AS SELECT (i / 10.0)::float8 AS id, 'u' || i || '@x.io' AS email FROM generate_series(1, 3) i"
    )
    ws = workspace_factory(
        sandbox.url, sql=f"select id, email from {pg.schema}.fk", mappings=[{"from": "email", "to": "email"}]
    )
    plan = service.plan(ws, "customers_to_users")
    assert plan.counts.added == 3
    assert any("primary key column 'id' is floating-point" in w for w in plan.warnings), plan.warnings


@pytest.mark.parametrize(
    ("text", "is_date"),
    [
        ("2024-05-01", True),
        ("2024-05-01 13:45:00", True),
        ("2024-05-01 13:45:00 +00:00", True),
        ("2024-05-01 13:45:00 UTC", True),
        ("2024-05-01T13:45:00Z", True),
        ("2024-05-01T13:45:00.123+0200", True),
        ("2024-02-29", True),
        ("2024-02-30", False),  # no such day
        ("2023-02-29", False),
        ("2024-05-01 25:00:00", False),  # no such hour
        ("2024-05-01T13:45", False),  # no seconds
        ("2024-5-1", False),
        ("01/05/2024", False),
        ("next tuesday", False),
        ("2024-05-01 13:45:00 Europe/Paris", False),
    ],
)
def test_text_iterable_reads_as_a_date(text, is_date):
    values = pa.array([orjson.dumps(text).decode(), None])
    assert json_dates(values).to_pylist() == [is_date, None]
