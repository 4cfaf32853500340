"""Field mappings compiled once per run into a plan that turns Arrow batches into Iterable records.

The plan checks the mappings against the model's schema up front (a missing column is a sync-level
error, not a failure per row), then builds each batch's JSON bodies column by column with Arrow
compute (``mapping/encode.py``); per row there is only the wrapping of each body in a record, and it
runs only for rows that changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from smartingest.codes import ReasonCode
from smartingest.columns import is_json_text
from smartingest.config.models import ColumnMapping, FieldMapping, StaticMapping
from smartingest.errors import MappingError
from smartingest.mapping.encode import JSON_NULL, Encoder, Problems, json_kinds
from smartingest.mapping.values import cast_static, check_castable

# Bumped when the way rows are encoded or hashed changes, so every row is sent again once.
MAPPING_ENCODING_VERSION = 2

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
    rejected: list[tuple[str, str, str, ReasonCode]]  # (primary key, operation, reason, code)


@dataclass(frozen=True)
class ColumnTarget:
    """One column mapping, compiled: the column read, the field path written, and whether it holds JSON text."""

    column: str
    target: str
    parse_json: bool = False
    column_type: str = ""
    kinds: tuple[tuple[str, str], ...] = ()  # the Iterable field types its values create, by path


@dataclass(frozen=True)
class UserRecordPlan:
    """A compiled users mapping: which columns feed which fields, the per-request flags, the value rules."""

    identifier_field: str | None  # None: the sync matches no users (catalog items)
    column_targets: tuple[ColumnTarget, ...]
    static_targets: tuple[tuple[str, Any], ...]  # (target path, value)
    extra_flags: dict[str, bool] = field(default_factory=dict)
    invalid_values: str = "reject"
    trim_identifier: bool = False
    lowercase_identifier: bool = False
    refused: tuple[tuple[str, str], ...] = ()  # (target, reason): its non-null values reject their row

    def refusing(self, refused: dict[str, str]) -> UserRecordPlan:
        """This plan, rejecting the rows that have a value for these targets (target -> reason) without
        sending them: their field's type in the destination does not fit the column's values."""
        return replace(self, refused=tuple(sorted(refused.items())))

    @property
    def source_columns(self) -> list[str]:
        """The model columns the mapping reads, sorted: exactly what the row hash covers."""
        return sorted({c.column for c in self.column_targets})

    @property
    def identifier_column(self) -> str | None:
        """The model column the identifier (email or userId) is read from (None if the sync matches no users)."""
        return next((c.column for c in self.column_targets if c.target == self.identifier_field), None)

    @property
    def fingerprint(self) -> str:
        """Stable digest of everything that shapes a record: a change re-sends every row."""
        doc = {
            "v": MAPPING_ENCODING_VERSION,
            "identifier": self.identifier_field,
            "columns": sorted([c.column, c.target, c.parse_json] for c in self.column_targets),
            "static": sorted((t, repr(v)) for t, v in self.static_targets),
            "flags": sorted(self.extra_flags.items()),
            "invalid_values": self.invalid_values,
            "identifier_options": [self.trim_identifier, self.lowercase_identifier],
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def identifier_values(self, array: pa.Array | pa.ChunkedArray) -> pa.Array:
        """The identifier as sent: text, trimmed and lower-cased when the sync says so."""
        text = Encoder.text(array)
        if self.trim_identifier:
            text = pc.utf8_trim_whitespace(text)
        if self.lowercase_identifier:
            text = pc.utf8_lower(text)
        return text

    def map_columns(self, batch: pa.RecordBatch) -> MappedColumns:
        """Encode one batch's mapped columns: the identity fields as text, the other fields as one JSON
        object per row (``dataFields``), and every value Iterable cannot store as a problem of its row.
        Never raises for a bad value."""
        n = batch.num_rows
        encoder = Encoder(self.invalid_values)
        problems = Problems(n)
        identity: dict[str, pa.Array] = {}
        tree: dict[str, Any] = {}
        refused = dict(self.refused)
        for c in self.column_targets:
            values = batch.column(c.column)
            if c.target in refused:
                problems.add(values.is_valid(), refused[c.target], ReasonCode.TYPE_MISMATCH)
            if c.target == self.identifier_field:
                identity[c.target] = self.identifier_values(values)
            elif c.target in TOP_LEVEL_IDENTITY:
                identity[c.target] = Encoder.text(values)
            else:
                where = f"{c.target} (column {c.column!r})"
                _insert(tree, c.target.split("."), encoder.encode(values, where, problems, c.parse_json))
        for target, value in self.static_targets:
            _insert(tree, target.split("."), orjson.dumps(value).decode())
        fields = json_join([_object(tree)], n) if tree else None
        return MappedColumns(n, identity, fields, problems, self.identifier_field)


@dataclass(frozen=True)
class MappedColumns:
    """One batch's mapped values, ready for a sync type to build its request items from."""

    rows: int
    identity: dict[str, pa.Array]  # email / userId -> the text sent (null where the row has none)
    fields: pa.Array | None  # one JSON object per row of every other mapped field, or None if none is mapped
    problems: Problems
    identifier_field: str | None  # the identity field rows are matched on, if the sync matches users

    def blank_identifiers(self) -> pa.BooleanArray | None:
        """Rows whose identifier is null or blank (None when the sync matches no users)."""
        if self.identifier_field is None:
            return None
        identifiers = self.identity[self.identifier_field]
        return pc.fill_null(pc.equal(pc.utf8_trim_whitespace(identifiers), ""), True)


