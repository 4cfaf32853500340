"""What several sync types share: compiling the mappings of a sync that matches users, the identifier
CDC checks, and the field-type check before sending."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from smartingest.config.models import IdentifiedSync
from smartingest.errors import DestinationAuthError, DestinationError
from smartingest.iterable.client import IterableClient
from smartingest.iterable.fields import fits, read_field_types
from smartingest.iterable.records import RecordColumns
from smartingest.mapping.encode import JSON_NULL, Misfit, json_string
from smartingest.mapping.kinds import FieldKind, ObjectValue, RunInfo
from smartingest.mapping.plan import (
    MappedBatch,
    UserRecordPlan,
    assemble,
    compile_user_plan,
    json_join,
)
from smartingest.synctypes.base import SAME_BEFORE_COLUMN, Matching

log = logging.getLogger(__name__)


def compile_identified(
    sync: IdentifiedSync,
    schema: pa.Schema,
    where: str,
    *,
    prefer_user_id: bool = False,
    merge_nested_objects: bool = False,
    run: RunInfo | None = None,
) -> UserRecordPlan:
    """The mappings of a sync that matches users, checked against the model's schema: the identifier
    (``match_on``) must be mapped; MappingError names the mapping at fault."""
    return compile_user_plan(
        sync.mappings,
        schema,
        sync.identifier_field,
        prefer_user_id=prefer_user_id,
        merge_nested_objects=merge_nested_objects,
        where=f"{where}.mappings",
        invalid_values=sync.invalid_values,
        trim_identifier=sync.trim_identifier,
        lowercase_identifier=sync.lowercase_identifier,
        run=run,
    )


def matching(sync: IdentifiedSync, records: UserRecordPlan) -> Matching:
    """The identifier CDC checks for rows that would name the same user, compared as Iterable compares it."""
    return Matching(
        records.identifier_column or sync.identifier_field,  # compiled: the identifier is mapped
        sync.identifier_field,
        # Iterable matches emails ignoring case; userIds exactly (unless the sync lower-cases them).
        ignore_case=sync.identifier_field == "email" or sync.lowercase_identifier,
        trim=sync.trim_identifier,
    )


# (field path, its type in Iterable, the mapping that writes it, the kind of JSON it sends) -> a row's reason
Describe = Callable[[str, str, FieldKind, str], str]


# The end of a reason for text going into a date field (``fits`` says it depends on each value).
TEXT_INTO_DATE = (
    "only text that is a date fits (yyyy-MM-dd, yyyy-MM-dd HH:mm:ss +00:00 or ISO 8601): rows whose text is not "
    "a date are not sent; cast the column to a date or timestamp in the model to be sure"
)


def describe_user_field(path: str, fixed: str, mapping: FieldKind, kind: str) -> str:
    """The reason for a user field whose type does not fit (users, list subscribers' profile fields)."""
    if fits(fixed, kind) is None:
        return (
            f"field {path!r} is of type {fixed} in Iterable, but {mapping.source} sends {kind} values: {TEXT_INTO_DATE}"
        )
    return (
        f"field {path!r} is of type {fixed} in Iterable, but {mapping.source} sends {kind} values: change the "
        "column's type in the model, map it to another field, or change the field in Iterable (rows with a "
        "value there are not sent)"
    )


def type_conflicts(
    plan: UserRecordPlan, field_types: dict[str, str], describe: Describe = describe_user_field
) -> dict[str, Misfit]:
    """Mapped fields whose values cannot go into the type their destination field already has (or, for
    text into a date field, may not): the path of the mapping (or object mapping's part) that writes them
    -> which of its values are refused, and the reason given to their rows."""
    conflicts: dict[str, Misfit] = {}

    def check(mapping: FieldKind, prefix: str) -> None:
        if isinstance(mapping, ObjectValue):  # each part is refused on its own (Encoder.refuse_misfits)
            for part in mapping.parts:
                check(part, f"{prefix}{mapping.target}.")
            return
        for path, kind in mapping.kinds:
            fixed = field_types.get(prefix + path)
            fit = fits(fixed, kind) if fixed is not None else True
            if fixed is not None and fit is not True:
                reason = describe(prefix + path, fixed, mapping, kind)
                conflicts.setdefault(prefix + mapping.target, Misfit(reason, unless_date=fit is None))

    for mapping in plan.fields:
        check(mapping, "")
    return conflicts


async def refuse_user_field_misfits(
    client: IterableClient, records: UserRecordPlan
) -> tuple[UserRecordPlan, list[str]]:
    """Read the project's user field types (``users/getFields``): the plan then rejects, without a request,
    the rows whose values cannot fit them; returns it with a warning per conflict.

    If Iterable cannot list the types, the run sends as it would have (Iterable then refuses what does
    not fit). Raises DestinationAuthError.
    """
    try:
        field_types = await read_field_types(client)
    except DestinationAuthError:
        raise
    except DestinationError as exc:
        log.warning("field types not checked before sending: %s", exc)
        return records, []
    conflicts = type_conflicts(records, field_types)
    return records.refusing(conflicts), [f"field type conflict: {misfit.reason}" for misfit in conflicts.values()]


def user_objects(records: UserRecordPlan, batch: pa.RecordBatch, pk_column: str, op_column: str | None) -> MappedBatch:
    """One batch of model rows as Iterable user objects (``OptionalApiUser``: users/bulkUpdate's users,
    lists/subscribe's subscribers): the identifier first, the other identity field where not null,
    ``dataFields``, and the per-user flags.

    Each record keeps its row's operation (from ``op_column``, else "upsert"). A row whose identifier is
    null or blank, or that holds a value Iterable cannot store, is rejected with a reason; every other row
    becomes one record.
    """
    mapped = records.map_columns(batch)
    identifier = records.identifier_field or "email"
    pieces: list[pa.Array | str] = [
        "{" + orjson.dumps(identifier).decode() + ":",
        pc.fill_null(json_string(mapped.identity[identifier]), JSON_NULL),
    ]
    for name, values in mapped.identity.items():
        if name != identifier:  # the other identity field, left out where null
            pieces.append(pc.fill_null(pc.binary_join_element_wise(f',"{name}":', json_string(values), ""), ""))
    if mapped.fields is not None:
        pieces += [',"dataFields":', mapped.fields]
    for flag, value in records.extra_flags.items():
        pieces.append(f",{orjson.dumps(flag).decode()}:{orjson.dumps(value).decode()}")
    pieces.append("}")
    return assemble(batch, pk_column, op_column, json_join(pieces, mapped.rows), mapped)


def record_columns(mapped: MappedBatch) -> RecordColumns:
    """The records of a mapped batch, as the writers take them."""
    return RecordColumns(mapped.pks, mapped.ops, mapped.bodies, mapped.emails, mapped.user_ids)


def by_fields_sent(
    batch: pa.RecordBatch, records: UserRecordPlan, alone: Sequence[str], depth: int
) -> list[tuple[pa.RecordBatch, UserRecordPlan]]:
    """The batch's rows, each part with the plan that maps it: when ``alone`` names the parts the mappings
    added (``SendsFieldsAlone``), the rows flagged SAME_BEFORE_COLUMN get only those fields."""
    if not alone or SAME_BEFORE_COLUMN not in batch.schema.names:
        return [(batch, records)]
    flagged = pc.fill_null(batch.column(SAME_BEFORE_COLUMN), False)
    if not pc.any(flagged).as_py():
        return [(batch, records)]
    parts = [(batch.filter(pc.invert(flagged)), records), (batch.filter(flagged), records.only(alone, depth))]
    return [(rows, plan) for rows, plan in parts if rows.num_rows]
