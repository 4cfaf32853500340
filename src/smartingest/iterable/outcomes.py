"""Delivery verdicts: a closed set, one per row that left the change set."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Synced:
    """Iterable acknowledged the row (or the sync's behaviour says nothing is to be done)."""


@dataclass(frozen=True)
class Rejected:
    """Iterable refused this row; resending it unchanged would fail again."""

    reason: str


@dataclass(frozen=True)
class Retry:
    """A transient failure outlived the retry budget; the next run sends the row again."""

    reason: str


@dataclass(frozen=True)
class Deferred:
    """Not sent on purpose this run (a cap or quota); a later run sends it."""

    reason: str


@dataclass(frozen=True)
class Skipped:
    """The sync's mode excludes the row (for example update-only and no such user)."""

    reason: str


Verdict = Synced | Rejected | Retry | Deferred | Skipped

SYNCED = Synced()


def status_of(verdict: Verdict) -> str:
    """The ledger's name for a verdict."""
    match verdict:
        case Synced():
            return "synced"
        case Rejected():
            return "rejected"
        case Retry():
            return "retry"
        case Deferred():
            return "deferred"
        case Skipped():
            return "skipped"


def reason_of(verdict: Verdict) -> str | None:
    """The verdict's reason, or None for a synced row."""
    match verdict:
        case Synced():
            return None
        case Rejected(reason) | Retry(reason) | Deferred(reason) | Skipped(reason):
            return reason


def commits(verdict: Verdict) -> bool:
    """Whether the row enters the snapshot (synced and skipped rows do; the others come back next run)."""
    return isinstance(verdict, Synced | Skipped)
