"""Field mappings compiled once per run into a plan that turns Arrow batches into Iterable records.

The plan checks the mappings against the model's schema up front (a missing column is a sync-level
error, not a failure per row), then builds each batch's JSON bodies column by column with Arrow
compute (``mapping/encode.py``); per row there is only the wrapping of each body in a record, and it
runs only for rows that changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from smartingest.codes import ReasonCode
from smartingest.config.models import FieldMapping
from smartingest.errors import MappingError
from smartingest.mapping.encode import Encoder, Misfit, Problems
from smartingest.mapping.kinds import TOP_LEVEL_IDENTITY, ColumnValue, FieldKind, RunInfo, compile_kind
from smartingest.mapping.objects import Leaf, check_paths, fill_object, insert, json_join, json_object

# Bumped when the way rows are encoded or hashed changes, so every row is sent again once.
MAPPING_ENCODING_VERSION = 2


@dataclass(frozen=True)
class MappedBatch:
    """The rows of one batch that become records, as columns (each array holds those rows only, in order),
    and the rows refused before sending, each with its reason."""

    pks: pa.Array
    ops: pa.Array
    emails: pa.Array | None  # the email each record names (None when the sync maps none)
    user_ids: pa.Array | None
    bodies: pa.Array  # one JSON item per record
    rejected: list[tuple[str, str, str, ReasonCode]]  # (primary key, operation, reason, code)


@dataclass(frozen=True)
class UserRecordPlan:
    """A compiled users mapping: which columns feed which fields, the per-request flags, the value rules."""

    identifier_field: str | None  # None: the sync matches no users (catalog items)
    fields: tuple[FieldKind, ...]  # every field mapping, compiled (the identity fields' included)
    extra_flags: dict[str, bool] = field(default_factory=dict)
    invalid_values: str = "reject"
    trim_identifier: bool = False
    lowercase_identifier: bool = False
    misfits: tuple[tuple[str, Misfit], ...] = ()  # (path, misfit): the values there reject their row

    def refusing(self, misfits: dict[str, Misfit]) -> UserRecordPlan:
        """This plan, rejecting without sending them the rows whose values at these paths (of mappings, or
        of object mappings' parts) do not fit their field's type in the destination."""
        return replace(self, misfits=tuple(sorted(misfits.items())))

    @property
    def source_columns(self) -> list[str]:
        """The model columns the mapping reads, sorted: exactly what the row hash covers."""
        return sorted({column for kind in self.fields for column in kind.columns})

    @property
    def identifier_column(self) -> str | None:
        """The model column the identifier (email or userId) is read from (None if the sync matches no users)."""
        return next(
            (k.column for k in self.fields if isinstance(k, ColumnValue) and k.target == self.identifier_field), None
        )

    @property
    def data_targets(self) -> list[str]:
        """The field paths the mappings write besides the identity fields (what dataFields holds)."""
        return [k.target for k in self.fields if k.target not in TOP_LEVEL_IDENTITY]

    @property
    def fingerprint(self) -> str:
        """Stable digest of everything that shapes a record: a change re-sends every row."""
        return digest({**self._shared(), "fields": sorted(kind.fingerprint() for kind in self.fields)})

    def _shared(self) -> dict[str, Any]:
        """What shapes every record alike, whatever its fields."""
        return {
            "v": MAPPING_ENCODING_VERSION,
            "identifier": self.identifier_field,
            "flags": sorted(self.extra_flags.items()),
            "invalid_values": self.invalid_values,
            "identifier_options": [self.trim_identifier, self.lowercase_identifier],
        }

    def parts(self, depth: int) -> dict[str, str]:
        """The fingerprint split by what the destination replaces as one (``HashSpec.parts``): ``""`` for
        what every record shares, then one digest per group of fields, a group being a field path cut to
        ``depth`` segments (1: top-level fields replace whole; 2: top-level objects merge one level deep)."""
        groups: dict[str, list[Any]] = {}
        for kind in self.fields:
            groups.setdefault(field_group(kind.target, depth), []).append(kind.fingerprint())
        return {"": digest(self._shared()), **{name: digest(sorted(fps)) for name, fps in groups.items()}}

    def only(self, groups: Collection[str], depth: int) -> UserRecordPlan:
        """This plan, writing only the fields of ``groups`` (see ``parts``) besides the identity fields."""
        kept = tuple(k for k in self.fields if k.target in TOP_LEVEL_IDENTITY or field_group(k.target, depth) in groups)
        return replace(self, fields=kept)

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
        encoder = Encoder(self.invalid_values, dict(self.misfits))
        problems = Problems(n)
        identity: dict[str, pa.Array] = {}
        tree: dict[str, Any] = {}
        for kind in self.fields:
            if kind.target in TOP_LEVEL_IDENTITY and isinstance(kind, ColumnValue):
                column = batch.column(kind.column)
                is_identifier = kind.target == self.identifier_field
                identity[kind.target] = self.identifier_values(column) if is_identifier else Encoder.text(column)
                continue
            values = kind.values(batch, encoder, problems)
            encoder.refuse_misfits(values, kind.target, problems)
            insert(tree, kind.target.split("."), Leaf(values, kind.skip_null))
        # dataFields itself is always sent, ``{}`` where every field was left out.
        fields = json_join([fill_object(json_object(tree))], n) if tree else None
        return MappedColumns(n, identity, fields, problems, self.identifier_field)


def field_group(target: str, depth: int) -> str:
    """A field path cut to its first ``depth`` segments: what the destination replaces as one."""
    return ".".join(target.split(".")[:depth])


def digest(doc: Any) -> str:
    """A short stable digest of a JSON-able document."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


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
    with their reason and code instead. ``keep`` (optional) limits which rows become anything at all.
    Per row only for the rejected ones."""
    n = batch.num_rows
    pks = batch.column(pk_column).cast(pa.string())
    ops = batch.column(op_column).cast(pa.string()) if op_column else pa.repeat(pa.scalar("upsert"), n)
    columns = [pks, ops, mapped.identity.get("email"), mapped.identity.get("userId"), bodies.cast(pa.binary())]
    blank = mapped.blank_identifiers()
    refused = mapped.problems.any_mask()
    masks = [m for m in (blank, refused) if m is not None]
    bad = masks[0] if len(masks) == 1 else (pc.or_(masks[0], masks[1]) if masks else None)
    if bad is not None:
        bad = pc.fill_null(bad, False)
        if not pc.any(bad).as_py():
            bad = None
    rejected: list[tuple[str, str, str, ReasonCode]] = []
    if bad is not None:
        considered = bad if keep is None else pc.and_(bad, keep)
        is_blank = blank.to_pylist() if blank is not None else [False] * n
        pk_list, op_list = pks.to_pylist(), ops.to_pylist()
        for i in pc.indices_nonzero(considered).to_pylist():
            if is_blank[i]:
                reason = f"{mapped.identifier_field} is empty: the row has no identifier to match on"
                rejected.append((pk_list[i], op_list[i], reason, ReasonCode.NO_IDENTIFIER))
            else:
                rejected.append((pk_list[i], op_list[i], mapped.problems.reason_for(i), mapped.problems.code_for(i)))
    sent = keep
    if bad is not None:
        good = pc.invert(bad)
        sent = good if keep is None else pc.and_(good, keep)
    if sent is not None:
        columns = [None if c is None else c.filter(sent) for c in columns]
    pks, ops, emails, user_ids, body_column = columns
    assert pks is not None and ops is not None and body_column is not None
    return MappedBatch(pks, ops, emails, user_ids, body_column, rejected)


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
    run: RunInfo | None = None,
) -> UserRecordPlan:
    """Check mappings against the model's schema and compile them (``run``: what variable mappings send).

    A column the source marks as JSON (PostgreSQL json, jsonb and arrays) is sent parsed unless its
    mapping says ``parse_json: false``. Raises MappingError naming the mapping at fault: a column the
    model does not have (listing the columns it has), a type Iterable cannot store, a static value that
    does not cast, a field that is both a value and a parent object (``a`` and ``a.b``), or a missing
    identifier mapping.
    """
    fields: list[FieldKind] = []
    for i, mapping in enumerate(mappings):
        fields.append(compile_kind(mapping, schema, f"{where}[{i}]", run))
    if identifier_field is not None and identifier_field not in {k.target for k in fields}:
        raise MappingError(f"{where}: no column is mapped to {identifier_field!r}, the identifier users are matched on")
    check_paths([k.target for k in fields if k.target not in TOP_LEVEL_IDENTITY], where)
    flags: dict[str, bool] = {}
    if prefer_user_id:
        flags["preferUserId"] = True
    if merge_nested_objects:
        flags["mergeNestedObjects"] = True
    return UserRecordPlan(
        identifier_field,
        tuple(fields),
        flags,
        invalid_values=invalid_values,
        trim_identifier=trim_identifier,
        lowercase_identifier=lowercase_identifier,
    )
