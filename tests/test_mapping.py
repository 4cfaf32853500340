"""Mapping: typed values, nested paths, identifiers, and errors at compile time, as user objects (pure, no I/O)."""

from __future__ import annotations

import datetime as dt
import decimal

import orjson
import pyarrow as pa
import pytest

from smartingest.config.models import UsersSync
from smartingest.errors import MappingError
from smartingest.mapping import compile_user_plan
from smartingest.synctypes.common import record_columns, type_conflicts, user_objects


def _mappings(*items: dict) -> list:
    sync = UsersSync.model_validate({"model": "m", "destination": "d", "type": "users", "mappings": list(items)})
    return sync.mappings


def test_values_leave_as_json_iterable_accepts():
    batch = pa.record_batch(
        {
            "id": pa.array([1, 2], pa.int32()),
            "email": ["a@x.io", "b@x.io"],
            "ltv": pa.array([decimal.Decimal("12.50"), None], pa.decimal128(10, 2)),
            "seen": pa.array([dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.UTC), None], pa.timestamp("us", tz="UTC")),
            "born": pa.array([dt.date(1990, 5, 17), None]),
            "vip": [True, None],
            "visits": pa.array([3, None], pa.int16()),
            "city": ["Paris", None],
        }
    )
    plan = compile_user_plan(
        _mappings(
            {"from": "email", "to": "email"},
            {"from": "ltv", "to": "ltv"},
            {"from": "seen", "to": "lastSeen"},
            {"from": "born", "to": "birthday"},
            {"from": "vip", "to": "vip"},
            {"from": "visits", "to": "visits"},
            {"from": "city", "to": "address.city"},
            {"static": 3, "to": "address.floor"},
            {"static": "2024-01-01", "to": "since", "type": "date"},
        ),
        batch.schema,
        "email",
    )
    mapped = user_objects(plan, batch, "id", None)
    first, second = (orjson.loads(r.body) for r in record_columns(mapped))
    assert first == {
        "email": "a@x.io",
        "dataFields": {
            "ltv": 12.5,
            "lastSeen": "2024-03-01 12:30:00 +00:00",
            "birthday": "1990-05-17",
            "vip": True,
            "visits": 3,
            "address": {"city": "Paris", "floor": 3},
            "since": "2024-01-01",
        },
    }
    assert second["dataFields"]["ltv"] is None
    assert second["dataFields"]["address"] == {"city": None, "floor": 3}
    assert [r.pk for r in record_columns(mapped)] == ["1", "2"]


def test_rows_without_identifier_are_rejected_with_reason():
    batch = pa.record_batch({"id": [1, 2, 3], "email": ["a@x.io", None, "  "]})
    plan = compile_user_plan(_mappings({"from": "email", "to": "email"}), batch.schema, "email")
    mapped = user_objects(plan, batch, "id", None)
    assert [r.pk for r in record_columns(mapped)] == ["1"]
    assert [(pk, reason.split(":")[0], code) for pk, _, reason, code in mapped.rejected] == [
        ("2", "email is empty", "no_identifier"),
        ("3", "email is empty", "no_identifier"),
    ]


def test_user_id_and_flags_go_top_level():
    batch = pa.record_batch({"id": [7], "uid": [42], "email": ["a@x.io"]})
    plan = compile_user_plan(
        _mappings({"from": "uid", "to": "userId"}, {"from": "email", "to": "email"}),
        batch.schema,
        "userId",
        prefer_user_id=True,
        merge_nested_objects=True,
    )
    assert orjson.loads(record_columns(user_objects(plan, batch, "id", None))[0].body) == {
        "userId": "42",
        "email": "a@x.io",
        "preferUserId": True,
        "mergeNestedObjects": True,
    }


def test_fingerprint_changes_with_the_mapping():
    schema = pa.schema([("id", pa.int64()), ("email", pa.string()), ("a", pa.string())])
    one = compile_user_plan(_mappings({"from": "email", "to": "email"}, {"from": "a", "to": "x"}), schema, "email")
    two = compile_user_plan(_mappings({"from": "email", "to": "email"}, {"from": "a", "to": "y"}), schema, "email")
    assert one.fingerprint != two.fingerprint
    assert one.source_columns == ["a", "email"]


