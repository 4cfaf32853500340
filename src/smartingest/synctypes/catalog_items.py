"""Catalog items from a batch of changes, column by column: documents for the bulk write, ids for the
bulk delete, and the rows refused before sending.

A document is ``"<item id>":{<fields>}``, framed as it sits in the bulk write's ``documents`` object
(``iterable.catalog_writer``). Its fields are the mapped fields (``mapping.plan``'s ``dataFields``
object); a column mapped to ``email`` or ``userId``, which a users sync would send beside
``dataFields``, is an ordinary field of the item here, sent as text. The JSON is built with Arrow
compute over whole columns; only wrapping each body in a record is per row.

Refused before sending, each with its reason and code:
- an item id that is null (``no_identifier``) or breaks the contract's rule, 1 to 255 ASCII letters,
  digits and dashes (``invalid_item_id``): Iterable would refuse the whole request for it;
- an item whose value is over 30 KiB as sent (``too_large``);
- a value Iterable cannot store, or one that does not fit its field's type (``mapping.plan``).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from smartingest.codes import ReasonCode
from smartingest.iterable.endpoints import CATALOG_MAX_ITEM_BYTES
from smartingest.iterable.outcomes import Rejected
from smartingest.mapping.encode import JSON_NULL, Encoder, json_string
from smartingest.mapping.plan import MappedColumns, UserRecordPlan, assemble, json_join
from smartingest.synctypes.base import OP_COLUMN, PK_COLUMN, Decided
from smartingest.synctypes.common import record_columns

# The contract: "only alphanumeric characters and dashes ... a maximum length of 255 characters".
ITEM_ID_PATTERN = r"^[A-Za-z0-9-]{1,255}$"
_SHOWN_ID_CHARS = 80  # an id quoted in a reason is cut here


@dataclass(frozen=True)
class ItemRecord:
    """One row as a catalog write: its key and operation, and its item as framed in the request."""

    pk: str
    operation: str
    body: bytes


@dataclass(frozen=True)
class ItemBuilder:
    """Builds one catalog's items: ``fields`` compiles the mappings; ``item_id_column`` is the column
    the ids come from (None: the primary key's text form)."""

    fields: UserRecordPlan
    item_id_column: str | None

    @property
    def id_source(self) -> str:
        """Where item ids come from, for reasons."""
        return f"column {self.item_id_column!r}" if self.item_id_column else "the primary key"

    def documents(self, batch: pa.RecordBatch) -> tuple[list[ItemRecord], list[Decided]]:
        """Added and changed rows as documents; rows that cannot be sent are decided (rejected)."""
        ids = self._ids(batch)
        mapped = self.fields.map_columns(batch)
        values = item_values(mapped)
        mapped.problems.add(
            pc.greater(pc.binary_length(values), CATALOG_MAX_ITEM_BYTES),
            f"the item is larger than {CATALOG_MAX_ITEM_BYTES:,} bytes (30 KiB) as sent, the most Iterable "
            "takes per catalog item: map fewer or smaller fields",
            ReasonCode.TOO_LARGE,
        )
        bad_ids, decided = self._refuse_bad_ids(batch, ids)
        bodies = json_join([pc.fill_null(json_string(ids), '""'), ":", values], batch.num_rows)
        keep = pc.invert(bad_ids) if bad_ids is not None else None
        built = assemble(batch, PK_COLUMN, OP_COLUMN, bodies, mapped, keep=keep)
        decided += [(pk, op, Rejected(reason, code)) for pk, op, reason, code in built.rejected]
        return [ItemRecord(r.pk, r.operation, r.body) for r in record_columns(built)], decided

    def deletes(self, batch: pa.RecordBatch) -> tuple[list[ItemRecord], list[Decided]]:
        """Removed rows as item ids to delete: a removed row's id is its primary key, the only value
        the snapshot keeps of it (the sync's configuration makes ids come from the key to delete)."""
        ids = batch.column(PK_COLUMN)
        bad_ids, decided = self._refuse_bad_ids(batch, ids)
        if bad_ids is not None:
            keep = pc.invert(bad_ids)
            batch, ids = batch.filter(keep), ids.filter(keep)
        bodies = json_string(ids).cast(pa.binary()).to_pylist()
        pks = batch.column(PK_COLUMN).to_pylist()
        return [ItemRecord(pk, "removed", body) for pk, body in zip(pks, bodies, strict=True)], decided

    def _ids(self, batch: pa.RecordBatch) -> pa.Array:
        if self.item_id_column is None:
            return batch.column(PK_COLUMN)
        return Encoder.text(batch.column(self.item_id_column))

    def _refuse_bad_ids(self, batch: pa.RecordBatch, ids: pa.Array) -> tuple[pa.BooleanArray | None, list[Decided]]:
        """Rows whose item id is null or not one the contract allows: (their mask, their rejections);
        (None, []) when every id is good."""
        good = pc.fill_null(pc.match_substring_regex(ids, ITEM_ID_PATTERN), False)
        if pc.all(good).as_py():
            return None, []
        bad = pc.invert(good)
        rows = batch.filter(bad)
        decided: list[Decided] = []
        for pk, op, item_id in zip(
            rows.column(PK_COLUMN).to_pylist(),
            rows.column(OP_COLUMN).to_pylist(),
            ids.filter(bad).to_pylist(),
            strict=True,
        ):
            if item_id is None:
                reason = f"the item id ({self.id_source}) is null: the row has no item to write"
                decided.append((pk, op, Rejected(reason, ReasonCode.NO_IDENTIFIER)))
                continue
            shown = item_id if len(item_id) <= _SHOWN_ID_CHARS else item_id[:_SHOWN_ID_CHARS] + "..."
            reason = (
                f"item id {shown!r} ({self.id_source}) is not a catalog item id: Iterable takes 1 to 255 ASCII "
                "letters, digits and dashes"
            )
            decided.append((pk, op, Rejected(reason, ReasonCode.INVALID_ITEM_ID)))
        return bad, decided


def item_values(mapped: MappedColumns) -> pa.Array:
    """One JSON object per row: the columns mapped to ``email`` and ``userId`` (as text), then every
    other mapped field (the ``dataFields`` object a users sync would send)."""
    if not mapped.identity:
        assert mapped.fields is not None  # a sync maps at least one field
        return mapped.fields
    pieces: list[pa.Array | str] = ["{"]
    for i, (name, text) in enumerate(mapped.identity.items()):
        pieces += [("," if i else "") + orjson.dumps(name).decode() + ":", pc.fill_null(json_string(text), JSON_NULL)]
    if mapped.fields is None:
        pieces.append("}")
    else:
        # The fields' own object without its opening brace continues this one.
        pieces += [",", pc.utf8_slice_codeunits(mapped.fields, 1)]
    return json_join(pieces, mapped.rows)
