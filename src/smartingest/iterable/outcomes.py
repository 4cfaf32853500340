"""Delivery verdicts: a closed set, one per row that left the change set, each with a reason code."""

from __future__ import annotations

from dataclasses import dataclass

from smartingest.codes import ReasonCode, RowStatus


@dataclass(frozen=True)
class Synced:
    """Iterable acknowledged the row (or the sync's behaviour says nothing is to be done)."""


@dataclass(frozen=True)
class Rejected:
    """Iterable (or the run, before sending) refused this row; resending it unchanged would fail again."""

    reason: str
    code: ReasonCode = ReasonCode.REFUSED


@dataclass(frozen=True)
class Retry:
    """A transient failure outlived the retry budget; the next run sends the row again."""

    reason: str
    code: ReasonCode = ReasonCode.UNAVAILABLE


@dataclass(frozen=True)
class Deferred:
    """Not sent on purpose this run (a cap or quota); a later run sends it."""

    reason: str
    code: ReasonCode = ReasonCode.DAILY_CAP


@dataclass(frozen=True)
class Skipped:
    """The sync's mode excludes the row (for example update-only and no such user)."""

    reason: str
    code: ReasonCode = ReasonCode.NO_SUCH_USER


Verdict = Synced | Rejected | Retry | Deferred | Skipped

# Iterable's error code of a refused request -> the reason code of the rows it refused.
REFUSAL_CODES = {
    "RequestFieldsTypesMismatched": ReasonCode.TYPE_MISMATCH,
    "InvalidEmailAddressError": ReasonCode.INVALID_EMAIL,
    "InvalidUserIdError": ReasonCode.INVALID_USER_ID,
    "ForgottenUserError": ReasonCode.FORGOTTEN,
    "EmailAlreadyExists": ReasonCode.CONFLICT,
    "UserIdAlreadyExists": ReasonCode.CONFLICT,
    "UnknownEmailError": ReasonCode.NOT_FOUND,
    "UnknownUserIdError": ReasonCode.NOT_FOUND,
}


def refusal(reason: str, iterable_code: str) -> Rejected:
    """The verdict of a row Iterable refused with this error code."""
    return Rejected(reason, REFUSAL_CODES.get(iterable_code, ReasonCode.REFUSED))


SYNCED = Synced()


def status_of(verdict: Verdict) -> RowStatus:
    """The ledger's status for a verdict."""
    match verdict:
        case Synced():
            return RowStatus.SYNCED
        case Rejected():
            return RowStatus.REJECTED
        case Retry():
            return RowStatus.RETRY
        case Deferred():
            return RowStatus.DEFERRED
        case Skipped():
            return RowStatus.SKIPPED


def reason_of(verdict: Verdict) -> str | None:
    """The verdict's reason, or None for a synced row."""
    match verdict:
        case Synced():
            return None
        case Rejected(reason) | Retry(reason) | Deferred(reason) | Skipped(reason):
            return reason


def code_of(verdict: Verdict) -> ReasonCode | None:
    """The verdict's reason code, or None for a synced row."""
    match verdict:
        case Synced():
            return None
        case Rejected(code=code) | Retry(code=code) | Deferred(code=code) | Skipped(code=code):
            return code


def commits(verdict: Verdict) -> bool:
    """Whether the row enters the snapshot (synced and skipped rows do; the others come back next run)."""
    return isinstance(verdict, Synced | Skipped)