@pytest.mark.parametrize(
    ("mappings", "schema", "message"),
    [
        ([{"from": "email", "to": "email"}, {"from": "zip", "to": "zip"}], [("email", pa.string())], "no column 'zip'"),
        ([{"from": "first", "to": "first"}], [("first", pa.string())], "no column is mapped to 'email'"),
        (
            [{"from": "email", "to": "email"}, {"from": "blob", "to": "b"}],
            [("email", pa.string()), ("blob", pa.binary())],
            "binary",
        ),
    ],
)
def test_compile_errors_name_the_mapping(mappings, schema, message):
    with pytest.raises(MappingError, match=message):
        compile_user_plan(_mappings(*mappings), pa.schema(schema), "email")


def test_nested_values_are_encoded_and_numbers_past_a_long_are_rejected():
    batch = pa.record_batch(
        {
            "id": [1, 2],
            "email": ["a@x.io", "b@x.io"],
            "big": pa.array([2**64 - 1, 5], pa.uint64()),
            "orders": pa.array(
                [[], [{"total": decimal.Decimal("9.50"), "at": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)}]],
                pa.list_(pa.struct([("total", pa.decimal128(6, 2)), ("at", pa.timestamp("us", tz="UTC"))])),
            ),
        }
    )
    plan = compile_user_plan(
        _mappings({"from": "email", "to": "email"}, {"from": "big", "to": "big"}, {"from": "orders", "to": "orders"}),
        batch.schema,
        "email",
    )
    mapped = user_objects(plan, batch, "id", None)
    assert [(pk, reason) for pk, _, reason, _ in mapped.rejected] == [
        ("1", "big (column 'big'): a number above 9,223,372,036,854,775,807 is out of range")
    ]
    (record,) = record_columns(mapped)
    assert b'"total":9.50' in record.body
    assert orjson.loads(record.body)["dataFields"] == {
        "big": 5,
        "orders": [{"total": 9.5, "at": "2024-01-02 03:04:05 +00:00"}],
    }


def test_each_mapping_compiles_to_a_small_object():
    schema = pa.schema([("id", pa.int64()), ("email", pa.string()), ("score", pa.float64())])
    plan = compile_user_plan(
        _mappings(
            {"from": "email", "to": "email"},
            {"from": "score", "to": "stats.score"},
            {"static": 3, "to": "tier"},
        ),
        schema,
        "email",
    )
    column, static = plan.fields[1], plan.fields[2]
    assert (column.columns, column.kinds, column.source) == (
        ("score",),
        (("stats.score", "double"),),
        "column 'score' (double)",
    )
    assert (static.columns, static.kinds, static.source) == ((), (("tier", "long"),), "the static value 3")
    assert plan.source_columns == ["email", "score"] and plan.data_targets == ["stats.score", "tier"]
    # A static value whose type the project's field does not take is a conflict like a column's.
    conflicts = type_conflicts(plan, {"tier": "string", "stats.score": "double"})
    assert list(conflicts) == ["tier"] and "the static value 3 sends long values" in conflicts["tier"].reason


def test_skip_null_leaves_the_field_out_of_the_rows_where_it_is_null():
    batch = pa.record_batch(
        {
            "id": [1, 2, 3],
            "email": ["a@x.io", "b@x.io", "c@x.io"],
            "plan": ["pro", None, None],
            "city": ["Paris", "Lyon", None],
            "zip": ["75001", None, None],
            "note": [None, None, None],
        }
    )
    plan = compile_user_plan(
        _mappings(
            {"from": "email", "to": "email"},
            {"from": "plan", "to": "plan", "skip_null": True},
            {"from": "city", "to": "address.city", "skip_null": True},
            {"from": "zip", "to": "address.zip", "skip_null": True},
            {"from": "note", "to": "note"},  # without skip_null: null is sent, and clears the field
        ),
        batch.schema,
        "email",
    )
    bodies = [orjson.loads(r.body)["dataFields"] for r in record_columns(user_objects(plan, batch, "id", None))]
    assert bodies == [
        {"plan": "pro", "address": {"city": "Paris", "zip": "75001"}, "note": None},
        {"address": {"city": "Lyon"}, "note": None},
        {"note": None},  # an address left empty is left out too: {} would clear the one Iterable holds
    ]