def assemble(
    batch: pa.RecordBatch,
    pk_column: str,
    op_column: str | None,
    bodies: pa.Array,
    mapped: MappedColumns,
    keep: pa.BooleanArray | None = None,
) -> MappedBatch:
    """Records from one JSON body per row: rows without an identifier, or with a problem, are rejected
    with their reason and code instead. ``keep`` (optional) limits which rows become anything at all."""
    n = batch.num_rows
    blank = mapped.blank_identifiers()
    refused = mapped.problems.any_mask()
    masks = [m for m in (blank, refused) if m is not None]
    bad = masks[0] if len(masks) == 1 else (pc.or_(masks[0], masks[1]) if masks else None)
    bad_rows = bad.to_pylist() if bad is not None and pc.any(bad).as_py() else None
    blanks = blank.to_pylist() if blank is not None and bad_rows is not None else None
    kept = keep.to_pylist() if keep is not None else None
    body_list = bodies.cast(pa.binary()).to_pylist()
    pks = batch.column(pk_column).cast(pa.string()).to_pylist()
    ops = batch.column(op_column).to_pylist() if op_column else ["upsert"] * n
    emails = mapped.identity["email"].to_pylist() if "email" in mapped.identity else [None] * n
    user_ids = mapped.identity["userId"].to_pylist() if "userId" in mapped.identity else [None] * n
    records: list[MappedRecord] = []
    rejected: list[tuple[str, str, str, ReasonCode]] = []
    for i in range(n):
        if kept is not None and not kept[i]:
            continue
        if bad_rows is not None and bad_rows[i]:
            if blanks is not None and blanks[i]:
                reason = f"{mapped.identifier_field} is empty: the row has no identifier to match on"
                rejected.append((pks[i], ops[i], reason, ReasonCode.NO_IDENTIFIER))
            else:
                rejected.append((pks[i], ops[i], mapped.problems.reason_for(i), mapped.problems.code_for(i)))
            continue
        records.append(MappedRecord(pks[i], ops[i], emails[i], user_ids[i], body_list[i]))
    return MappedBatch(records, rejected)


def _object(tree: dict[str, Any]) -> pa.Array | str:
    """JSON objects from a tree of field name -> encoded column, constant JSON text, or subtree."""
    parts: list[pa.Array | str] = ["{"]
    for i, (name, value) in enumerate(tree.items()):
        parts.append(("," if i else "") + orjson.dumps(name).decode() + ":")
        if isinstance(value, dict):
            parts.append(_object(value))
        elif isinstance(value, pa.Array):
            parts.append(pc.fill_null(value, JSON_NULL))
        else:
            parts.append(value)
    parts.append("}")
    if not any(isinstance(p, pa.Array) for p in parts):
        return "".join(p for p in parts if isinstance(p, str))
    return pc.binary_join_element_wise(*parts, "")


