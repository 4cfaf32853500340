"""Casting Arrow columns to values Iterable accepts, one whole column at a time.

Iterable stores numbers as long or double, recognises dates in strings such as
``2024-01-31 13:45:00 +00:00`` or ``2024-01-31``, and fixes a field's type by its first value, so
every value of one column must leave with one JSON type.
"""

from __future__ import annotations

import datetime

import pyarrow as pa
import pyarrow.compute as pc

from smartingest.config.rules import cast_static_value
from smartingest.errors import MappingError

ITERABLE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S +00:00"
ITERABLE_DATE_FORMAT = "%Y-%m-%d"


def check_castable(name: str, dtype: pa.DataType) -> None:
    """Raise MappingError if a column of this type cannot be sent to Iterable."""
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype) or pa.types.is_fixed_size_binary(dtype):
        raise MappingError(
            f"column {name!r} holds binary data, which Iterable cannot store: cast it to text in the model"
        )
    if pa.types.is_duration(dtype) or pa.types.is_interval(dtype):
        raise MappingError(f"column {name!r} is a duration/interval: convert it to a number of seconds in the model")


def to_iterable_array(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One column as Iterable-ready values: decimals as float64, timestamps and dates as date strings.

    Naive timestamps are taken as UTC (what warehouses mostly store); aware ones are converted to UTC.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    dtype = array.type
    if pa.types.is_decimal(dtype):
        return pc.cast(array, pa.float64())
    if pa.types.is_timestamp(dtype):
        # Arrow stores aware timestamps as UTC instants: viewing them as naive keeps the UTC wall time.
        naive = array.view(pa.timestamp(dtype.unit)) if dtype.tz else array
        seconds = pc.cast(naive, pa.timestamp("s"), safe=False)
        return pc.strftime(seconds, format=ITERABLE_DATETIME_FORMAT)
    if pa.types.is_date(dtype):
        return pc.strftime(pc.cast(array, pa.timestamp("s")), format=ITERABLE_DATE_FORMAT)
    if pa.types.is_time(dtype):
        return pc.cast(array, pa.string())
    if pa.types.is_integer(dtype) and dtype != pa.int64():
        try:
            return pc.cast(array, pa.int64())
        except pa.ArrowInvalid:  # unsigned values past 2^63: Iterable's numbers are doubles anyway
            return pc.cast(array, pa.float64(), safe=False)
    if pa.types.is_floating(dtype) and dtype != pa.float64():
        return pc.cast(array, pa.float64())
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return pc.cast(array, pa.string())
    if pa.types.is_dictionary(dtype):
        return to_iterable_array(array.dictionary_decode())
    return array


def cast_static(
    value: str | int | float | bool | None, to_type: str | None, where: str
) -> str | int | float | bool | None:
    """A static mapping's value cast to its declared type, ready for Iterable's JSON.

    The cast is the project file's own rule (``config.rules.cast_static_value``, also checked when the file
    is loaded); dates then leave as Iterable's date strings. Raises MappingError naming ``where``.
    """
    try:
        cast = cast_static_value(value, to_type)
    except ValueError as exc:
        raise MappingError(f"{where}: {exc}") from exc
    if isinstance(cast, datetime.datetime):
        return cast.strftime(ITERABLE_DATETIME_FORMAT)
    if isinstance(cast, datetime.date):
        return cast.strftime(ITERABLE_DATE_FORMAT)
    return cast
