"""An event's own keys, column-wise (createdAt, id, eventName), and what an events sync refuses to compile."""

from __future__ import annotations

import datetime as dt

import orjson
import pyarrow as pa
import pytest

from smartingest.codes import ReasonCode
from smartingest.config import parse_project
from smartingest.config.models import EventsSync
from smartingest.errors import ConfigError, MappingError
from smartingest.mapping.encode import Problems
from smartingest.mapping.event_values import created_at, derived_ids, event_ids, event_names
from smartingest.synctypes.base import OP_COLUMN, PK_COLUMN
from smartingest.synctypes.events import SYNC_TYPE

UTC = dt.UTC
NOON = dt.datetime(2024, 1, 31, 12, 0, 0, 999_999, tzinfo=UTC)  # the fraction is dropped
NOON_SECONDS = 1_706_702_400


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", None])
def test_timestamps_are_whole_unix_seconds_of_their_instant(unit: str, tz: str | None) -> None:
    value = NOON if tz is not None else NOON.replace(tzinfo=None)  # naive timestamps are taken as UTC
    array = pa.array([value, None], pa.timestamp("us", tz)).cast(pa.timestamp(unit, tz), safe=False)
    problems = Problems(2)
    assert created_at(array, "createdAt", problems).to_pylist() == [str(NOON_SECONDS), None]
    assert problems.any_mask() is None


def test_dates_are_their_midnight_utc_and_integers_are_sent_as_they_are() -> None:
    problems = Problems(2)
    dates = pa.array([dt.date(2024, 1, 31), dt.date(1970, 1, 1)])
    assert created_at(dates, "createdAt", problems).to_pylist() == ["1706659200", "0"]
    assert created_at(dates.cast(pa.date64()), "createdAt", problems).to_pylist() == ["1706659200", "0"]
    millis = pa.array([1_706_702_400_000, 5], pa.int64())  # already unix time, seconds or milliseconds
    assert created_at(millis, "createdAt", problems).to_pylist() == ["1706702400000", "5"]
    assert problems.any_mask() is None


def test_times_createdat_cannot_carry_reject_their_rows() -> None:
    values = [dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), dt.datetime(5138, 11, 16, 9, 46, 40, tzinfo=UTC)]
    problems = Problems(3)
    texts = created_at(pa.array([*values, NOON], pa.timestamp("us", "UTC")), "createdAt (column 'at')", problems)
    assert texts.to_pylist() == [None, None, str(NOON_SECONDS)]
    assert "before 1970-01-01" in problems.reason_for(0)
    assert "milliseconds" in problems.reason_for(1)
    assert problems.reason_for(0).startswith("createdAt (column 'at')")
    assert problems.code_for(0) == ReasonCode.INVALID_VALUE

    integers = Problems(2)
    created_at(pa.array([-1, 5], pa.int64()), "t", integers)
    assert integers.any_mask().to_pylist() == [True, False]
    unsigned = Problems(1)
    created_at(pa.array([2**64 - 1], pa.uint64()), "t", unsigned)
    assert unsigned.any_mask().to_pylist() == [True]


def test_event_names_and_ids_from_columns() -> None:
    problems = Problems(4)
    names = event_names(pa.array(["purchase", None, " ", 'say "hi"']), "eventName", problems)
    assert names.to_pylist() == ['"purchase"', None, '" "', '"say \\"hi\\""']
    assert problems.any_mask().to_pylist() == [False, True, True, False]
    assert problems.code_for(1) == ReasonCode.NO_EVENT_NAME

    ids = Problems(4)
    texts = event_ids(pa.array(["a", None, "", "x" * 513]), "id", ids)
    assert texts.to_pylist()[0] == '"a"'
    assert ids.any_mask().to_pylist() == [False, True, True, True]
    assert ids.code_for(1) == ReasonCode.NO_EVENT_ID
    assert ids.code_for(3) == ReasonCode.INVALID_VALUE
    assert event_ids(pa.array([7], pa.int64()), "id", Problems(1)).to_pylist() == ['"7"']


