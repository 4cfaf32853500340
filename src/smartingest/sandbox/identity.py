"""Who a user update is about: identifier validation and the identity rules of each project type.

Project types (as Iterable defines them):

- `email` (email-based): `email` identifies a user. `userId` is an optional attribute, kept unique by
  the sandbox. A request with an email updates (or creates) that email's user and, when it also carries
  a userId, sets that userId on it. A request with only a userId updates the user having it; when none
  has it, the user is created only with `preferUserId: true`, with a placeholder email
  `<32 hex>@placeholder.email`; otherwise the update fails (reported in `invalidUserIds`).
- `userid` (userID-based): `userId` is required and identifies a user; `email` is a plain, non-unique
  attribute that the request sets.
- `hybrid`: either identifies, both are unique. The userId is looked up first, then the email; the
  user found takes the request's other identifier. A user found by email that already has a different
  userId is not renamed: that is a conflict on the email.

In every type, `dataFields.email` / `dataFields.userId` change the identified user's email / userId
(Iterable's documented way to update identifiers). Whenever the email and the userId of a request
belong to two different existing users, or a new identifier belongs to another user, the update fails
as a conflict, reported with the existing values (`conflictEmails` / `conflictUserIds`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from .envelope import ApiCode
from .settings import ProjectType

MAX_USER_ID_LENGTH = 52  # Iterable's published maximum length of a userId
MAX_EMAIL_LENGTH = 254
PLACEHOLDER_DOMAIN = "placeholder.email"

_LOCAL_CHARS = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL_RE = re.compile(
    rf"{_LOCAL_CHARS}(?:\.{_LOCAL_CHARS})*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def is_valid_email(value: Any) -> bool:
    """Whether `value` is a plausible email address (ASCII, `local@domain.tld`, no spaces)."""
    if type(value) is not str or len(value) > MAX_EMAIL_LENGTH:
        return False
    if _EMAIL_RE.fullmatch(value) is None:
        return False
    return value.index("@") <= 64


def normalize_email(email: str) -> str:
    """The stored form of an email: lower-cased (Iterable matches emails case-insensitively)."""
    return email.lower()


def is_valid_user_id(value: Any) -> bool:
    """Whether `value` is a valid userId: 1 to 52 printable ASCII characters, no trailing space."""
    if type(value) is not str or not 0 < len(value) <= MAX_USER_ID_LENGTH:
        return False
    return value.isascii() and value.isprintable() and not value.endswith(" ")


def placeholder_email() -> str:
    """A new placeholder email, as Iterable assigns to users created by userId in email projects."""
    return f"{uuid.uuid4().hex}@{PLACEHOLDER_DOMAIN}"


class Reason(Enum):
    """Why one user's update failed; decides its error status and code in a single-user update.

    Values are (name, HTTP status, envelope code); the name keeps two reasons with the same status
    and code distinct members.
    """

    INVALID_EMAIL = ("invalid-email", 400, "InvalidEmailAddressError")
    INVALID_USER_ID = ("invalid-user-id", 400, "InvalidUserIdError")
    MISSING_IDENTIFIER = ("missing-identifier", 400, "BadParams")
    UNKNOWN_USER_ID = ("unknown-user-id", 400, "UnknownUserIdError")
    UNKNOWN_EMAIL = ("unknown-email", 400, "UnknownEmailError")
    FORGOTTEN = ("forgotten", 409, "ForgottenUserError")
    EMAIL_CONFLICT = ("email-conflict", 409, "EmailAlreadyExists")
    USER_ID_CONFLICT = ("user-id-conflict", 409, "UserIdAlreadyExists")
    INVALID_DATA = ("invalid-data", 400, "BadParams")

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def code(self) -> ApiCode:
        return self.value[2]


@dataclass(frozen=True)
class Failure:
    """A failed user update: its reason, the (failure list, value) pairs to report, a message."""

    reason: Reason
    reports: tuple[tuple[str, str], ...]
    msg: str


@dataclass(eq=False)
class Profile:
    """A stored user profile as the update logic sees it (`id` None: not stored yet)."""

    id: int | None
    email: str | None
    user_id: str | None
    data: dict[str, Any]
    created_at: int
    stored_email: str | None = None
    stored_user_id: str | None = None

    @property
    def identity_changed(self) -> bool:
        """Whether a stored profile's email or userId differs from what the database holds."""
        return self.id is not None and (self.email != self.stored_email or self.user_id != self.stored_user_id)


