"""Reading only the rows written since the last run, where the database numbers its row versions.

PostgreSQL writes every row version with the number of the transaction that wrote it (``xmin``); an
update writes a new version. So a table model's diff need not hash and join every row: a row whose version
was written before the last run began reading was compared then, and the snapshot holds its hash (it was
unchanged, or changed and acknowledged since), unless that run left it unacknowledged (refused, not sent,
invalid). The Lightning engine records, when a run commits, its **horizon** (the oldest transaction still
running when its scan began: every transaction before it had ended, so the scan saw what they wrote) and
its **pending keys** (the changed rows it did not commit). The next run then reads only the rows written
since the horizon, and those of the pending keys (``fresh_rows``): the others are as the snapshot holds
them.

What makes that hold, and what is checked before relying on it (``Horizon.covers``):

- the table is the one the horizon was recorded for, not made again, rewritten, restored elsewhere or
  given other columns, and its rows are all its own (``Warehouse.table_version``);
- the snapshot's hashes are of the scheme, baseline and mappings the horizon was recorded under; any merge
  into the snapshot forgets the horizon in its own transaction (``forget``), and only a run's commit,
  after its last merge, records the next one, so a run that stops between leaves the next run to read
  every row;
- the model's keys are its table's primary key (no duplicates, no nulls: a row the counts miss would be a
  removed key), and the horizon is within 2^30 transactions of now (row versions carry 32-bit numbers).

Removed keys need no row version: where as many rows met a snapshot key as it holds, none left (the
counts of cdc/lightning.py hold as they are, since every row not read has its key in the snapshot). How
many keys the snapshot holds is recorded with the horizon (the count at planning, plus the added and less
the removed keys the run merged), so a run that reads few rows does not count the snapshot's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smartingest.cdc.base import HashSpec

HORIZONS_TABLE = "smartingest_horizons"
# 32-bit transaction numbers compare within 2^31 of each other; past half that, a run reads every row.
_XID_WINDOW = 1 << 30


@dataclass(frozen=True)
class TableVersion:
    """What a model's table is as a run begins reading it (see ``Warehouse.table_version``)."""

    identity: str
    horizon: int  # 64-bit: every transaction before it had ended
    next_xid: int

    @classmethod
    def of(cls, row: tuple[Any, ...]) -> TableVersion | None:
        """The table's version from ``table_version``'s row, or None when its rows' versions cannot say."""
        usable, identity, horizon, next_xid = row
        if not usable or identity is None:
            return None
        return cls(str(identity), int(horizon), int(next_xid))


@dataclass(frozen=True)
class Horizon:
    """A sync's row of ``smartingest_horizons``: what its last committed run read, and under what."""

    identity: str
    horizon: int
    scheme: str
    baseline: str
    fingerprint: str
    snapshot_rows: int  # the snapshot's keys when it was recorded: no need to count them again

    def covers(self, now: TableVersion, scheme: str, spec: HashSpec) -> bool:
        """Whether rows written before this horizon can be left unread by a run reading ``now``."""
        return (
            self.identity == now.identity
            and (self.scheme, self.baseline, self.fingerprint) == (scheme, spec.baseline, spec.fingerprint)
            and 0 <= now.next_xid - self.horizon < _XID_WINDOW
        )


def create_table(table: str, text_type: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (sync_key {text_type} PRIMARY KEY, identity {text_type}, "
        f"horizon {text_type}, hash_scheme {text_type}, baseline {text_type}, fingerprint {text_type}, "
        f"snapshot_rows {text_type})"
    )


def select(table: str, sync_key_literal: str) -> str:
    return (
        f"SELECT identity, horizon, hash_scheme, baseline, fingerprint, snapshot_rows FROM {table} "
        f"WHERE sync_key = {sync_key_literal}"
    )


def horizon_of(rows: list[tuple[Any, ...]]) -> Horizon | None:
    if not rows:
        return None
    identity, horizon, scheme, baseline, fingerprint, snapshot_rows = (str(v or "") for v in rows[0])
    try:
        return Horizon(identity, int(horizon), scheme, baseline, fingerprint, int(snapshot_rows))
    except ValueError:  # not ours: then nothing is known
        return None


def forget(table: str, sync_key_literal: str) -> str:
    return f"DELETE FROM {table} WHERE sync_key = {sync_key_literal}"


def record(
    table: str,
    literal: Callable[[str], str],
    sync_key: str,
    version: TableVersion,
    scheme: str,
    spec: HashSpec,
    snapshot_rows: int,
) -> str:
    values = [sync_key, version.identity, str(version.horizon), scheme, spec.baseline, spec.fingerprint]
    values.append(str(snapshot_rows))
    return (
        f"INSERT INTO {table} (sync_key, identity, horizon, hash_scheme, baseline, fingerprint, snapshot_rows) "
        f"VALUES ({', '.join(literal(v) for v in values)})"
    )


def fresh_rows(table: str, pending: str, written_since: str, keys_match: str) -> str:
    """The rows of model table ``table`` (alias ``t``) to read: those ``written_since`` holds for, and the
    others of the ``pending`` table's keys (alias ``p``). Two parts, each planned for its own size: an OR
    of the two would probe the pending keys once per row of the table."""
    return (
        f"SELECT t.* FROM {table} t WHERE {written_since} UNION ALL "
        f"SELECT t.* FROM {table} t JOIN {pending} p ON {keys_match} WHERE NOT ({written_since})"
    )