def test_derived_ids_are_stable_per_namespace_and_key() -> None:
    first = derived_ids(pa.array(["1", "2", '["a",1]']), "syncs.orders").to_pylist()
    assert first == derived_ids(pa.array(["1", "2", '["a",1]']), "syncs.orders").to_pylist()
    assert len(set(first)) == 3
    assert all(len(orjson.loads(i)) == 32 for i in first)
    assert derived_ids(pa.array(["1"]), "syncs.refunds").to_pylist()[0] != first[0]


def _events_sync(**keys: object) -> EventsSync:
    base: dict[str, object] = {
        "model": "m",
        "destination": "d",
        "type": "events",
        "event_name": "purchase",
        "mappings": [{"from": "email", "to": "email"}, {"from": "amount", "to": "amount"}],
    }
    return EventsSync.model_validate({**base, **keys})


SCHEMA = pa.schema(
    {"id": pa.int64(), "email": pa.string(), "amount": pa.float64(), "at": pa.string(), "kind": pa.string()}
)


def test_compile_names_the_key_at_fault() -> None:
    with pytest.raises(MappingError, match=r"syncs\.x\.created_at: the model has no column 'when'"):
        SYNC_TYPE.compile(_events_sync(created_at="when"), SCHEMA, "syncs.x")
    with pytest.raises(MappingError, match=r"syncs\.x\.created_at: column 'at' is string; .* timestamp, a date"):
        SYNC_TYPE.compile(_events_sync(created_at="at"), SCHEMA, "syncs.x")
    with pytest.raises(MappingError, match=r"syncs\.x\.event_id: column 'amount' is double"):
        SYNC_TYPE.compile(_events_sync(event_id="amount"), SCHEMA, "syncs.x")
    plan = SYNC_TYPE.compile(_events_sync(event_name=None, event_name_column="kind"), SCHEMA, "syncs.x")
    assert plan.source_columns == ["amount", "email", "kind"]
    assert plan.matching is None  # many events of one user are not a shared identifier


def test_the_hash_and_ids_change_with_what_shapes_an_event() -> None:
    plan = SYNC_TYPE.compile(_events_sync(), SCHEMA, "syncs.x")
    assert plan.fingerprint == SYNC_TYPE.compile(_events_sync(), SCHEMA, "syncs.x").fingerprint
    assert plan.fingerprint != SYNC_TYPE.compile(_events_sync(event_name="refund"), SCHEMA, "syncs.x").fingerprint
    assert plan.fingerprint != SYNC_TYPE.compile(_events_sync(), SCHEMA, "syncs.y").fingerprint


def test_removed_rows_need_no_request_and_the_others_become_events() -> None:
    plan = SYNC_TYPE.compile(_events_sync(), SCHEMA, "syncs.x")
    batch = pa.record_batch(
        {
            "email": ["a@x.io", "b@x.io", None],
            "amount": [1.0, 2.0, 3.0],
            PK_COLUMN: ["1", "2", "3"],
            OP_COLUMN: ["added", "removed", "changed"],
        }
    )
    records, decided = plan.map_changes(batch)
    derived = orjson.loads(derived_ids(pa.array(["1"]), "syncs.x")[0].as_py())
    assert [orjson.loads(r.body) for r in records] == [
        {"email": "a@x.io", "eventName": "purchase", "id": derived, "dataFields": {"amount": 1.0}}
    ]
    assert [(pk, op, type(v).__name__) for pk, op, v in decided] == [
        ("2", "removed", "Synced"),
        ("3", "changed", "Rejected"),
    ]


def test_config_refuses_an_empty_name_and_a_second_identifier() -> None:
    with pytest.raises(ValueError, match="the event name is empty"):
        _events_sync(event_name="  ")
    with pytest.raises(ValueError, match="set exactly one of 'event_name' or 'event_name_column'"):
        _events_sync(event_name_column="kind")
    project = """
sources: {s: {type: sqlite, path: x.db}}
models: {m: {source: s, table: t, primary_key: id}}
destinations: {d: {api_key: k}}
syncs:
  x:
    model: m
    destination: d
    type: events
    event_name: purchase
    mappings: [{from: email, to: email}, {from: uid, to: userId}]
"""
    with pytest.raises(ConfigError, match=r"syncs\.x\.mappings\[1\]\.to: an event names its user by one identifier"):
        parse_project(project, env={})
