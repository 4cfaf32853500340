"""Custom events of one sandbox project: `events/track`, `events/trackBulk` and the event reads.

Runs on the storage worker thread, like `Project`. The rules, as the contract states them or as the
sandbox decides where it is silent (docs/sandbox.md):

- An event names its user by one identifier: `email` in email-based projects (a `userId` alone
  finds an existing user), `userId` in userID-based projects (required there), `userId` else
  `email` in hybrid projects. The other identifier, when sent too, is validated and checked
  against the forgotten list but does not identify. A user that does not exist is created with
  that identifier, except from a `userId` in an email-based project (`TrackRequest` has no
  `preferUserId`): that event fails with the userId in `notFoundUserIds`. Events never change a
  profile's identifiers or dataFields.
- An event `id` (at most 512 bytes) makes a resend idempotent: an event with the id of a stored
  one replaces it (user, name, dataFields, createdAt) instead of adding another; `createdAt`
  omitted on a resend keeps the stored one. Without an id a new one is generated.
- `createdAt` is epoch seconds or milliseconds (told apart by size: below 10^11 it is seconds);
  omitted, it is the time the event is received.
- Field types are fixed per event name, by the first non-null value of each dot path, with the
  compatibility rules of user fields (the contract: "For events of the same name, identically
  named data fields must be of the same type"). Any mismatch rejects the whole request (400
  `RequestFieldsTypesMismatched`); nothing is applied.
- Names in the project's disallowed list are not tracked: `disallowedEventNames` in bulk (each
  such event counted in `failCount`), a 200 whose message says "is disallowed from tracking" for
  a single event (Iterable's answer).
- Identifier failures are per event in bulk (`failedUpdates`). The shape of the body (types of
  `eventName`, `createdAt`, `dataFields`...) is checked first and fails the whole request with 400
  `BadJsonBody`, `params` naming each bad path (`obj.events[1].createdAt`), as Iterable answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .envelope import ApiError, type_mismatch_error
from .event_store import EventStore, StoredEvent
from .fields import FieldTypeChecker, drop_unknown
from .identity import Profile, is_valid_email, normalize_email
from .lookup import (
    LookupFailure,
    NamedUser,
    UserKey,
    forgotten_failure,
    index_profiles,
    load_named,
    name_user,
)
from .project import Project, now_ms

MAX_EVENT_ID_BYTES = 512  # the contract's "this ID cannot be longer than 512 bytes"
DEFAULT_EVENTS_LIMIT = 30
MAX_EVENTS_LIMIT = 200
_SECONDS_BELOW = 10**11  # epoch values below this are seconds (10^11 ms is 1973, 10^11 s is year 5138)
FAILED_EVENT_LISTS = (
    "forgottenEmails",
    "forgottenUserIds",
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
)
_OPTIONAL_INTEGERS = ("createdAt", "campaignId", "templateId")


@dataclass
class _Event:
    """One TrackRequest whose shape is valid (its identifiers are not checked yet)."""

    index: int
    name: str
    raw_email: Any
    raw_user_id: Any
    event_id: str | None
    created_at: int | None
    data: dict[str, Any]
    campaign_id: int | None
    template_id: int | None
    create_new_fields: bool
    new_paths: list[str] = field(default_factory=list)


@dataclass
class _Outcome:
    """What a track request did."""

    success_count: int = 0
    failures: list[LookupFailure] = field(default_factory=list)
    disallowed_count: int = 0
    disallowed_names: dict[str, None] = field(default_factory=dict)
    created_fields: dict[str, None] = field(default_factory=dict)
    filtered_out_fields: dict[str, None] = field(default_factory=dict)
    tracked_ids: list[str] = field(default_factory=list)

    def bulk_response(self) -> dict[str, Any]:
        """The contract's `BulkTrackResponse`; every list is present."""
        lists: dict[str, dict[str, None]] = {name: {} for name in FAILED_EVENT_LISTS}
        for failure in self.failures:
            for name, value in failure.reports:
                lists[name][value] = None
        # The deprecated top-level lists as the contract describes them: malformed emails, and
        # userIds that were not found (a malformed userId cannot be found either).
        invalid_user_ids = {**lists["invalidUserIds"], **lists["notFoundUserIds"]}
        return {
            "successCount": self.success_count,
            "failCount": len(self.failures) + self.disallowed_count,
            "invalidEmails": list(lists["invalidEmails"]),
            "invalidUserIds": list(invalid_user_ids),
            "disallowedEventNames": list(self.disallowed_names),
            "filteredOutFields": list(self.filtered_out_fields),
            "createdFields": list(self.created_fields),
            "failedUpdates": {name: list(values) for name, values in lists.items()},
        }


