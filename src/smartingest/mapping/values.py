"""What can be sent at all, decided when a mapping is compiled: column types Iterable cannot store, and
static values cast to their declared type. Column values themselves are encoded by ``mapping/encode.py``.
"""

from __future__ import annotations

import datetime

import pyarrow as pa

from smartingest.config.rules import cast_static_value
from smartingest.errors import MappingError
from smartingest.mapping.encode import ITERABLE_DATE_FORMAT, ITERABLE_DATETIME_FORMAT


def check_castable(name: str, dtype: pa.DataType) -> None:
    """Raise MappingError if a column of this type cannot be sent to Iterable."""
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype) or pa.types.is_fixed_size_binary(dtype):
        raise MappingError(
            f"column {name!r} holds binary data, which Iterable cannot store: cast it to text in the model"
        )
    if pa.types.is_duration(dtype) or pa.types.is_interval(dtype):
        raise MappingError(f"column {name!r} is a duration/interval: convert it to a number of seconds in the model")


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