@dataclass(slots=True)
class UserEntry:
    """One user of an update request, validated. Emails are normalized; `raw_*` are as sent."""

    raw_email: str | None
    raw_user_id: str | None
    email: str | None
    user_id: str | None
    new_email: str | None = None
    new_user_id: str | None = None
    raw_new_email: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    prefer_user_id: bool = False
    merge_nested: bool = False

    def report_key(self, kind: str) -> tuple[str, str]:
        """The (list, value) that names this user in a failure list of `kind` ("invalidData"...)."""
        if self.raw_email is not None:
            return f"{kind}Emails", self.raw_email
        return f"{kind}UserIds", self.raw_user_id or ""


@dataclass(frozen=True)
class Resolution:
    """The user an update applies to (`target` None: create one) and its identifiers afterwards."""

    target: Profile | None
    email: str | None
    user_id: str | None


class Directory(Protocol):
    """Lookups of the profiles an update may touch."""

    def by_email(self, email: str) -> Profile | None: ...

    def by_user_id(self, user_id: str) -> Profile | None: ...


class Forgotten(Protocol):
    """Lookups of GDPR-forgotten identifiers."""

    def email_forgotten(self, email: str) -> bool: ...

    def user_id_forgotten(self, user_id: str) -> bool: ...


IDENTITY_KEYS = frozenset({"email", "userId"})


def parse_entry(raw: dict[str, Any]) -> UserEntry | Failure:
    """Validate the identifiers and dataFields of one user object of a request."""
    raw_email, raw_user_id = raw.get("email"), raw.get("userId")
    data = raw.get("dataFields")
    reports: list[tuple[str, str]] = []
    if raw_email is not None and not is_valid_email(raw_email):
        reports.append(("invalidEmails", str(raw_email)))
    if raw_user_id is not None and not is_valid_user_id(raw_user_id):
        reports.append(("invalidUserIds", str(raw_user_id)))
    new_email = new_user_id = None
    if type(data) is dict:
        new_email, new_user_id = data.get("email"), data.get("userId")
        if new_email is not None and not is_valid_email(new_email):
            reports.append(("invalidEmails", str(new_email)))
        if new_user_id is not None and not is_valid_user_id(new_user_id):
            reports.append(("invalidUserIds", str(new_user_id)))
    if reports:
        email_bad = any(name == "invalidEmails" for name, _ in reports)
        reason = Reason.INVALID_EMAIL if email_bad else Reason.INVALID_USER_ID
        what = ", ".join(f"{value!r}" for _, value in reports)
        return Failure(reason, tuple(reports), f"Invalid email or userId: {what}")
    entry = UserEntry(
        raw_email=raw_email,
        raw_user_id=raw_user_id,
        email=normalize_email(raw_email) if raw_email is not None else None,
        user_id=raw_user_id,
        new_email=normalize_email(new_email) if new_email is not None else None,
        new_user_id=new_user_id,
        raw_new_email=new_email,
        prefer_user_id=raw.get("preferUserId") is True,
        merge_nested=raw.get("mergeNestedObjects") is True,
    )
    if data is not None and type(data) is not dict:
        return Failure(Reason.INVALID_DATA, (entry.report_key("invalidData"),), "dataFields must be an object")
    if data:
        has_identity = "email" in data or "userId" in data
        entry.data = {k: v for k, v in data.items() if k not in IDENTITY_KEYS} if has_identity else data
    return entry


def check_forgotten(entry: UserEntry, forgotten: Forgotten) -> Failure | None:
    """A failure when any identifier of the entry belongs to a forgotten user."""
    reports: list[tuple[str, str]] = []
    for email, raw in ((entry.email, entry.raw_email), (entry.new_email, entry.raw_new_email)):
        if email is not None and forgotten.email_forgotten(email):
            reports.append(("forgottenEmails", raw or email))
    for user_id in (entry.user_id, entry.new_user_id):
        if user_id is not None and forgotten.user_id_forgotten(user_id):
            reports.append(("forgottenUserIds", user_id))
    if not reports:
        return None
    return Failure(Reason.FORGOTTEN, tuple(reports), "User has been forgotten (GDPR) and cannot be updated")


def resolve(project_type: ProjectType, entry: UserEntry, directory: Directory) -> Resolution | Failure:
    """Find the user an entry updates and its identifiers afterwards, by the project type's rules."""
    if project_type == "email":
        found = _resolve_email_project(entry, directory)
    elif project_type == "userid":
        found = _resolve_userid_project(entry, directory)
    else:
        found = _resolve_hybrid_project(entry, directory)
    if isinstance(found, Failure):
        return found
    email = entry.new_email if entry.new_email is not None else found.email
    user_id = entry.new_user_id if entry.new_user_id is not None else found.user_id
    resolution = Resolution(found.target, email, user_id)
    return _check_unique(project_type, entry, resolution, directory) or resolution