def _bad_json(errors: dict[str, str]) -> ApiError:
    described = "; ".join(f"{path}: {problem}" for path, problem in errors.items())
    return ApiError(400, "BadJsonBody", f"Invalid JSON body: {described}", errors)


def _integer(value: Any) -> int | None:
    """A non-negative integer sent as a JSON number (integral floats too); None when it is not one."""
    if type(value) is float and value.is_integer():
        value = int(value)
    return value if type(value) is int and value >= 0 else None


def iterable_time(epoch_ms: int) -> str:
    """An epoch-milliseconds time in Iterable's date format (`2024-01-31 13:45:00 +00:00`)."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S +00:00")


def _parse_event(raw: Any, index: int, prefix: str, errors: dict[str, str]) -> _Event | None:
    """Check one TrackRequest's shape; each problem is added to `errors` under its path."""
    if type(raw) is not dict:
        errors[prefix.rstrip(".")] = "Object value expected"
        return None
    found = len(errors)
    name = raw.get("eventName")
    if name is None:
        errors[prefix + "eventName"] = "Missing required field"
    elif type(name) is not str or not name:
        errors[prefix + "eventName"] = "Non-empty string value expected"
    event_id = raw.get("id")
    if event_id is not None and (type(event_id) is not str or not event_id):
        errors[prefix + "id"] = "Non-empty string value expected"
    elif event_id is not None and len(event_id.encode()) > MAX_EVENT_ID_BYTES:
        errors[prefix + "id"] = f"String of at most {MAX_EVENT_ID_BYTES} bytes expected"
    integers: dict[str, int | None] = {}
    for key in _OPTIONAL_INTEGERS:
        value = raw.get(key)
        integers[key] = None if value is None else _integer(value)
        if value is not None and integers[key] is None:
            errors[prefix + key] = "Non-negative integer value expected"
    data = raw.get("dataFields")
    if data is not None and type(data) is not dict:
        errors[prefix + "dataFields"] = "Object value expected"
    create = raw.get("createNewFields")
    if create is not None and type(create) is not bool:
        errors[prefix + "createNewFields"] = "Boolean value expected"
    if len(errors) > found:
        return None
    created_at = integers["createdAt"]
    return _Event(
        index=index,
        name=str(name),  # checked above: a non-empty string
        raw_email=raw.get("email"),
        raw_user_id=raw.get("userId"),
        event_id=event_id,
        created_at=None if created_at is None else created_at * 1000 if created_at < _SECONDS_BELOW else created_at,
        data=data or {},
        campaign_id=integers["campaignId"],
        template_id=integers["templateId"],
        create_new_fields=create is not False,
    )


def parse_limit(text: str | None) -> int:
    """The `limit` query parameter of the event reads: 1 to 200, 30 when absent; 400 `BadParams` otherwise."""
    if text is None:
        return DEFAULT_EVENTS_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_EVENTS_LIMIT:
        raise ApiError(400, "BadParams", f"limit must be an integer from 1 to {MAX_EVENTS_LIMIT}, not {text!r}")
    return int(text)


def _record(event: StoredEvent, profile: Profile) -> dict[str, Any]:
    """A stored event as the event reads answer it."""
    record: dict[str, Any] = {
        "_id": event.event_id,
        "eventName": event.name,
        "eventType": "customEvent",
        "createdAt": iterable_time(event.created_at),
        "eventUpdatedAt": iterable_time(event.updated_at),
    }
    if profile.email is not None:
        record["email"] = profile.email
    if profile.user_id is not None:
        record["userId"] = profile.user_id
    record["dataFields"] = event.data
    if event.campaign_id is not None:
        record["campaignId"] = event.campaign_id
    if event.template_id is not None:
        record["templateId"] = event.template_id
    return record


