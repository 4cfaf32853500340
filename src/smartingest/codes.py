"""Closed sets the whole engine shares: the status of a run, the status of a row, and why a row got it.

Statuses and reason codes are stored as their text in the metadata database and printed by every front
end, so they are ``StrEnum``s: one place names them, nothing compares loose strings. A reason code groups
row outcomes (the UI and alerts count them by code); the reason text beside it says what happened to
that row and what to fix.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a sync run is, or how it ended."""

    QUEUED = "queued"
    QUERYING = "querying"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    WARNING = "warning"
    FAILED = "failed"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.QUERYING, RunStatus.IN_PROGRESS)
STARTED_RUN_STATUSES = (RunStatus.QUERYING, RunStatus.IN_PROGRESS)  # claimed by a process, not finished


class RowStatus(StrEnum):
    """A row's outcome in a run: a delivery verdict, or invalid (never sent)."""

    SYNCED = "synced"
    REJECTED = "rejected"
    RETRY = "retry"
    DEFERRED = "deferred"
    SKIPPED = "skipped"
    INVALID = "invalid"


class ReasonCode(StrEnum):
    """Why a row was not simply synced."""

    # invalid rows: found by change data capture, never sent
    NULL_KEY = "null_key"
    DUPLICATE_KEY = "duplicate_key"
    SHARED_IDENTIFIER = "shared_identifier"
    # rejected before sending
    NO_IDENTIFIER = "no_identifier"
    INVALID_VALUE = "invalid_value"
    TYPE_MISMATCH = "type_mismatch"
    TOO_LARGE = "too_large"
    NO_EVENT_NAME = "no_event_name"
    NO_EVENT_ID = "no_event_id"
    INVALID_ITEM_ID = "invalid_item_id"
    NO_NEW_EMAIL = "no_new_email"
    KEY_NOT_LOWER_CASE = "key_not_lower_case"
    TEMPLATE_FAILED = "template_failed"
    # rejected by Iterable
    INVALID_EMAIL = "invalid_email"
    INVALID_USER_ID = "invalid_user_id"
    INVALID_DATA = "invalid_data"
    FORGOTTEN = "forgotten"
    CONFLICT = "conflict"
    NOT_FOUND = "not_found"
    DISALLOWED_EVENT_NAME = "disallowed_event_name"
    UNKNOWN_LIST = "unknown_list"
    REFUSED = "refused"
    # retried next run, deferred, skipped
    UNAVAILABLE = "unavailable"
    NOT_SENT = "not_sent"
    DAILY_CAP = "daily_cap"
    NO_SUCH_USER = "no_such_user"
    ALREADY_APPLIED = "already_applied"
