"""What the sync types that send one request per user share (email_change, user_deletion).

Their only mapping is the identifier (``match_on``); the other columns they read are keys of their own
(``new_email``). A row fires a request only on some operations (a key's first appearance, mostly): the
others are decided without a request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from smartingest.iterable.outcomes import SYNCED
from smartingest.iterable.writer import Record
from smartingest.mapping.plan import UserRecordPlan
from smartingest.synctypes.base import OP_COLUMN, PK_COLUMN, Decided


def settings_fingerprint(records: UserRecordPlan, **settings: str) -> str:
    """Digest of the identifier mapping and the type's own settings that shape a request."""
    doc = {"identifier": records.fingerprint, **settings}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def split_quiet(batch: pa.RecordBatch, fires: Sequence[str]) -> tuple[pa.RecordBatch, list[Decided]]:
    """The rows whose operation is in ``fires`` (to send), and every other row synced without a request:
    the sync's behaviour says nothing is to be done for it."""
    ops = batch.column(OP_COLUMN)
    firing = pc.is_in(ops, value_set=pa.array(list(fires), ops.type))
    quiet = batch.filter(pc.invert(firing))
    decided: list[Decided] = [
        (pk, op, SYNCED)
        for pk, op in zip(quiet.column(PK_COLUMN).to_pylist(), quiet.column(OP_COLUMN).to_pylist(), strict=True)
    ]
    return (batch.filter(firing) if decided else batch), decided


def first_body(records: Sequence[Record]) -> bytes:
    """A per-row request carries one record: the sample is the first one's."""
    return records[0].body if records else b"{}"