def test_skip_null_on_every_field_sends_empty_data_fields_where_all_are_null():
    batch = pa.record_batch({"id": [1, 2], "email": ["a@x.io", "b@x.io"], "plan": ["pro", None]})
    mappings = _mappings({"from": "email", "to": "email"}, {"from": "plan", "to": "plan", "skip_null": True})
    plan = compile_user_plan(mappings, batch.schema, "email")
    bodies = [orjson.loads(r.body) for r in record_columns(user_objects(plan, batch, "id", None))]
    assert bodies == [{"email": "a@x.io", "dataFields": {"plan": "pro"}}, {"email": "b@x.io", "dataFields": {}}]


def test_skip_null_takes_part_in_the_fingerprint_only_when_set():
    schema = pa.schema({"email": pa.string(), "plan": pa.string()})
    base = [{"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}]
    plain = compile_user_plan(_mappings(*base), schema, "email").fingerprint
    explicit = compile_user_plan(_mappings(base[0], {**base[1], "skip_null": False}), schema, "email").fingerprint
    skipping = compile_user_plan(_mappings(base[0], {**base[1], "skip_null": True}), schema, "email").fingerprint
    assert plain == explicit != skipping


def test_variables_send_the_runs_metadata_and_take_no_part_in_the_hash():
    import datetime as dt

    from smartingest.mapping.kinds import RunInfo

    batch = pa.record_batch({"id": [1], "email": ["a@x.io"]})
    mappings = _mappings(
        {"from": "email", "to": "email"},
        {"variable": "run_id", "to": "run.id"},
        {"variable": "run_started_at", "to": "run.startedAt"},
        {"variable": "sync_name", "to": "run.sync"},
        {"variable": "model_id", "to": "run.model"},
        {"variable": "now", "to": "seenAt"},
    )
    started = dt.datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=dt.UTC)
    plan = compile_user_plan(mappings, batch.schema, "email", run=RunInfo("to_users", "customers", 41, started))
    [body] = [orjson.loads(r.body)["dataFields"] for r in record_columns(user_objects(plan, batch, "id", None))]
    now = dt.datetime.strptime(body.pop("seenAt"), "%Y-%m-%d %H:%M:%S +00:00").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - now).total_seconds()) < 60
    assert body == {
        "run": {"id": 41, "startedAt": "2026-03-04 05:06:07 +00:00", "sync": "to_users", "model": "customers"}
    }
    assert dict(kind for k in plan.fields for kind in k.kinds)["run.startedAt"] == "date"
    assert plan.source_columns == ["email"]  # variables read no column
    later = compile_user_plan(mappings, batch.schema, "email", run=RunInfo("to_users", "customers", 42, None))
    assert later.fingerprint == plan.fingerprint  # a new run id does not make every row changed


@pytest.mark.parametrize(
    ("mapping", "run", "message"),
    [
        ({"variable": "run_id", "to": "userId"}, True, "must come from a column, not a variable"),
        ({"variable": "run_id", "to": "lastRun"}, False, "sent by runs of a sync"),
    ],
)
def test_variable_mapping_errors_name_the_mapping(mapping, run, message):
    from smartingest.mapping.kinds import RunInfo

    schema = pa.schema({"email": pa.string()})
    info = RunInfo("s", "m") if run else None
    with pytest.raises(MappingError, match=rf"mappings\[1\]: .*{message}"):
        compile_user_plan(_mappings({"from": "email", "to": "email"}, mapping), schema, "email", run=info)


def _template_bodies(batch: pa.RecordBatch, *mappings: dict, run=None) -> list[dict]:
    plan = compile_user_plan(_mappings({"from": "email", "to": "email"}, *mappings), batch.schema, "email", run=run)
    return [orjson.loads(r.body) for r in record_columns(user_objects(plan, batch, "id", None))]


def test_a_plain_template_renders_in_one_arrow_step_exactly_as_liquid_does():
    from liquid import Environment

    from smartingest.mapping.templates import compile_template

    batch = pa.record_batch(
        {
            "id": [1, 2, 3],
            "email": ["a@x.io", "b@x.io", "c@x.io"],
            "first": ['Zoë "Z"', None, "Åsa\\n"],
            "visits": pa.array([7, None, -2], pa.int32()),
        }
    )
    source = "Hi {{ first }}, visit #{{ visits }}!"
    compiled = compile_template(source, batch.schema, (), "t")
    assert compiled.concat is not None  # the fast path
    liquid = Environment()
    expected = [liquid.from_string(source).render(**row) for row in batch.select(["first", "visits"]).to_pylist()]
    assert [
        b["dataFields"]["greeting"] for b in _template_bodies(batch, {"template": source, "to": "greeting"})
    ] == expected


