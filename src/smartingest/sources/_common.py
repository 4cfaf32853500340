"""Helpers shared by the connectors: type normalisation, re-batching, the batch stream and error translation.

Everything here is driver-agnostic; each connector keeps its own driver calls and its one error-mapping
function, and uses these pieces so the three behave the same way (same batch bounds, same plain Arrow types,
same "driver error in, SourceError out" boundary).
"""

from __future__ import annotations

import array
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import SecretStr

from smartingest.columns import JSON_TEXT
from smartingest.errors import SourceError

log = logging.getLogger("smartingest.sources")

E = TypeVar("E", bound=SourceError)

# A converter turns one column of a driver batch into the normalised column.
Converter = Callable[[pa.Array], pa.Array]
# A connector-specific rule for one field: its plain type and converter, or None to apply the generic rules.
LeafRule = Callable[[pa.Field], "tuple[pa.DataType, Converter] | None"]


def source_error(cls: type[E], message: str, *, transient: bool | None = None) -> E:
    """Build a SourceError subclass instance, overriding its class-level ``transient`` when the case differs.

    E.g. a file that is not a database is a SourceConnectionError (we cannot use the source) but retrying will
    not help, so it is marked permanent on the instance.
    """
    error = cls(message)
    if transient is not None:
        error.transient = transient
    return error


def query_timeout_error(subject: str, seconds: float | None, detail: str) -> SourceError:
    """The error of a query stopped by ``query_timeout_seconds``: permanent (it would time out again), naming
    the setting and what to do."""
    return source_error(
        SourceError,
        f"{subject} ran longer than query_timeout_seconds ({seconds}): {detail}; raise it or make the query faster",
        transient=False,
    )


def scrub_secrets(error: E, settings: object) -> E:
    """Belt and braces: no secret of a connector's settings (its ``SecretStr`` values) reaches a message, even
    where a driver echoes one."""
    message = str(error)
    for name in getattr(type(settings), "model_fields", {}):
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr) and (secret := value.get_secret_value()) and secret in message:
            message = message.replace(secret, "***")
    if message == str(error):
        return error
    return source_error(type(error), message, transient=error.transient)


def one_line(text: str) -> str:
    """Collapse a driver message (libpq's are multi-line with tabs) into one readable line."""
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------- type normalisation


