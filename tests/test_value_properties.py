"""Property tests, one per Arrow type of docs/values.md: any value of the type, sent through a users
mapping to the sandbox over real HTTP and read back, equals the source value as Iterable holds it (a
decimal as the number it writes, a timestamp as Iterable's date text, a float32 as the same float32).
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import struct
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartingest.config.models import UsersSync
from smartingest.mapping import compile_user_plan
from smartingest.synctypes.common import record_columns, user_objects
from tests.conftest import API_KEY, SandboxAdmin

_emails = itertools.count()
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
UTC_TIMES = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59))


def _as_float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _date_text(value: dt.datetime) -> str:
    return f"{value.year:04d}-{value:%m-%d %H:%M:%S} +00:00"


# Arrow type, values (some null), what Iterable holds for a value (same comparison both sides)
CASES: dict[str, tuple[pa.DataType, st.SearchStrategy[Any], Callable[[Any], Any]]] = {
    "int8": (pa.int8(), st.integers(-(2**7), 2**7 - 1), lambda v: v),
    "int16": (pa.int16(), st.integers(-(2**15), 2**15 - 1), lambda v: v),
    "int32": (pa.int32(), st.integers(-(2**31), 2**31 - 1), lambda v: v),
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1), lambda v: v),
    "uint64": (pa.uint64(), st.integers(0, 2**63 - 1), lambda v: v),
    "float64": (pa.float64(), st.floats(allow_nan=False, allow_infinity=False), lambda v: v),
    "float32": (pa.float32(), st.floats(width=32, allow_nan=False, allow_infinity=False), _as_float32),
    "decimal": (
        pa.decimal128(12, 2),
        st.decimals(min_value=-(10**10) + 1, max_value=10**10 - 1, places=2, allow_nan=False, allow_infinity=False),
        float,
    ),
    "bool": (pa.bool_(), st.booleans(), lambda v: v),
    "string": (pa.string(), TEXT, lambda v: v),
    "timestamp": (pa.timestamp("us", tz="UTC"), UTC_TIMES.map(lambda v: v.replace(tzinfo=dt.UTC)), _date_text),
    "date": (pa.date32(), st.dates(), lambda v: v.isoformat()),
    "list": (pa.list_(pa.int64()), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5), lambda v: v),
    "struct": (
        pa.struct([("n", pa.int32()), ("s", pa.string())]),
        st.fixed_dictionaries({"n": st.integers(-(2**31), 2**31 - 1), "s": TEXT}),
        lambda v: v,
    ),
}
MAPPINGS = UsersSync.model_validate(
    {
        "model": "m",
        "destination": "d",
        "type": "users",
        "mappings": [{"from": "email", "to": "email"}, {"from": "value", "to": "value"}],
    }
).mappings


@pytest.mark.parametrize("name", list(CASES))
def test_a_value_read_back_from_the_sandbox_equals_the_source_value(name, sandbox, admin: SandboxAdmin):
    dtype, values, as_held = CASES[name]
    http = httpx.Client(base_url=sandbox.url, headers={"Api-Key": API_KEY}, timeout=30)
    float32 = pa.types.is_float32(dtype)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.one_of(st.none(), values), min_size=1, max_size=8))
    def sends_exactly(sample: list[Any]) -> None:
        emails = [f"{name}-{next(_emails)}@example.com" for _ in sample]
        batch = pa.record_batch({"id": pa.array(range(len(sample))), "email": emails, "value": pa.array(sample, dtype)})
        mapped = user_objects(compile_user_plan(MAPPINGS, batch.schema, "email"), batch, "id", None)
        assert mapped.rejected == []
        users = [orjson.loads(record.body) for record in record_columns(mapped)]
        answer = http.post("/api/users/bulkUpdate", json={"users": users})
        assert answer.status_code == 200 and answer.json()["failCount"] == 0, answer.text
        held = admin.users()
        for email, value in zip(emails, sample, strict=True):
            read = held[email]["dataFields"]["value"]
            if value is None:
                assert read is None
            elif float32:
                assert _as_float32(read) == as_held(value)
            else:
                assert read == as_held(value), (value, read)

    sends_exactly()


def test_the_decimal_strategy_keeps_two_places():
    # The decimal case compares as the JSON number Iterable parses: the source's digits, not a rounding.
    assert float(decimal.Decimal("0.35")) == orjson.loads(b"0.35")