def test_templates_with_filters_tags_and_variables_render_per_row():
    from smartingest.mapping.kinds import RunInfo

    batch = pa.record_batch({"id": [1, 2, 3], "email": ["a@x.io", "b@x.io", "c@x.io"], "plan": ["pro", "free", "pro"]})
    template = "{{ plan | upcase }}{% if plan == 'pro' %} (paid){% endif %} via {{ sync_name }} run {{ run_id }}"
    bodies = _template_bodies(batch, {"template": template, "to": "label"}, run=RunInfo("to_users", "customers", 9))
    assert [b["dataFields"]["label"] for b in bodies] == [
        "PRO (paid) via to_users run 9",
        "FREE via to_users run 9",
        "PRO (paid) via to_users run 9",
    ]


def test_a_row_whose_template_fails_is_rejected_with_liquid_s_message():
    batch = pa.record_batch({"id": [1, 2], "email": ["a@x.io", "b@x.io"], "n": [10, 10], "d": [2, 0]})
    plan = compile_user_plan(
        _mappings({"from": "email", "to": "email"}, {"template": "{{ n | divided_by: d }}", "to": "ratio"}),
        batch.schema,
        "email",
    )
    mapped = user_objects(plan, batch, "id", None)
    assert [orjson.loads(r.body)["dataFields"] for r in record_columns(mapped)] == [{"ratio": "5"}]
    [(pk, _op, reason, code)] = mapped.rejected
    assert (pk, code) == ("2", "template_failed")
    assert reason == "ratio: the template failed: divided_by: can't divide by 0"
    assert plan.source_columns == ["d", "email", "n"]  # the hash covers what the template reads


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "Hi {{ frist_name }}",
            r"reads 'frist_name', which is neither a column of the model \(id, email, first_name\)",
        ),
        ("{{ first_name | shout }}", "unknown filter 'shout'"),
        ("{{ first_name }", "does not parse: expected '}}'"),
    ],
)
def test_template_errors_stop_the_sync_before_any_row_naming_the_mapping(template, message):
    schema = pa.schema({"id": pa.int64(), "email": pa.string(), "first_name": pa.string()})
    with pytest.raises(MappingError, match=rf"mappings\[1\]: .*{message}"):
        compile_user_plan(
            _mappings({"from": "email", "to": "email"}, {"template": template, "to": "x"}), schema, "email"
        )


def test_a_dot_path_reads_into_struct_and_json_columns():
    batch = pa.record_batch(
        {
            "id": [1, 2, 3],
            "email": ["a@x.io", "b@x.io", "c@x.io"],
            "address": pa.array(
                [{"city": "Paris", "geo": {"zip": 75001}}, None, {"city": None, "geo": None}],
                pa.struct([("city", pa.string()), ("geo", pa.struct([("zip", pa.int32())]))]),
            ),
            "prefs": pa.array(['{"theme": {"dark": true}, "n": 1.50}', None, "{not json"]),
        }
    )
    plan = compile_user_plan(
        _mappings(
            {"from": "email", "to": "email"},
            {"from": "address.city", "to": "city"},
            {"from": "address.geo.zip", "to": "zip"},
            {"from": "prefs.theme.dark", "to": "dark", "parse_json": True},
            {"from": "prefs.n", "to": "n", "parse_json": True},
        ),
        batch.schema,
        "email",
    )
    assert plan.source_columns == ["address", "email", "prefs"]
    assert dict(kind for k in plan.fields for kind in k.kinds)["zip"] == "long"
    mapped = user_objects(plan, batch, "id", None)
    assert [orjson.loads(r.body)["dataFields"] for r in record_columns(mapped)] == [
        {"city": "Paris", "zip": 75001, "dark": True, "n": 1.50},
        {"city": None, "zip": None, "dark": None, "n": None},
    ]
    [(pk, _op, reason, _code)] = mapped.rejected
    assert pk == "3" and "column 'prefs' holds text that is not JSON" in reason


