"""The sync quota: at most ``sync_quota`` syncs (5 by default, as Smart Ingest allows) across each
organization's production projects. Syncs whose destination is a test project do not count. A production
sync deleted after it ran at least once keeps counting until the calendar month (UTC) of its deletion
ends: deleting and re-creating syncs does not make room within a month.

An organization owns destinations (a destination's ``organization``, "default" unless set); each
organization's syncs are counted apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from smartingest.config.models import ProjectConfig
from smartingest.errors import QuotaError
from smartingest.store.tables import DeletedSync, SyncRun


@dataclass(frozen=True)
class Counted:
    """A sync that counts towards its organization's quota."""

    id: str
    name: str
    organization: str


@dataclass(frozen=True)
class QuotaUsage:
    """One organization's quota: what counts now and what room is left (``limit`` None: no quota)."""

    organization: str
    limit: int | None
    production_syncs: list[str]
    deleted_this_month: list[str]  # deleted after they ran: they count until the month ends

    @property
    def used(self) -> int:
        return len(self.production_syncs) + len(self.deleted_this_month)

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    def as_dict(self) -> dict[str, Any]:
        """The usage as ``--json`` and the API give it."""
        return {**asdict(self), "used": self.used, "remaining": self.remaining}


def production_syncs(config: ProjectConfig) -> dict[str, Counted]:
    """The syncs that count, by id: those whose destination is a production project."""
    counted: dict[str, Counted] = {}
    for name, sync in config.syncs.items():
        destination = config.destinations.get(sync.destination)
        if destination is not None and destination.environment == "production":
            sync_id = config.sync_id(name)
            counted[sync_id] = Counted(sync_id, name, destination.organization)
    return counted


def deleted_this_month(engine: Engine, now: datetime) -> dict[str, Counted]:
    """Production syncs deleted after they ran, in the calendar month of ``now``, by id."""
    month = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    query = select(DeletedSync.sync_id, DeletedSync.name, DeletedSync.organization).where(
        DeletedSync.deleted_at >= month
    )
    with engine.connect() as con:
        return {row.sync_id: Counted(row.sync_id, row.name, row.organization) for row in con.execute(query)}


def usage(engine: Engine, quota: int | None, config: ProjectConfig, now: datetime) -> list[QuotaUsage]:
    """Each organization's quota (every organization that owns a destination, or a deleted sync this
    month), by name."""
    counted = production_syncs(config)
    deleted = {i: c for i, c in deleted_this_month(engine, now).items() if i not in counted}
    # With no destination yet, the one organization there is (what a new project's first sync counts in).
    organizations = {d.organization for d in config.destinations.values()} | {c.organization for c in deleted.values()}
    organizations = organizations or {"default"}
    return [
        QuotaUsage(
            organization,
            quota,
            sorted(c.name for c in counted.values() if c.organization == organization),
            sorted(c.name for c in deleted.values() if c.organization == organization),
        )
        for organization in sorted(organizations)
    ]


def check_quota(engine: Engine, quota: int | None, after: ProjectConfig, before: ProjectConfig, now: datetime) -> None:
    """Refuse (QuotaError) a change that takes an organization's production syncs from ``before`` to
    ``after`` over the quota. Only an organization that gains a production sync is checked (the quota may
    have been lowered since its syncs were made)."""
    if quota is None:
        return
    was = {(c.id, c.organization) for c in production_syncs(before).values()}
    gaining = {c.organization for c in production_syncs(after).values() if (c.id, c.organization) not in was}
    for org in usage(engine, quota, after, now):
        if org.organization not in gaining or org.used <= quota:
            continue
        whose = "the organization's" if org.organization == "default" else f"organization {org.organization}'s"
        also = ""
        if org.deleted_this_month:
            gone = ", ".join(org.deleted_this_month)
            also = (
                f", and {len(org.deleted_this_month)} deleted this month after running ({gone}), "
                "which count until the month ends"
            )
        raise QuotaError(
            f"{whose} production projects may hold {quota} syncs (sync_quota), and this would make "
            f"{org.used}: {', '.join(org.production_syncs)}{also}. Point the sync at a test project, delete "
            "a production sync, or raise sync_quota"
        )


def record_deletion(engine: Engine, config: ProjectConfig, name: str, now: datetime) -> None:
    """Remember a production sync being deleted if it ran at least once (it keeps counting this month)."""
    counted = production_syncs(config).get(config.sync_id(name))
    if counted is None:
        return
    with engine.begin() as con:
        ran = con.execute(select(SyncRun.id).where(SyncRun.sync_id == counted.id).limit(1)).first() is not None
        if ran:
            con.execute(
                insert(DeletedSync).values(
                    sync_id=counted.id, name=name, deleted_at=now, organization=counted.organization
                )
            )
