"""The user operations of one sandbox project: Iterable's rules over the store.

Every method runs on the storage worker thread (it does blocking SQLite work) and takes and returns
plain JSON-ready values; errors are raised as `ApiError`. An update request is applied in phases:

1. `createNewFields: false` drops fields the project does not know yet (`filteredOutFields`);
2. every user's dataFields are type-checked; any mismatch rejects the whole request, nothing applied;
3. each user is validated and resolved to a profile (identity rules of the project type), forgotten
   users are refused, and the update is merged into the profile, in request order;
4. changed profiles and the types of new fields are written in one transaction.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from .envelope import ApiError, type_mismatch_error
from .fields import EntryFields, FieldTypeChecker, drop_unknown, system_fields, system_list_fields
from .identity import (
    IDENTITY_KEYS,
    Failure,
    Profile,
    Reason,
    UserEntry,
    check_forgotten,
    is_valid_email,
    is_valid_user_id,
    normalize_email,
    parse_entry,
    resolve,
)
from .settings import ProjectType
from .store import Store

FAILED_UPDATE_LISTS = (
    "conflictEmails",
    "conflictUserIds",
    "forgottenEmails",
    "forgottenUserIds",
    "invalidDataEmails",
    "invalidDataUserIds",
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
)


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return int(time.time() * 1000)


class _BatchDirectory:
    """The profiles one request may touch, indexed by email and userId, kept current as it applies."""

    def __init__(self, profiles: Iterable[Profile], index_emails: bool):
        self._index_emails = index_emails
        self._by_email: dict[str, Profile] = {}
        self._by_user_id: dict[str, Profile] = {}
        for profile in profiles:
            self._index(profile)

    def by_email(self, email: str) -> Profile | None:
        return self._by_email.get(email)

    def by_user_id(self, user_id: str) -> Profile | None:
        return self._by_user_id.get(user_id)

    def _index(self, profile: Profile) -> None:
        if self._index_emails and profile.email is not None:
            self._by_email[profile.email] = profile
        if profile.user_id is not None:
            self._by_user_id[profile.user_id] = profile

    def set_identity(self, profile: Profile, email: str | None, user_id: str | None) -> None:
        """Give a profile new identifiers, re-indexing it."""
        if profile.email is not None and self._by_email.get(profile.email) is profile:
            del self._by_email[profile.email]
        if profile.user_id is not None and self._by_user_id.get(profile.user_id) is profile:
            del self._by_user_id[profile.user_id]
        profile.email, profile.user_id = email, user_id
        self._index(profile)


@dataclass
class _Forgotten:
    emails: set[str]
    user_ids: set[str]

    def email_forgotten(self, email: str) -> bool:
        return email in self.emails

    def user_id_forgotten(self, user_id: str) -> bool:
        return user_id in self.user_ids


@dataclass
class _FailedUser:
    failure: Failure
    raw_email: str | None
    raw_user_id: str | None


@dataclass
class UpdateOutcome:
    """What an update request did."""

    success_count: int = 0
    failed: list[_FailedUser] = field(default_factory=list)
    created_fields: list[str] = field(default_factory=list)
    filtered_out_fields: list[str] = field(default_factory=list)

    def bulk_response(self) -> dict[str, Any]:
        """The contract's `UserBulkUpdateListResponse` for this outcome."""
        lists: dict[str, dict[str, None]] = {name: {} for name in FAILED_UPDATE_LISTS}
        failed_emails: dict[str, None] = {}
        failed_user_ids: dict[str, None] = {}
        for failed in self.failed:
            for name, value in failed.failure.reports:
                lists[name][value] = None
            # The deprecated top-level lists name every user that failed, whatever the reason.
            emails = (
                [failed.raw_email]
                if failed.raw_email is not None
                else [v for n, v in failed.failure.reports if n.endswith("Emails")]
            )
            user_ids = (
                [failed.raw_user_id]
                if failed.raw_user_id is not None
                else [v for n, v in failed.failure.reports if n.endswith("UserIds")]
            )
            failed_emails.update(dict.fromkeys(emails))
            failed_user_ids.update(dict.fromkeys(user_ids))
        return {
            "successCount": self.success_count,
            "failCount": len(self.failed),
            "invalidEmails": list(failed_emails),
            "invalidUserIds": list(failed_user_ids),
            "failedUpdates": {name: list(values) for name, values in lists.items()},
            "createdFields": self.created_fields,
            "filteredOutFields": self.filtered_out_fields,
        }