def uuid_to_string(arr: pa.Array) -> pa.Array:
    """Canonical lowercase ``8-4-4-4-12`` strings from a uuid (or fixed_size_binary(16)) array, vectorised.

    pyarrow has no hex kernel, so the whole values buffer is hex-encoded in one call and then cut into 32-char
    strings and joined with dashes by compute kernels; no Python work per row.
    """
    storage = arr.storage if isinstance(arr, pa.ExtensionArray) else arr
    n = len(storage)
    values = storage.buffers()[1]
    start = storage.offset * 16
    hexed = memoryview(values)[start : start + 16 * n].hex().encode("ascii") if n else b""
    offsets = array.array("i", range(0, 32 * n + 1, 32))
    plain = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(hexed))
    parts = [pc.utf8_slice_codeunits(plain, a, b) for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
    dashed = pc.binary_join_element_wise(*parts, "-")
    if storage.null_count:
        dashed = pc.if_else(storage.is_valid(), dashed, pa.scalar(None, pa.string()))
    return dashed


def _identity(arr: pa.Array) -> pa.Array:
    return arr


def _plan(field: pa.Field, leaf_rule: LeafRule | None) -> tuple[pa.DataType, Converter | None]:
    """The plain type of a field and a converter (None when the driver array can be used as is)."""
    if leaf_rule is not None:
        ruled = leaf_rule(field)
        if ruled is not None:
            return ruled
    typ = field.type
    if isinstance(typ, pa.UuidType):
        return pa.string(), uuid_to_string
    if isinstance(typ, pa.BaseExtensionType):
        # json, opaque vendor types...: keep the storage values (json text), normalised in turn.
        storage_type, inner = _plan(pa.field(field.name, typ.storage_type), leaf_rule)
        return storage_type, (lambda a, inner=inner: (inner or _identity)(a.storage))
    if pa.types.is_dictionary(typ):
        # DuckDB enums: decode to their value type so every batch has the same plain type.
        value_type, inner = _plan(pa.field(field.name, typ.value_type), leaf_rule)
        return value_type, (lambda a, inner=inner: (inner or _identity)(a.dictionary_decode()))
    if pa.types.is_string_view(typ):
        return pa.string(), (lambda a: a.cast(pa.string()))
    if pa.types.is_binary_view(typ):
        return pa.binary(), (lambda a: a.cast(pa.binary()))
    if pa.types.is_map(typ):
        return _plan_map(typ, leaf_rule)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        child = typ.value_field
        child_type, inner = _plan(child, leaf_rule)
        make = pa.list_ if pa.types.is_list(typ) else pa.large_list
        target = make(pa.field(child.name, child_type, child.nullable))
        if inner is None:
            # Only child metadata differs: same layout, reinterpret without copying.
            return target, (None if typ == target and not child.metadata else (lambda a, t=target: a.view(t)))
        array_cls = pa.ListArray if pa.types.is_list(typ) else pa.LargeListArray

        def convert_list(a: pa.Array, inner: Converter = inner, target: pa.DataType = target) -> pa.Array:
            # Flattening with the offsets of the (possibly sliced) parent keeps child and offsets in step.
            offsets = a.offsets
            values = a.values.slice(offsets[0].as_py(), offsets[-1].as_py() - offsets[0].as_py())
            offsets = pc.subtract(offsets, offsets[0])
            return array_cls.from_arrays(
                offsets, inner(values), type=target, mask=a.is_null() if a.null_count else None
            )

        return target, convert_list
    if pa.types.is_struct(typ):
        children = [typ.field(i) for i in range(typ.num_fields)]
        plans = [_plan(c, leaf_rule) for c in children]
        target = pa.struct([pa.field(c.name, t, c.nullable) for c, (t, _) in zip(children, plans, strict=True)])
        if all(conv is None for _, conv in plans) and not any(c.metadata for c in children):
            return target, None

        def convert_struct(a: pa.Array, plans: list[Any] = plans, target: pa.DataType = target) -> pa.Array:
            fields = [(conv or _identity)(a.field(i)) for i, (_, conv) in enumerate(plans)]
            return pa.StructArray.from_arrays(fields, fields=list(target), mask=a.is_null() if a.null_count else None)

        return target, convert_struct
    return typ, None


def _plan_map(typ: pa.MapType, leaf_rule: LeafRule | None) -> tuple[pa.DataType, Converter | None]:
    """A map's plain type: its keys and items planned as any field (ClickHouse and DuckDB maps)."""
    key_type, key_conv = _plan(typ.key_field, leaf_rule)
    item_type, item_conv = _plan(typ.item_field, leaf_rule)
    target = pa.map_(
        pa.field(typ.key_field.name, key_type, nullable=False),
        pa.field(typ.item_field.name, item_type, typ.item_field.nullable),
    )
    if key_conv is None and item_conv is None:
        plain = not typ.key_field.metadata and not typ.item_field.metadata
        return target, (None if plain else (lambda a, t=target: a.view(t)))

    def convert_map(a: pa.Array, target: pa.DataType = target) -> pa.Array:
        # keys and items are the whole children, whatever the slice: cut them by the offsets, as for lists.
        offsets = a.offsets
        start, length = offsets[0].as_py(), offsets[-1].as_py() - offsets[0].as_py()
        keys, items = a.keys.slice(start, length), a.items.slice(start, length)
        return pa.MapArray.from_arrays(
            pc.subtract(offsets, offsets[0]),
            (key_conv or _identity)(keys),
            (item_conv or _identity)(items),
            type=target,
            mask=a.is_null() if a.null_count else None,
        )

    return target, convert_map


class Normaliser:
    """Maps a driver's result schema to plain Arrow types and converts its batches, planned once per result.

    Generic rules: extension types become their storage type (uuid becomes its canonical string), dictionary
    columns are decoded, view strings become strings, nested fields are handled recursively, and all field and
    schema metadata is dropped, except the ``columns.JSON_TEXT`` marker on top-level JSON columns. ``leaf_rule``
    lets a connector override a field first (PostgreSQL numeric).
    """

    def __init__(self, schema: pa.Schema, leaf_rule: LeafRule | None = None) -> None:
        plans = [_plan(field, leaf_rule) for field in schema]
        self.schema = pa.schema(
            [
                pa.field(f.name, t, f.nullable, metadata=JSON_TEXT if isinstance(f.type, pa.JsonType) else None)
                for f, (t, _) in zip(schema, plans, strict=True)
            ]
        )
        self._converters = [conv for _, conv in plans]
        self._trivial = all(conv is None for conv in self._converters)

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if self._trivial:
            # Same types; from_arrays with the target schema drops the metadata without copying buffers.
            return pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
        columns = [
            col if conv is None else conv(col) for col, conv in zip(batch.columns, self._converters, strict=True)
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)


# ------------------------------------------------------------------------------------------------ batch streams


def rebatch(batches: Iterable[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Slice batches to at most ``batch_rows`` rows (zero-copy) and drop empty ones."""
    for batch in batches:
        for start in range(0, batch.num_rows, batch_rows):
            yield batch.slice(start, batch_rows)


class BatchStream(Iterator[pa.RecordBatch]):
    """What ``read`` yields: an iterator of record batches that also knows its (normalised) ``schema``.

    Driver errors raised while iterating are translated by ``translate`` so the consumer only ever sees
    SourceError subclasses; exceptions the consumer raises itself are never touched. An empty model yields
    no batches at all (use ``schema`` for its columns).
    """

    def __init__(
        self,
        schema: pa.Schema,
        batches: Iterator[pa.RecordBatch],
        translate: Callable[[BaseException], SourceError | None],
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self.schema = schema
        self._batches = batches
        self._translate = translate
        self._on_close = on_close

    def __next__(self) -> pa.RecordBatch:
        try:
            return next(self._batches)
        except StopIteration:
            raise
        except SourceError:
            raise
        except Exception as exc:
            mapped = self._translate(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def close(self) -> None:
        """Stop the underlying generator and release the driver's reader/cursor (idempotent, never raises).

        The connector closes the connection itself afterwards.
        """
        close = getattr(self._batches, "close", None)
        if close is not None:
            close_quietly(close)
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            close_quietly(on_close)


@contextlib.contextmanager
def translate_errors(translate: Callable[[BaseException], SourceError | None]) -> Iterator[None]:
    """Re-raise driver exceptions as the SourceError ``translate`` returns (``from`` the original).

    Exceptions ``translate`` does not recognise (returns None for) propagate unchanged: they are bugs, not
    source failures, and hiding them behind a SourceError would make them harder to find.
    """
    try:
        yield
    except SourceError:
        raise
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc


def close_quietly(close: Callable[[], object]) -> None:
    """Call a close method, logging instead of raising: a failed close must not hide the error that led here."""
    try:
        close()
    except Exception as exc:  # pragma: no cover - depends on driver failure modes
        log.debug("ignoring error while closing a source handle: %s", exc)