def _missing(project_type: ProjectType) -> Failure:
    if project_type == "userid":
        return Failure(
            Reason.MISSING_IDENTIFIER,
            (("invalidUserIds", ""),),
            "This project is userID-based: each user needs a userId",
        )
    return Failure(Reason.MISSING_IDENTIFIER, (("invalidEmails", ""),), "Each user needs an email or a userId")


def _two_users(entry: UserEntry, directory: Directory) -> Failure | None:
    """A conflict when the request's email and userId belong to two different existing users."""
    if entry.email is None or entry.user_id is None:
        return None
    by_email, by_user_id = directory.by_email(entry.email), directory.by_user_id(entry.user_id)
    if by_email is None or by_user_id is None or by_email is by_user_id:
        return None
    return Failure(
        Reason.EMAIL_CONFLICT,
        (("conflictEmails", entry.raw_email or entry.email), ("conflictUserIds", entry.user_id)),
        f"Email {entry.raw_email!r} and userId {entry.user_id!r} belong to two different users",
    )


def _resolve_email_project(entry: UserEntry, directory: Directory) -> Resolution | Failure:
    conflict = _two_users(entry, directory)
    if conflict is not None:
        return Failure(Reason.USER_ID_CONFLICT, conflict.reports, conflict.msg)
    if entry.email is not None:
        target = directory.by_email(entry.email)
        user_id = entry.user_id if entry.user_id is not None else (target.user_id if target else None)
        return Resolution(target, entry.email, user_id)
    if entry.user_id is None:
        return _missing("email")
    target = directory.by_user_id(entry.user_id)
    if target is not None:
        return Resolution(target, target.email, target.user_id)
    if not entry.prefer_user_id:
        return Failure(
            Reason.UNKNOWN_USER_ID,
            (("invalidUserIds", entry.user_id),),
            f"No user has userId {entry.user_id!r}; set preferUserId to create one in an email-based project",
        )
    return Resolution(None, placeholder_email(), entry.user_id)


def _resolve_userid_project(entry: UserEntry, directory: Directory) -> Resolution | Failure:
    if entry.user_id is None:
        return _missing("userid")
    target = directory.by_user_id(entry.user_id)
    email = entry.email if entry.email is not None else (target.email if target else None)
    return Resolution(target, email, entry.user_id)


def _resolve_hybrid_project(entry: UserEntry, directory: Directory) -> Resolution | Failure:
    conflict = _two_users(entry, directory)
    if conflict is not None:
        return conflict
    if entry.email is None and entry.user_id is None:
        return _missing("hybrid")
    target = directory.by_user_id(entry.user_id) if entry.user_id is not None else None
    if target is None and entry.email is not None:
        target = directory.by_email(entry.email)
        if target is not None and entry.user_id is not None and target.user_id not in (None, entry.user_id):
            return Failure(
                Reason.EMAIL_CONFLICT,
                (("conflictEmails", entry.raw_email or entry.email),),
                f"Email {entry.raw_email!r} belongs to a user with another userId",
            )
    email = entry.email if entry.email is not None else (target.email if target else None)
    user_id = entry.user_id if entry.user_id is not None else (target.user_id if target else None)
    return Resolution(target, email, user_id)


def _check_unique(
    project_type: ProjectType, entry: UserEntry, resolution: Resolution, directory: Directory
) -> Failure | None:
    """A conflict when the resolved identifiers already belong to another user."""
    target, reports = resolution.target, []
    if project_type != "userid" and resolution.email is not None:
        owner = directory.by_email(resolution.email)
        if owner is not None and owner is not target:
            reports.append(("conflictEmails", _raw_email_for(entry, resolution.email)))
    if resolution.user_id is not None:
        owner = directory.by_user_id(resolution.user_id)
        if owner is not None and owner is not target:
            reports.append(("conflictUserIds", resolution.user_id))
    if not reports:
        return None
    reason = Reason.EMAIL_CONFLICT if reports[0][0] == "conflictEmails" else Reason.USER_ID_CONFLICT
    values = ", ".join(repr(value) for _, value in reports)
    return Failure(reason, tuple(reports), f"Already used by another user: {values}")


def _raw_email_for(entry: UserEntry, email: str) -> str:
    if entry.new_email == email and entry.raw_new_email is not None:
        return entry.raw_new_email
    return entry.raw_email if entry.raw_email is not None else email