def _raw_identifier(value: Any) -> str | None:
    return None if value is None else value if type(value) is str else str(value)


def _merge(data: dict[str, Any], updates: dict[str, Any], merge_nested: bool) -> None:
    """Merge top-level fields; with `merge_nested`, top-level objects are merged one level deep."""
    if not merge_nested:
        data.update(updates)
        return
    for key, value in updates.items():
        old = data.get(key)
        data[key] = {**old, **value} if type(value) is dict and type(old) is dict else value


def _user_response(profile: Profile | None) -> dict[str, Any]:
    """The contract's `UserResponse`: `{}` for no user; `email` is required, so "" when the user has none."""
    if profile is None:
        return {}
    user: dict[str, Any] = {"email": profile.email or ""}
    if profile.user_id is not None:
        user["userId"] = profile.user_id
    user["dataFields"] = profile.data
    return {"user": user}


def _require_valid_email(email: Any) -> None:
    if not is_valid_email(email):
        raise ApiError(400, "InvalidEmailAddressError", f"Invalid email: {email!r}")


def _sha256(value: str) -> str:
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()


class Project:
    """One Iterable project backed by a `Store`. Use from the storage worker thread only."""

    def __init__(self, store: Store, project_type: ProjectType):
        self.store = store
        self.project_type = project_type
        self._system_fields: dict[str, str] = dict(system_fields(project_type))
        self._list_fields = system_list_fields(project_type)
        # Every typed path: the stored data fields and the system fields, whose types are Iterable's
        # and win over a data field of the same name stored by an older sandbox.
        self.fields: dict[str, str] = {**store.fields(), **self._system_fields}

    # ---- updates

    def bulk_update(self, body: Any) -> dict[str, Any]:
        """POST /api/users/bulkUpdate: returns a `UserBulkUpdateListResponse`."""
        if type(body) is not dict or type(body.get("users")) is not list:
            raise ApiError(400, "BadParams", "Request body needs 'users', an array of user objects")
        users = body["users"]
        for index, user in enumerate(users):
            if type(user) is not dict:
                raise ApiError(400, "BadParams", f"users[{index}] must be an object")
        outcome = self._apply(users, create_new_fields=body.get("createNewFields") is not False)
        return outcome.bulk_response()

    def update(self, body: Any) -> str:
        """POST /api/users/update: returns the success message, raises `ApiError` on failure."""
        if type(body) is not dict:
            raise ApiError(400, "BadParams", "Request body must be a user object")
        outcome = self._apply([body], create_new_fields=body.get("createNewFields") is not False)
        if outcome.failed:
            failure = outcome.failed[0].failure
            raise ApiError(failure.reason.status, failure.reason.code, failure.msg)
        return "User updated"

    def update_email(self, body: Any) -> str:
        """POST /api/users/updateEmail: the user named by `currentEmail` or `currentUserId` gets `newEmail`.

        `currentEmail` takes precedence when both are given, except in userID-based projects, where
        emails identify no one and `currentUserId` is required. Errors, in the order checked:
        400 `BadParams` (body not an object, no `newEmail`), 400 `InvalidEmailAddressError` (malformed
        `newEmail`), 400 `BadParams` (no usable current identifier), 400 `InvalidEmailAddressError` /
        `InvalidUserIdError` (malformed current identifier), 409 `ForgottenUserError` (the current
        identifier was forgotten), 400 `BadParams` (no such user: Iterable's answer), 409
        `EmailAlreadyExists` (the new email is forgotten or belongs to another user; emails are not
        unique in userID-based projects, so neither applies there). The profile keeps its userId and
        dataFields; the old email no longer finds it. Returns the success message.
        """
        by, named, new_email = self._update_email_request(body)
        new = normalize_email(new_email)
        change = f"Cannot change user {named!r} to {new_email!r}"
        if by == "email":
            current = normalize_email(named)
            forgotten_emails, _ = self.store.forgotten_among([current, new], [])
            profile = self.store.by_email(current)
            current_forgotten = current in forgotten_emails
        else:
            forgotten_emails, forgotten_user_ids = self.store.forgotten_among([new], [named])
            profile = self.store.by_user_id(named)
            current_forgotten = named in forgotten_user_ids
        if current_forgotten:
            raise ApiError(409, "ForgottenUserError", f"{change}: the user has been forgotten (GDPR)")
        if profile is None:
            raise ApiError(400, "BadParams", f"{change}: user does not exist")
        if self.project_type != "userid":
            # Iterable answers a forgotten new email with EmailAlreadyExists too.
            if new in forgotten_emails:
                raise ApiError(409, "EmailAlreadyExists", f"{change}: new email is on the forgotten list")
            owner = self.store.by_email(new)
            if owner is not None and owner.id != profile.id:
                raise ApiError(409, "EmailAlreadyExists", f"{change}: new email already exists")
        if profile.email != new:
            profile.email = new
            self.store.write([profile], {}, now_ms())
        return "User email updated"

    def _update_email_request(self, body: Any) -> tuple[Literal["email", "userId"], str, str]:
        """How an updateEmail request names its user ("email" or "userId", the value) and its new email."""
        if type(body) is not dict:
            raise ApiError(400, "BadParams", "Request body must be an object with newEmail and a current identifier")
        current_email, current_user_id = body.get("currentEmail"), body.get("currentUserId")
        new_email = body.get("newEmail")
        if new_email is None:
            raise ApiError(400, "BadParams", "Missing required field 'newEmail'")
        _require_valid_email(new_email)
        if self.project_type != "userid" and current_email is not None:
            _require_valid_email(current_email)
            return "email", current_email, new_email
        if current_user_id is None:
            if self.project_type == "userid":
                raise ApiError(400, "BadParams", "userID-based projects identify users by userId: send currentUserId")
            raise ApiError(400, "BadParams", "Send currentEmail or currentUserId to name the user")
        if not is_valid_user_id(current_user_id):
            raise ApiError(400, "InvalidUserIdError", f"Invalid userId: {current_user_id!r}")
        return "userId", current_user_id, new_email

    def update_users(
        self,
        users: list[dict[str, Any]],
        create_new_fields: bool,
        adjust: Callable[[Profile], None] | None = None,
        create: bool = True,
    ) -> UpdateOutcome:
        """Apply user objects as bulkUpdate does (same identity rules, types, failures), in one transaction.

        `adjust` is called with each profile an update applied to, after its dataFields were merged
        (list subscriptions use it). With `create` False, a user that does not exist yet is not
        created: it fails with its identifier in `notFoundEmails` / `notFoundUserIds`.
        """
        return self._apply(users, create_new_fields, adjust, create)

    def _apply(
        self,
        users: list[dict[str, Any]],
        create_new_fields: bool,
        adjust: Callable[[Profile], None] | None = None,
        create: bool = True,
    ) -> UpdateOutcome:
        outcome = UpdateOutcome()
        if not create_new_fields:
            users = self._drop_new_fields(users, outcome)
        checker = FieldTypeChecker(self.fields, self._list_fields)
        entry_fields: list[EntryFields | None] = [
            checker.check(u["dataFields"], IDENTITY_KEYS) if type(u.get("dataFields")) is dict else None for u in users
        ]
        if checker.mismatches:
            raise type_mismatch_error([(None, m) for m in checker.mismatches.values()])

        entries: list[UserEntry | Failure] = []
        for user, found in zip(users, entry_fields, strict=True):
            entry = parse_entry(user)
            if isinstance(entry, UserEntry) and found is not None and found.bad_key is not None:
                entry = Failure(
                    Reason.INVALID_DATA,
                    (entry.report_key("invalidData"),),
                    f"Invalid field name {found.bad_key!r}: names must be non-empty and contain no '.'",
                )
            entries.append(entry)

        directory, forgotten = self._load_for(e for e in entries if isinstance(e, UserEntry))
        now = now_ms()
        touched: dict[int, Profile] = {}
        new_fields: dict[str, str] = {}
        for user, entry, found in zip(users, entries, entry_fields, strict=True):
            failure = (
                check_forgotten(entry, forgotten) or self._apply_one(entry, directory, touched, now, adjust, create)
                if isinstance(entry, UserEntry)
                else entry
            )
            if failure is not None:
                outcome.failed.append(
                    _FailedUser(failure, _raw_identifier(user.get("email")), _raw_identifier(user.get("userId")))
                )
                continue
            outcome.success_count += 1
            if found is not None:
                for path in found.new_paths:
                    new_fields.setdefault(path, checker.request_types[path])

        if touched or new_fields:
            self.store.write(list(touched.values()), new_fields, now)
            self.fields.update(new_fields)
        outcome.created_fields = list(new_fields)
        return outcome

    def _drop_new_fields(self, users: list[dict[str, Any]], outcome: UpdateOutcome) -> list[dict[str, Any]]:
        dropped: dict[str, None] = {}
        kept_users = []
        for user in users:
            data = user.get("dataFields")
            if type(data) is dict:
                data, paths = drop_unknown(data, self.fields, keep=IDENTITY_KEYS)
                dropped.update(dict.fromkeys(paths))
                user = {**user, "dataFields": data}
            kept_users.append(user)
        outcome.filtered_out_fields = list(dropped)
        return kept_users

    def _load_for(self, entries: Iterable[UserEntry]) -> tuple[_BatchDirectory, _Forgotten]:
        emails: set[str] = set()
        user_ids: set[str] = set()
        for entry in entries:
            for email in (entry.email, entry.new_email):
                if email is not None:
                    emails.add(email)
            for user_id in (entry.user_id, entry.new_user_id):
                if user_id is not None:
                    user_ids.add(user_id)
        index_emails = self.project_type != "userid"
        # In userID-based projects emails never identify anyone: no need to load by email.
        profiles = self.store.profiles_for(emails if index_emails else (), user_ids)
        forgotten = _Forgotten(*self.store.forgotten_among(emails, user_ids))
        return _BatchDirectory(profiles, index_emails), forgotten

    def _apply_one(
        self,
        entry: UserEntry,
        directory: _BatchDirectory,
        touched: dict[int, Profile],
        now: int,
        adjust: Callable[[Profile], None] | None = None,
        create: bool = True,
    ) -> Failure | None:
        resolution = resolve(self.project_type, entry, directory)
        if isinstance(resolution, Failure):
            return resolution
        profile = resolution.target
        if profile is None:
            if not create:
                # Named by the identifier looked up first: the userId where the project has one.
                if entry.raw_user_id is not None:
                    return Failure(Reason.UNKNOWN_USER_ID, (("notFoundUserIds", entry.raw_user_id),), "No such user")
                return Failure(Reason.UNKNOWN_EMAIL, (("notFoundEmails", entry.raw_email or ""),), "No such user")
            profile = Profile(None, None, None, {}, now)
        if profile.email != resolution.email or profile.user_id != resolution.user_id:
            directory.set_identity(profile, resolution.email, resolution.user_id)
        _merge(profile.data, entry.data, entry.merge_nested)
        if adjust is not None:
            adjust(profile)
        touched[id(profile)] = profile
        return None

    # ---- reads

    def get_by_email(self, email: str) -> dict[str, Any]:
        """A `UserResponse` for an email (`{}` when no user has it); 400 for a malformed email."""
        _require_valid_email(email)
        return _user_response(self.store.by_email(normalize_email(email)))

    def get_by_user_id(self, user_id: str) -> dict[str, Any]:
        """A `UserResponse` for a userId (`{}` when no user has it)."""
        return _user_response(self.store.by_user_id(user_id))

    def get_fields(self) -> dict[str, Any]:
        """A `GetUserFieldsResponse`: every field path with its type, system fields included."""
        return {"fields": dict(sorted(self.fields.items()))}

    # ---- deletion and GDPR

    def delete_by_email(self, email: str) -> str:
        """DELETE /api/users/{email}; not available in userID-based projects."""
        if self.project_type == "userid":
            raise ApiError(400, "BadParams", "Users of a userID-based project cannot be deleted by email")
        _require_valid_email(email)
        profile = self.store.by_email(normalize_email(email))
        if profile is None or profile.id is None:
            raise ApiError(400, "UnknownEmailError", f"No user has email {email!r}")
        self.store.delete_users([profile.id])
        return "User deleted"

    def delete_by_user_id(self, user_id: str) -> str:
        """DELETE /api/users/byUserId/{userId}."""
        profile = self.store.by_user_id(user_id)
        if profile is None or profile.id is None:
            raise ApiError(400, "UnknownUserIdError", f"No user has userId {user_id!r}")
        self.store.delete_users([profile.id])
        return "User deleted"

    def _gdpr_identifier(self, body: Any, action: str) -> tuple[str | None, str | None]:
        """The (email, userId) a forget/unforget request names, checked against the project type."""
        if type(body) is not dict:
            raise ApiError(400, "BadParams", "Request body must be an object with email or userId")
        email, user_id = body.get("email"), body.get("userId")
        if self.project_type == "email":
            if email is None:
                raise ApiError(400, "BadParams", f"In email-based projects, {action} users by email")
            user_id = None
        elif self.project_type == "userid":
            if user_id is None:
                raise ApiError(400, "BadParams", f"In userID-based projects, {action} users by userId")
            email = None
        elif email is None and user_id is None:
            raise ApiError(400, "BadParams", f"Provide an email or a userId to {action}")
        if email is not None and not is_valid_email(email):
            raise ApiError(400, "InvalidEmailAddressError", f"Invalid email: {email!r}")
        if user_id is not None and not is_valid_user_id(user_id):
            raise ApiError(400, "InvalidUserIdError", f"Invalid userId: {user_id!r}")
        return (normalize_email(email) if email is not None else None), user_id

    def forget(self, body: Any) -> str:
        """POST /api/users/forget: delete the user and refuse future updates of its identifiers."""
        email, user_id = self._gdpr_identifier(body, "forget")
        profiles = []
        if email is not None and (found := self.store.by_email(email)) is not None:
            profiles.append(found)
        if user_id is not None and (found := self.store.by_user_id(user_id)) is not None:
            profiles.append(found)
        emails = {p.email for p in profiles if p.email is not None} | ({email} if email else set())
        user_ids = {p.user_id for p in profiles if p.user_id is not None} | ({user_id} if user_id else set())
        if self.project_type == "userid":
            emails = set()  # emails are not identifiers there, and may be shared by other users
        self.store.forget([p.id for p in profiles if p.id is not None], emails, user_ids, now_ms())
        return "User forgotten"

    def unforget(self, body: Any) -> str:
        """POST /api/users/unforget: accept updates of a forgotten user's identifiers again."""
        email, user_id = self._gdpr_identifier(body, "unforget")
        if email is not None:
            self.store.unforget("email", email)
        if user_id is not None:
            self.store.unforget("userId", user_id)
        return "User unforgotten"

    def forgotten_hashes(self, kind: str) -> dict[str, Any]:
        """GET /api/users/forgotten (kind "email") or /forgottenUserIds (kind "userId")."""
        if kind == "email":
            if self.project_type == "userid":
                raise ApiError(400, "BadParams", "userID-based projects have no forgotten emails")
            return {"hashedEmails": [_sha256(v) for v in self.store.forgotten_values("email")]}
        if self.project_type == "email":
            raise ApiError(400, "BadParams", "email-based projects have no forgotten userIds")
        return {"hashedUserIds": [_sha256(v) for v in self.store.forgotten_values("userId")]}

    # ---- admin

    def list_users(self, after: int, limit: int) -> dict[str, Any]:
        """A page of stored users for the admin API."""
        users = self.store.list_users(after, limit)
        next_after = users[-1]["id"] if len(users) == limit else None
        return {"users": users, "total": self.store.counts()["users"], "next_after": next_after}

    def counts(self) -> dict[str, int]:
        """How many users, fields and forgotten identifiers the project has."""
        return self.store.counts()

    def reset(self) -> None:
        """Remove every user, data field type and forgotten identifier (the system fields stay)."""
        self.store.reset()
        self.fields = dict(self._system_fields)
