"""A sync's status as Smart Ingest shows it, from its definition and its runs.

| status | when |
|---|---|
| Querying | a run reads the model and computes its change set |
| In Progress | a run sends the changes to Iterable |
| Queued | a run waits to be executed (its sync's previous run still runs, or no worker took it yet) |
| Disabled | the sync's schedule is off (``enabled: false``) and nothing runs |
| Pending | the sync never ran |
| Error | its last run failed: a sync-level problem (bad SQL, bad credentials, Iterable unavailable...) |
| Incomplete | its last run ended before every change got its verdict: interrupted, or rows left for the next run |
| Warning | its last run finished with rows rejected or invalid |
| Healthy | its last run sent everything it had to |

A run in progress shows first (Querying, In Progress, then Queued), whatever the last run did. Smart
Ingest's Preparing (between querying and sending) is part of Querying here: the Basic engine reads the
model and computes the change set in one streaming pass.
"""

from __future__ import annotations

from enum import StrEnum

from smartingest.codes import RunStatus
from smartingest.engine.ledger import RunRecord


class SyncStatus(StrEnum):
    QUERYING = "Querying"
    IN_PROGRESS = "In Progress"
    QUEUED = "Queued"
    DISABLED = "Disabled"
    PENDING = "Pending"
    ERROR = "Error"
    INCOMPLETE = "Incomplete"
    WARNING = "Warning"
    HEALTHY = "Healthy"


def sync_status(enabled: bool, runs: list[RunRecord]) -> SyncStatus:
    """The status of a sync whose newest runs are ``runs`` (newest first)."""
    active = {run.status for run in runs if run.finished_at is None}
    if RunStatus.QUERYING in active:
        return SyncStatus.QUERYING
    if RunStatus.IN_PROGRESS in active:
        return SyncStatus.IN_PROGRESS
    if RunStatus.QUEUED in active:
        return SyncStatus.QUEUED
    if not enabled:
        return SyncStatus.DISABLED
    last = next((run for run in runs if run.finished_at is not None), None)
    if last is None:
        return SyncStatus.PENDING
    incomplete = last.counts.get("retried_next_run", 0) > 0
    if last.status == RunStatus.FAILED:
        # A run that sent part of its changes and then stopped is incomplete, not a failure of the sync.
        sent = any(last.counts.get(k, 0) for k in ("synced", "rejected", "skipped"))
        return SyncStatus.INCOMPLETE if sent and incomplete else SyncStatus.ERROR
    if incomplete:
        return SyncStatus.INCOMPLETE
    if last.status == RunStatus.WARNING:
        return SyncStatus.WARNING
    return SyncStatus.HEALTHY