@pytest.mark.parametrize(
    ("source", "to", "message"),
    [
        ("address.street", "street", r"'address' has no field 'street' \(fields: city\)"),
        ("address.city.x", "x", "'address.city' is string, which has no fields to read 'x' from"),
        ("address.city", "email", "email identifies users and must be a column of its own"),
        ("adress.city", "city", "the model has no column 'adress.city'"),
    ],
)
def test_dot_path_errors_name_the_path(source, to, message):
    schema = pa.schema({"email": pa.string(), "address": pa.struct([("city", pa.string())])})
    mappings = (
        [{"from": "email", "to": "email"}, {"from": source, "to": to}]
        if to != "email"
        else [{"from": source, "to": to}]
    )
    with pytest.raises(MappingError, match=message):
        compile_user_plan(_mappings(*mappings), schema, "email")


def test_object_and_array_mappings_build_values_from_several_mappings():
    batch = pa.record_batch(
        {
            "id": [1, 2],
            "email": ["a@x.io", "b@x.io"],
            "city": ["Paris", None],
            "zip": ["75001", None],
            "first_tag": ["vip", "new"],
            "score": pa.array([1.5, None]),
        }
    )
    mappings = _mappings(
        {"from": "email", "to": "email"},
        {
            "object": [
                {"from": "city", "to": "city"},
                {"from": "zip", "to": "geo.zip", "skip_null": True},
                {"static": "FR", "to": "country"},
            ],
            "to": "address",
        },
        {"object": [{"from": "zip", "to": "zip", "skip_null": True}], "to": "maybe"},
        {
            "array": [
                {"from": "first_tag"},
                {"static": "all"},
                {"object": [{"from": "score", "to": "score"}, {"template": "{{ first_tag }}!", "to": "label"}]},
            ],
            "to": "tags",
        },
    )
    plan = compile_user_plan(mappings, batch.schema, "email")
    assert plan.source_columns == ["city", "email", "first_tag", "score", "zip"]
    bodies = [orjson.loads(r.body)["dataFields"] for r in record_columns(user_objects(plan, batch, "id", None))]
    assert bodies == [
        {
            "address": {"city": "Paris", "geo": {"zip": "75001"}, "country": "FR"},
            "maybe": {"zip": "75001"},
            "tags": ["vip", "all", {"score": 1.5, "label": "vip!"}],
        },
        # geo and the object of only null parts that skip nulls are left out; array elements stay, as null
        {"address": {"city": None, "country": "FR"}, "tags": ["new", "all", {"score": None, "label": "new!"}]},
    ]
    kinds = dict(kind for k in plan.fields for kind in k.kinds)
    assert kinds["address.city"] == "string" and kinds["address.geo.zip"] == "string"


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"object": [{"from": "a", "to": "x"}, {"from": "b", "to": "x"}], "to": "o"},
            "the object has the field 'x' twice",
        ),
        (
            {"object": [{"from": "a", "to": "x"}, {"from": "b", "to": "x.y"}], "to": "o"},
            "'x' is mapped as a value and also",
        ),
        (
            {"object": [{"from": "nope", "to": "x"}], "to": "o"},
            r"mappings\[1\]\.object\[0\]: the model has no column 'nope'",
        ),
        (
            {"array": [{"from": "a"}, {"from": "nope"}], "to": "t"},
            r"mappings\[1\]\.array\[1\]: the model has no column",
        ),
        ({"object": [{"from": "a", "to": "x"}], "to": "userId"}, "userId identifies users"),
    ],
)
def test_object_and_array_errors_name_the_part_at_fault(mapping, message):
    schema = pa.schema({"email": pa.string(), "a": pa.string(), "b": pa.string()})
    with pytest.raises(MappingError, match=message):
        compile_user_plan(_mappings({"from": "email", "to": "email"}, mapping), schema, "email")


def test_an_array_element_has_no_field_name():
    with pytest.raises(Exception, match=r"array\[0\] is an element of the array: leave out its `to`"):
        _mappings({"array": [{"from": "a", "to": "x"}], "to": "t"})


def test_a_static_value_of_type_null_sends_null():
    batch = pa.record_batch({"id": [1], "email": ["a@x.io"]})
    mappings = _mappings({"from": "email", "to": "email"}, {"static": "ignored", "to": "coupon", "type": "null"})
    plan = compile_user_plan(mappings, batch.schema, "email")
    [body] = [orjson.loads(r.body) for r in record_columns(user_objects(plan, batch, "id", None))]
    assert body["dataFields"] == {"coupon": None}
