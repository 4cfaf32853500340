"""How a request that does not update a profile's identity names its user (events, list unsubscribes).

Such a request sends an `email` and/or a `userId` ("Provide an email or a userId (but not both)",
says the contract). One of them names the user, by the project type:

- email-based: the `email`; a `userId` alone names the user having it;
- userID-based: the `userId`, required (emails identify no one there);
- hybrid: the `userId`, else the `email`.

The other identifier, when sent too, is validated and checked against the forgotten list but names
no one. Failures carry the failure lists of the contract's `FailedUserUpdates` / `FailedEventUpdates`
that report them and the error a single-user endpoint answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .envelope import ApiCode
from .identity import Profile, is_valid_email, is_valid_user_id, normalize_email
from .settings import ProjectType
from .store import Store

IdentifierKind = Literal["email", "userId"]
UserKey = tuple[IdentifierKind, str]


@dataclass(frozen=True)
class NamedUser:
    """The identifier that names a user, and every identifier sent (to check against the forgotten list)."""

    kind: IdentifierKind
    value: str  # emails normalized
    raw: str  # as sent
    emails: tuple[tuple[str, str], ...]  # (normalized, as sent)
    user_ids: tuple[str, ...]

    @property
    def key(self) -> UserKey:
        return (self.kind, self.value)

    def not_found(self) -> LookupFailure:
        """The failure of a request naming no existing user."""
        if self.kind == "email":
            return LookupFailure(
                (("notFoundEmails", self.raw),), "UnknownEmailError", f"No user has email {self.raw!r}"
            )
        return LookupFailure((("notFoundUserIds", self.raw),), "UnknownUserIdError", f"No user has userId {self.raw!r}")


@dataclass(frozen=True)
class LookupFailure:
    """Why a user could not be named: the (failure list, value) pairs to report, the single-user error."""

    reports: tuple[tuple[str, str], ...]
    code: ApiCode
    msg: str


def name_user(project_type: ProjectType, raw_email: Any, raw_user_id: Any) -> NamedUser | LookupFailure:
    """Validate the identifiers of one request item and pick the one that names its user."""
    reports: list[tuple[str, str]] = []
    if raw_email is not None and not is_valid_email(raw_email):
        reports.append(("invalidEmails", str(raw_email)))
    if raw_user_id is not None and not is_valid_user_id(raw_user_id):
        reports.append(("invalidUserIds", str(raw_user_id)))
    if reports:
        code: ApiCode = "InvalidEmailAddressError" if reports[0][0] == "invalidEmails" else "InvalidUserIdError"
        what = ", ".join(repr(value) for _, value in reports)
        return LookupFailure(tuple(reports), code, f"Invalid email or userId: {what}")
    user_ids = (raw_user_id,) if raw_user_id is not None else ()
    if project_type == "userid":
        if raw_user_id is None:
            return LookupFailure(
                (("invalidUserIds", ""),), "BadParams", "This project is userID-based: send the user's userId"
            )
        # Emails identify no one in userID-based projects, and are never forgotten there.
        return NamedUser("userId", raw_user_id, raw_user_id, (), user_ids)
    emails = ((normalize_email(raw_email), raw_email),) if raw_email is not None else ()
    if raw_user_id is not None and (project_type == "hybrid" or raw_email is None):
        return NamedUser("userId", raw_user_id, raw_user_id, emails, user_ids)
    if raw_email is not None:
        return NamedUser("email", normalize_email(raw_email), raw_email, emails, user_ids)
    return LookupFailure((("invalidEmails", ""),), "BadParams", "Send the user's email or userId")


def forgotten_failure(named: NamedUser, forgotten: tuple[set[str], set[str]]) -> LookupFailure | None:
    """A failure when any identifier the request sent belongs to a forgotten user."""
    emails, user_ids = forgotten
    reports = [("forgottenEmails", raw) for email, raw in named.emails if email in emails]
    reports += [("forgottenUserIds", user_id) for user_id in named.user_ids if user_id in user_ids]
    if not reports:
        return None
    return LookupFailure(
        tuple(reports), "ForgottenUserError", "User has been forgotten (GDPR): no data is collected about them"
    )


def load_named(store: Store, named: Iterable[NamedUser]) -> tuple[dict[UserKey, Profile], tuple[set[str], set[str]]]:
    """The stored users these name, by key, and which of the identifiers sent are forgotten."""
    named = list(named)
    emails = {n.value for n in named if n.kind == "email"}
    user_ids = {n.value for n in named if n.kind == "userId"}
    profiles = index_profiles(store.profiles_for(emails, user_ids), emails, user_ids)
    forgotten = store.forgotten_among((e for n in named for e, _ in n.emails), (u for n in named for u in n.user_ids))
    return profiles, forgotten


def index_profiles(profiles: Iterable[Profile], emails: set[str], user_ids: set[str]) -> dict[UserKey, Profile]:
    """Profiles by the keys among `emails` and `user_ids` that name them."""
    index: dict[UserKey, Profile] = {}
    for profile in profiles:
        if profile.email is not None and profile.email in emails:
            index[("email", profile.email)] = profile
        if profile.user_id is not None and profile.user_id in user_ids:
            index[("userId", profile.user_id)] = profile
    return index