def json_join(pieces: list[pa.Array | str], n: int) -> pa.Array:
    """Concatenate JSON pieces row by row: arrays of text (no nulls) and constant text, into n strings."""
    # binary_join_element_wise broadcasts strings against arrays; it needs at least one array.
    if not any(isinstance(p, pa.Array) for p in pieces):
        pieces = [*pieces, pa.repeat("", n)]
    return pc.binary_join_element_wise(*pieces, "")


def compile_user_plan(
    mappings: list[FieldMapping],
    schema: pa.Schema,
    identifier_field: str | None,
    prefer_user_id: bool = False,
    merge_nested_objects: bool = False,
    where: str = "mappings",
    invalid_values: str = "reject",
    trim_identifier: bool = False,
    lowercase_identifier: bool = False,
) -> UserRecordPlan:
    """Check mappings against the model's schema and compile them.

    A column the source marks as JSON (PostgreSQL json, jsonb and arrays) is sent parsed unless its
    mapping says ``parse_json: false``. Raises MappingError naming the mapping at fault: a column the
    model does not have (listing the columns it has), a type Iterable cannot store, a static value that
    does not cast, a field that is both a value and a parent object (``a`` and ``a.b``), or a missing
    identifier mapping.
    """
    columns: list[ColumnTarget] = []
    statics: list[tuple[str, Any]] = []
    names = schema.names
    for i, mapping in enumerate(mappings):
        at = f"{where}[{i}]"
        if isinstance(mapping, ColumnMapping):
            if mapping.from_ not in names:
                raise MappingError(f"{at}: the model has no column {mapping.from_!r} (columns: {', '.join(names)})")
            column = schema.field(mapping.from_)
            check_castable(mapping.from_, column.type)
            parse_json = is_json_text(column) if mapping.parse_json is None else mapping.parse_json
            if parse_json and not _is_text(column.type) and not is_json_text(column):
                raise MappingError(f"{at}: parse_json needs a text column; {mapping.from_!r} is {column.type}")
            if mapping.to in TOP_LEVEL_IDENTITY:  # identifiers always leave as text
                kinds: tuple[tuple[str, str], ...] = ((mapping.to, "string"),)
            else:
                kinds = () if parse_json else tuple(json_kinds(column.type, mapping.to))
            columns.append(ColumnTarget(mapping.from_, mapping.to, parse_json, str(column.type), kinds))
        elif isinstance(mapping, StaticMapping):
            if mapping.to in TOP_LEVEL_IDENTITY:
                raise MappingError(
                    f"{at}: {mapping.to} identifies users and must come from a column, not a static value"
                )
            statics.append((mapping.to, cast_static(mapping.static, mapping.type, at)))
    if identifier_field is not None and identifier_field not in {c.target for c in columns}:
        raise MappingError(f"{where}: no column is mapped to {identifier_field!r}, the identifier users are matched on")
    _check_paths([c.target for c in columns if c.target not in TOP_LEVEL_IDENTITY] + [t for t, _ in statics], where)
    flags: dict[str, bool] = {}
    if prefer_user_id:
        flags["preferUserId"] = True
    if merge_nested_objects:
        flags["mergeNestedObjects"] = True
    return UserRecordPlan(
        identifier_field,
        tuple(columns),
        tuple(statics),
        flags,
        invalid_values=invalid_values,
        trim_identifier=trim_identifier,
        lowercase_identifier=lowercase_identifier,
    )


def _is_text(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)


def _check_paths(targets: list[str], where: str) -> None:
    leaves = set(targets)
    for target in targets:
        parts = target.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if parent in leaves:
                raise MappingError(f"{where}: {parent!r} is mapped as a value and also as the object of {target!r}")


def _insert(tree: dict[str, Any], path: list[str], values: pa.Array | str) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = values
