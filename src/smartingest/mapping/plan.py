"""Field mappings compiled once per run into a plan that turns Arrow batches into Iterable records.

The plan checks the mappings against the model's schema up front (a missing column is a sync-level
error, not a failure per row), then maps each batch column by column; only the final assembly of
one JSON document per row is per-row work, and it runs only for rows that changed.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from smartingest.config.models import ColumnMapping, FieldMapping, StaticMapping
from smartingest.errors import MappingError
from smartingest.mapping.values import (
    ITERABLE_DATE_FORMAT,
    ITERABLE_DATETIME_FORMAT,
    cast_static,
    check_castable,
    to_iterable_array,
)

# Bumped when the way rows are encoded or hashed changes, so every row is sent again once.
MAPPING_ENCODING_VERSION = 1

TOP_LEVEL_IDENTITY = ("email", "userId")


@dataclass(frozen=True)
class MappedRecord:
    """One row as an Iterable user update: its key, its identity fields and the JSON body of the user object."""

    pk: str
    operation: str
    email: str | None
    user_id: str | None
    body: bytes


@dataclass(frozen=True)
class MappedBatch:
    """The records of one batch, and the rows refused before sending, each with its reason."""

    records: list[MappedRecord]
    rejected: list[tuple[str, str, str]]  # (primary key, operation, reason)


@dataclass(frozen=True)
class UserRecordPlan:
    """A compiled users mapping: which columns feed which fields, and the per-request flags."""

    identifier_field: str
    column_targets: tuple[tuple[str, str], ...]  # (column, target path)
    static_targets: tuple[tuple[str, Any], ...]  # (target path, value)
    extra_flags: dict[str, bool] = field(default_factory=dict)

    @property
    def source_columns(self) -> list[str]:
        """The model columns the mapping reads, sorted: exactly what the row hash covers."""
        return sorted({column for column, _ in self.column_targets})

    @property
    def fingerprint(self) -> str:
        """Stable digest of everything that shapes a record: a change re-sends every row."""
        doc = {
            "v": MAPPING_ENCODING_VERSION,
            "identifier": self.identifier_field,
            "columns": sorted(self.column_targets),
            "static": sorted((t, repr(v)) for t, v in self.static_targets),
            "flags": sorted(self.extra_flags.items()),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def map_batch(self, batch: pa.RecordBatch, pk_column: str, op_column: str | None = None) -> MappedBatch:
        """Map one batch of model rows (with the mapped columns) to user records.

        Each record keeps its row's operation (from ``op_column``, else "upsert"). A row whose
        identifier is null or blank is rejected with a reason; every other row becomes one record.
        Never raises for a bad value.
        """
        n = batch.num_rows
        pks = batch.column(pk_column).cast(pa.string()).to_pylist()
        ops = batch.column(op_column).to_pylist() if op_column else ["upsert"] * n
        tree: dict[str, Any] = {}
        top: dict[str, list[Any]] = {}
        for column, target in self.column_targets:
            values = to_iterable_array(batch.column(column))
            if target in TOP_LEVEL_IDENTITY:
                top[target] = values.cast(pa.string()).to_pylist()
            else:
                _insert(tree, target.split("."), values)
        for target, value in self.static_targets:
            _insert(tree, target.split("."), pa.repeat(pa.scalar(value), n) if value is not None else pa.nulls(n))
        data_fields = _build_struct(tree, n).to_pylist() if tree else [None] * n
        identifiers = top[self.identifier_field]
        others = [(name, values) for name, values in top.items() if name != self.identifier_field]
        records: list[MappedRecord] = []
        rejected: list[tuple[str, str, str]] = []
        for i in range(n):
            identifier = identifiers[i]
            if identifier is None or not identifier.strip():
                rejected.append(
                    (pks[i], ops[i], f"{self.identifier_field} is empty: the row has no identifier to match on")
                )
                continue
            user: dict[str, Any] = {self.identifier_field: identifier}
            for name, values in others:
                if values[i] is not None:
                    user[name] = values[i]
            if data_fields[i]:
                user["dataFields"] = data_fields[i]
            user.update(self.extra_flags)
            try:
                body = orjson.dumps(user, default=json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
            except TypeError as exc:  # a nested value JSON cannot carry: this row only
                rejected.append((pks[i], ops[i], f"a value cannot be sent as JSON: {exc}"))
                continue
            records.append(MappedRecord(pks[i], ops[i], user.get("email"), user.get("userId"), body))
        return MappedBatch(records, rejected)


def json_default(value: Any) -> Any:
    """JSON for values nested in lists and objects, which leave through Python: as top-level columns do."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value.strftime(ITERABLE_DATETIME_FORMAT)
    if isinstance(value, datetime.date):
        return value.strftime(ITERABLE_DATE_FORMAT)
    if isinstance(value, datetime.time | datetime.timedelta):
        return str(value)
    raise TypeError(f"{type(value).__name__} values are not supported")


def compile_user_plan(
    mappings: list[FieldMapping],
    schema: pa.Schema,
    identifier_field: str,
    prefer_user_id: bool = False,
    merge_nested_objects: bool = False,
    where: str = "mappings",
) -> UserRecordPlan:
    """Check mappings against the model's schema and compile them.

    Raises MappingError naming the mapping at fault: a column the model does not have (listing the
    columns it has), a type Iterable cannot store, a static value that does not cast, a field that is
    both a value and a parent object (``a`` and ``a.b``), or a missing identifier mapping.
    """
    columns: list[tuple[str, str]] = []
    statics: list[tuple[str, Any]] = []
    names = schema.names
    for i, mapping in enumerate(mappings):
        at = f"{where}[{i}]"
        if isinstance(mapping, ColumnMapping):
            if mapping.from_ not in names:
                raise MappingError(f"{at}: the model has no column {mapping.from_!r} (columns: {', '.join(names)})")
            check_castable(mapping.from_, schema.field(mapping.from_).type)
            columns.append((mapping.from_, mapping.to))
        elif isinstance(mapping, StaticMapping):
            if mapping.to in TOP_LEVEL_IDENTITY:
                raise MappingError(
                    f"{at}: {mapping.to} identifies users and must come from a column, not a static value"
                )
            statics.append((mapping.to, cast_static(mapping.static, mapping.type, at)))
    if identifier_field not in {target for _, target in columns}:
        raise MappingError(f"{where}: no column is mapped to {identifier_field!r}, the identifier users are matched on")
    _check_paths([t for _, t in columns if t not in TOP_LEVEL_IDENTITY] + [t for t, _ in statics], where)
    flags: dict[str, bool] = {}
    if prefer_user_id:
        flags["preferUserId"] = True
    if merge_nested_objects:
        flags["mergeNestedObjects"] = True
    return UserRecordPlan(identifier_field, tuple(columns), tuple(statics), flags)


def _check_paths(targets: list[str], where: str) -> None:
    leaves = set(targets)
    for target in targets:
        parts = target.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if parent in leaves:
                raise MappingError(f"{where}: {parent!r} is mapped as a value and also as the object of {target!r}")


def _insert(tree: dict[str, Any], path: list[str], values: pa.Array) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = values


def _build_struct(tree: dict[str, Any], n: int) -> pa.StructArray:
    arrays = [_build_struct(value, n) if isinstance(value, dict) else value for value in tree.values()]
    return pa.StructArray.from_arrays(arrays, names=list(tree))