def _mismatch_error(checkers: dict[str, FieldTypeChecker]) -> ApiError | None:
    mismatches = [(name, m) for name, checker in checkers.items() for m in checker.mismatches.values()]
    return type_mismatch_error(mismatches) if mismatches else None


class Events:
    """The custom events of a project. Use from the storage worker thread only."""

    def __init__(self, project: Project, disallowed_names: Iterable[str] = ()):
        self.project = project
        self.store = EventStore(project.store.connection)
        self.types = self.store.field_types()
        self.disallowed_names: set[str] = set(disallowed_names)

    # ---- writes

    def track(self, body: Any) -> tuple[str, dict[str, Any]]:
        """POST /api/events/track: the success message and params; raises `ApiError` (400) on failure."""
        errors: dict[str, str] = {}
        event = _parse_event(body, 0, "obj.", errors)
        if event is None:
            raise _bad_json(errors or {"obj": "Object value expected"})
        outcome = self._apply([event])
        if outcome.disallowed_count:
            return f"Event name '{event.name}' is disallowed from tracking", {}
        if outcome.failures:
            failure = outcome.failures[0]
            raise ApiError(400, failure.code, failure.msg)
        event_id = outcome.tracked_ids[0]
        return f"Event with id: {event_id} tracked.", {"id": event_id}

    def track_bulk(self, body: Any) -> dict[str, Any]:
        """POST /api/events/trackBulk: a `BulkTrackResponse`; raises `ApiError` when the whole request fails."""
        if type(body) is not dict or body.get("events") is None:
            raise ApiError(400, "BadParams", "Request body needs 'events', an array of events")
        if type(body["events"]) is not list:
            raise _bad_json({"obj.events": "Array value expected"})
        errors: dict[str, str] = {}
        parsed = [_parse_event(raw, i, f"obj.events[{i}].", errors) for i, raw in enumerate(body["events"])]
        if errors:
            raise _bad_json(errors)
        return self._apply([event for event in parsed if event is not None]).bulk_response()

    def _apply(self, events: list[_Event]) -> _Outcome:
        outcome = _Outcome()
        allowed: list[_Event] = []
        for event in events:
            if event.name in self.disallowed_names:
                outcome.disallowed_count += 1
                outcome.disallowed_names[event.name] = None
            else:
                allowed.append(event)
        checkers = self._check_types(allowed, outcome)
        project_type = self.project.project_type
        named = [name_user(project_type, event.raw_email, event.raw_user_id) for event in allowed]
        profiles, forgotten = load_named(self.project.store, (n for n in named if isinstance(n, NamedUser)))
        now = now_ms()
        new_users: dict[UserKey, Profile] = {}
        targets: list[tuple[_Event, UserKey]] = []
        for event, user in zip(allowed, named, strict=True):
            target = (
                forgotten_failure(user, forgotten) or self._target(user, profiles, new_users, now)
                if isinstance(user, NamedUser)
                else user
            )
            if isinstance(target, LookupFailure):
                outcome.failures.append(target)
            else:
                targets.append((event, target))
        if targets:
            self._write(targets, profiles, new_users, checkers, outcome, now)
        return outcome

    def _check_types(self, events: list[_Event], outcome: _Outcome) -> dict[str, FieldTypeChecker]:
        """Drop unknown fields where asked, then type-check each event's dataFields by event name."""
        checkers: dict[str, FieldTypeChecker] = {}
        for event in events:
            known = self.types.get(event.name, {})
            if not event.create_new_fields:
                event.data, dropped = drop_unknown(event.data, known)
                outcome.filtered_out_fields.update(dict.fromkeys(dropped))
            checker = checkers.get(event.name)
            if checker is None:
                checker = checkers[event.name] = FieldTypeChecker(known)
            found = checker.check(event.data)
            if found.bad_key is not None:
                raise ApiError(
                    400,
                    "BadParams",
                    f"events[{event.index}].dataFields has an invalid field name {found.bad_key!r}: names must be "
                    "non-empty and contain no '.'",
                )
            event.new_paths = found.new_paths
        error = _mismatch_error(checkers)
        if error is not None:
            raise error
        return checkers

    def _target(
        self, user: NamedUser, profiles: dict[UserKey, Profile], new_users: dict[UserKey, Profile], now: int
    ) -> UserKey | LookupFailure:
        """The key of the event's user, created when the rules allow it; or why there is none."""
        if user.key in profiles or user.key in new_users:
            return user.key
        if user.kind == "userId" and self.project.project_type == "email":
            failure = user.not_found()
            return LookupFailure(
                failure.reports, failure.code, f"{failure.msg}: email-based projects create users from events by email"
            )
        email, user_id = (user.value, None) if user.kind == "email" else (None, user.value)
        new_users[user.key] = Profile(None, email, user_id, {}, now)
        return user.key

    def _write(
        self,
        targets: list[tuple[_Event, UserKey]],
        profiles: dict[UserKey, Profile],
        new_users: dict[UserKey, Profile],
        checkers: dict[str, FieldTypeChecker],
        outcome: _Outcome,
        now: int,
    ) -> None:
        """Create the new users and store the events, in one transaction."""
        store = self.project.store
        resent = [e.event_id for e, _ in targets if e.event_id is not None and e.created_at is None]
        created_at = self.store.created_at_of(resent) if resent else {}
        new_types: dict[tuple[str, str], str] = {}
        stored: list[StoredEvent] = []
        with store.transaction():
            if new_users:
                store.write(list(new_users.values()), {}, now)
                # The new rows' ids, read back inside the transaction.
                emails = [p.email for p in new_users.values() if p.email is not None]
                user_ids = [p.user_id for p in new_users.values() if p.user_id is not None]
                profiles.update(index_profiles(store.profiles_for(emails, user_ids), set(emails), set(user_ids)))
            for event, key in targets:
                event_id = event.event_id or uuid.uuid4().hex
                when = event.created_at if event.created_at is not None else created_at.get(event_id, now)
                created_at[event_id] = when  # a later resend in this request keeps it too
                user_row = profiles[key].id
                assert user_row is not None
                stored.append(
                    StoredEvent(
                        event_id, user_row, event.name, when, now, event.data, event.campaign_id, event.template_id
                    )
                )
                for path in event.new_paths:
                    new_types.setdefault((event.name, path), checkers[event.name].request_types[path])
                    outcome.created_fields[path] = None
                outcome.tracked_ids.append(event_id)
            self.store.write(stored, new_types)
        outcome.success_count += len(stored)
        for (name, path), kind in new_types.items():
            self.types.setdefault(name, {})[path] = kind

    # ---- reads

    def of_email(self, email: str, limit: int) -> dict[str, Any]:
        """GET /api/events/{email}: a `GetEventsResponse`, most recent first; 400 for a malformed email."""
        if not is_valid_email(email):
            raise ApiError(400, "InvalidEmailAddressError", f"Invalid email: {email!r}")
        return self._events_of(self.project.store.by_email(normalize_email(email)), limit)

    def of_user_id(self, user_id: str, limit: int) -> dict[str, Any]:
        """GET /api/events/byUserId/{userId}: a `GetEventsResponse`, most recent first."""
        return self._events_of(self.project.store.by_user_id(user_id), limit)

    def _events_of(self, profile: Profile | None, limit: int) -> dict[str, Any]:
        if profile is None or profile.id is None:
            return {"events": []}
        return {"events": [_record(event, profile) for event in self.store.of_user(profile.id, limit)]}

    # ---- admin

    def count(self) -> int:
        """How many events are stored."""
        return self.store.count()

    def reset(self, disallowed_names: Iterable[str]) -> None:
        """Remove every event and event field type; the disallowed names become `disallowed_names`."""
        self.store.reset()
        self.types = {}
        self.disallowed_names = set(disallowed_names)
