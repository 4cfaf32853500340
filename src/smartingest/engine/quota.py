"""The sync quota: at most ``sync_quota`` syncs (5 by default, as Smart Ingest allows) across the
organization's production projects. Syncs whose destination is a test project do not count. A production
sync deleted after it ran at least once keeps counting until the calendar month (UTC) of its deletion
ends: deleting and re-creating syncs does not make room within a month.

This version serves one organization per metadata database: every destination it defines is one of
that organization's projects.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from smartingest.config.models import ProjectConfig
from smartingest.errors import QuotaError
from smartingest.store.tables import DeletedSync, SyncRun


def production_syncs(config: ProjectConfig) -> dict[str, str]:
    """The syncs that count: id -> name, those whose destination is a production project."""
    return {
        config.sync_id(name): name
        for name, sync in config.syncs.items()
        if sync.destination in config.destinations and config.destinations[sync.destination].environment == "production"
    }


def deleted_this_month(engine: Engine, now: datetime) -> dict[str, str]:
    """Production syncs deleted after they ran, in the calendar month of ``now``: id -> name."""
    month = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with engine.connect() as con:
        rows = con.execute(select(DeletedSync.sync_id, DeletedSync.name).where(DeletedSync.deleted_at >= month))
        return {row.sync_id: row.name for row in rows}


def check_quota(engine: Engine, quota: int | None, after: ProjectConfig, before: ProjectConfig, now: datetime) -> None:
    """Refuse (QuotaError) a change that takes the production syncs from ``before`` to ``after`` over the
    quota. A change that adds no production sync is never refused (the quota may have been lowered)."""
    if quota is None:
        return
    counted = production_syncs(after)
    added = set(counted) - set(production_syncs(before))
    if not added:
        return
    deleted = {i: n for i, n in deleted_this_month(engine, now).items() if i not in counted}
    if len(counted) + len(deleted) <= quota:
        return
    named = ", ".join(sorted(counted.values()))
    also = ""
    if deleted:
        gone = ", ".join(sorted(deleted.values()))
        also = f", and {len(deleted)} deleted this month after running ({gone}), which count until the month ends"
    raise QuotaError(
        f"the organization's production projects may hold {quota} syncs (sync_quota), and this would make "
        f"{len(counted) + len(deleted)}: {named}{also}. Point the sync at a test project, delete a production "
        "sync, or raise sync_quota"
    )


def record_deletion(engine: Engine, config: ProjectConfig, name: str, now: datetime) -> None:
    """Remember a production sync being deleted if it ran at least once (it keeps counting this month)."""
    sync_id = config.sync_id(name)
    if sync_id not in production_syncs(config):
        return
    with engine.begin() as con:
        ran = con.execute(select(SyncRun.id).where(SyncRun.sync_id == sync_id).limit(1)).first() is not None
        if ran:
            con.execute(insert(DeletedSync).values(sync_id=sync_id, name=name, deleted_at=now))
