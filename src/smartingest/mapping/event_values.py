"""The values of an event's own keys (``eventName``, ``id``, ``createdAt``), a whole column at a time.

Iterable's ``TrackRequest`` takes them beside ``dataFields``, each with its own rules (the contract):

- ``createdAt`` "expects a unix timestamp", an int64: timestamps are sent as whole seconds since
  1970-01-01 UTC (a timestamp without a zone is taken as UTC, as everywhere, see docs/values.md),
  dates as their midnight UTC, integer columns as they are (already unix time). A time before 1970
  has no such timestamp, and from 10^11 seconds on (the year 5138) Iterable reads the number as
  milliseconds: both are problems of their row, always rejected (a wrong time is worse than none, so
  ``invalid_values: null`` does not apply). A null leaves ``createdAt`` out: the event's time is when
  Iterable receives it.
- ``id``: "cannot be longer than 512 bytes"; an id column's null or blank value is a problem (without
  its id a resend would add a second event). Derived ids (no id column) are the first 32 hex digits
  of SHA-256 over a namespace and the row's primary key: stable across runs, 32 bytes.
- ``eventName`` is required: a null or blank name is a problem of its row.

Each function answers JSON text per row (null where the key is left out or the row has a problem) and
reports problems to the batch's ``Problems``.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc

from smartingest.codes import ReasonCode
from smartingest.errors import MappingError
from smartingest.mapping.encode import Encoder, Problems, json_string

MAX_EVENT_ID_BYTES = 512
# From here on Iterable reads a unix timestamp as milliseconds (10^11 s is 5138-11-16 09:46:40 UTC).
SECONDS_LIMIT = 10**11
_TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_SECONDS_PER_DAY = 86_400
_INT64_MAX = 2**63 - 1


def check_created_at_type(where: str, column: str, dtype: pa.DataType) -> None:
    """Refuse a ``created_at`` column that is not a timestamp, a date or an integer (unix time)."""
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype) or pa.types.is_integer(dtype):
        return
    raise MappingError(
        f"{where}: column {column!r} is {dtype}; createdAt is a unix timestamp, so the column must be a "
        "timestamp, a date or an integer (unix seconds): cast it in the model"
    )


def check_text_type(where: str, column: str, dtype: pa.DataType, what: str) -> None:
    """Refuse a column whose values cannot be sent as text (an event name or id): text and integers can."""
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    text = pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)
    if text or pa.types.is_integer(dtype):
        return
    raise MappingError(
        f"{where}: column {column!r} is {dtype}; {what} must be text or an integer: cast it in the model"
    )


def created_at(array: pa.Array | pa.ChunkedArray, where: str, problems: Problems) -> pa.Array:
    """``createdAt`` of each row as JSON text (unix seconds), null where the value is null or a problem."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    dtype = array.type
    if pa.types.is_timestamp(dtype):
        ticks = array.view(pa.int64())
        # Negative ticks are rejected below, so truncating toward zero is flooring here.
        seconds = pc.divide(ticks, _TICKS_PER_SECOND[dtype.unit])
        negative = pc.less(ticks, 0)
    elif pa.types.is_date(dtype):
        days = pc.cast(pc.cast(array, pa.date32()).view(pa.int32()), pa.int64())
        seconds = pc.multiply(days, _SECONDS_PER_DAY)
        negative = pc.less(days, 0)
    else:  # an integer column: unix time already, sent as it is
        if pa.types.is_uint64(dtype):
            too_big = pc.greater(array, pa.scalar(_INT64_MAX, pa.uint64()))
            problems.add(too_big, f"{where}: {_INT64_MAX:,} is the largest unix timestamp Iterable takes")
            array = pc.if_else(pc.fill_null(too_big, False), pa.scalar(None, dtype), array)
        seconds = pc.cast(array, pa.int64())
        negative = pc.less(seconds, 0)
        return _as_text(seconds, negative, None, where, problems)
    return _as_text(seconds, negative, pc.greater_equal(seconds, SECONDS_LIMIT), where, problems)


def _as_text(
    seconds: pa.Array, negative: pa.Array, too_late: pa.Array | None, where: str, problems: Problems
) -> pa.Array:
    problems.add(negative, f"{where}: a time before 1970-01-01 has no unix timestamp, which createdAt takes")
    bad = pc.fill_null(negative, False)
    if too_late is not None:
        problems.add(
            too_late,
            f"{where}: a time from 5138-11-16 on is read by Iterable as milliseconds, so createdAt would be wrong",
        )
        bad = pc.or_(bad, pc.fill_null(too_late, False))
    return pc.if_else(bad, pa.scalar(None, pa.string()), pc.cast(seconds, pa.string()))


def event_names(array: pa.Array | pa.ChunkedArray, where: str, problems: Problems) -> pa.Array:
    """Each row's ``eventName`` as a JSON string; a null or blank name is a problem of its row."""
    names = Encoder.text(array)
    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(names), ""), True)
    problems.add(blank, f"{where}: the event name is empty: an event needs a name", ReasonCode.NO_EVENT_NAME)
    return json_string(names)


def event_ids(array: pa.Array | pa.ChunkedArray, where: str, problems: Problems) -> pa.Array:
    """Each row's ``id`` from an id column, as a JSON string; null, blank or over 512 bytes is a problem."""
    ids = Encoder.text(array)
    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(ids), ""), True)
    problems.add(
        blank,
        f"{where}: the event id is empty: without it a resend would add a second event",
        ReasonCode.NO_EVENT_ID,
    )
    too_long = pc.greater(pc.binary_length(ids), MAX_EVENT_ID_BYTES)
    problems.add(too_long, f"{where}: the event id is longer than {MAX_EVENT_ID_BYTES} bytes, Iterable's limit")
    return json_string(ids)


def derived_ids(keys: pa.Array | pa.ChunkedArray, namespace: str) -> pa.Array:
    """A stable ``id`` per row, as JSON strings: SHA-256 of the namespace and the row's key (as text), 32 hex
    digits. The same key in the same namespace always gives the same id, so a resend replaces the event."""
    prefixed = hashlib.sha256(namespace.encode() + b"\x00")
    # hashlib is per value (Arrow computes no SHA-256), but it runs only for changed rows, at a few
    # microseconds each; the ids need no JSON escaping.
    digests = []
    for key in Encoder.text(keys).to_pylist():
        digest = prefixed.copy()
        digest.update(key.encode())
        digests.append(f'"{digest.hexdigest()[:32]}"')
    return pa.array(digests, pa.string())
