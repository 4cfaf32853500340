"""Claiming a schedule's slot: of every scheduler replica that finds a sync due, one queues its run.

Each sync's last queued slot is one row; claiming a later slot is a conditional write of that row (an
insert, or an update from the value read), so of two replicas claiming at once one writes and the other
finds the slot taken, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from smartingest.store.tables import ScheduleSlot


def claim_slot(engine: Engine, sync_id: str, slot: datetime) -> bool:
    """Whether the caller is the one to queue the run of ``slot`` for the sync (a slot at or before the
    last one claimed was queued already)."""
    try:
        with engine.begin() as con:
            last = con.execute(select(ScheduleSlot.last_slot).where(ScheduleSlot.sync_id == sync_id)).scalar()
            if last is None:
                con.execute(insert(ScheduleSlot).values(sync_id=sync_id, last_slot=slot))
                return True
            last = last if last.tzinfo else last.replace(tzinfo=UTC)
            if last >= slot:
                return False
            claimed = con.execute(
                update(ScheduleSlot)
                .where(ScheduleSlot.sync_id == sync_id, ScheduleSlot.last_slot == last)
                .values(last_slot=slot)
            )
            return claimed.rowcount == 1
    except IntegrityError:  # another replica inserted first
        return False
