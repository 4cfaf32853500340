"""Tables of the metadata database: definitions (when they live there rather than in a project file), and
sync runs (their row-level outcomes live in files: engine/outcome_files.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

COUNT_NAMES = (
    "queried",
    "invalid",
    "unchanged",
    "added",
    "changed",
    "removed",
    "synced",
    "rejected",
    "retried_next_run",
    "deferred",
    "skipped",
)


class Base(DeclarativeBase):
    pass


class Definition(Base):
    """One source, model, destination or sync: its keys as a project file holds them (JSON), encrypted
    (``repository/secrets.py``): they hold passwords and API keys."""

    __tablename__ = "definitions"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_definitions_kind_name"),)

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """A token of the REST API: its name and a SHA-256 digest of it (the token itself is shown once)."""

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ScheduleSlot(Base):
    """The last slot of a sync's schedule a run was queued for (scheduler/due.py): a slot is queued once,
    whatever the number of scheduler replicas."""

    __tablename__ = "schedule_slots"

    sync_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_slot: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeletedSync(Base):
    """A production sync deleted after it ran: it counts towards the sync quota until the calendar month
    of its deletion ends (engine/quota.py)."""

    __tablename__ = "deleted_syncs"

    sync_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    deleted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    organization: Mapped[str] = mapped_column(String(128), default="default")


class AlertState(Base):
    """What a sync's alerts last said of it (ok, failed, rejecting): an alert goes out when it changes."""

    __tablename__ = "alert_states"

    sync_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SyncLease(Base):
    """Who runs (or plans) a sync now, across every machine sharing the metadata database: one row per
    sync while it is held, renewed while its holder lives (``engine/lease.py``)."""

    __tablename__ = "sync_leases"

    sync_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))  # a token of the holding process's lease
    purpose: Mapped[str] = mapped_column(String(32))  # run, plan, reset
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SyncRun(Base):
    """One execution of a sync, its status, its counts and how long each phase took."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    sync_id: Mapped[str] = mapped_column(String(128), index=True)  # what the run belongs to
    sync_name: Mapped[str] = mapped_column(String(128), index=True)  # the sync's name when it ran
    status: Mapped[str] = mapped_column(String(32), index=True)
    trigger: Mapped[str] = mapped_column(String(32), default="manual")
    full_resync: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(255))
    mapping_fingerprint: Mapped[str | None] = mapped_column(String(64))
    timings: Mapped[dict | None] = mapped_column(JSON)
    delivery: Mapped[dict | None] = mapped_column(JSON)
    warnings: Mapped[list | None] = mapped_column(JSON)
    progress: Mapped[dict | None] = mapped_column(JSON)  # engine/progress.py RecordedProgress
    rows_pruned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    queried: Mapped[int] = mapped_column(BigInteger, default=0)
    invalid: Mapped[int] = mapped_column(BigInteger, default=0)
    unchanged: Mapped[int] = mapped_column(BigInteger, default=0)
    added: Mapped[int] = mapped_column(BigInteger, default=0)
    changed: Mapped[int] = mapped_column(BigInteger, default=0)
    removed: Mapped[int] = mapped_column(BigInteger, default=0)
    synced: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    retried_next_run: Mapped[int] = mapped_column(BigInteger, default=0)
    deferred: Mapped[int] = mapped_column(BigInteger, default=0)
    skipped: Mapped[int] = mapped_column(BigInteger, default=0)


class LegacyRunRow(Base):
    """Row outcomes as earlier versions kept them, one row each; ``Ledger.adopt_legacy_rows`` moves any
    left to the outcome files when a project is opened."""

    __tablename__ = "run_rows"
    __table_args__ = (Index("ix_run_rows_run_status", "run_id", "status"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    primary_key: Mapped[str | None] = mapped_column(Text)
    operation: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    reason_code: Mapped[str | None] = mapped_column(String(32))
