"""Static lists of one sandbox project: create, read and delete lists, subscribe and unsubscribe users.

Runs on the storage worker thread, like `Project`. The rules, as the contract states them or as the
sandbox decides where it is silent (docs/sandbox.md):

- A user's subscriptions are its static-list field (`emailListIds` in email-based projects,
  `userListIds` in the others), a list of list ids on the profile: subscribe adds the list's id,
  unsubscribe removes it, deleting a list removes it from every member, and `getUsers` / `size`
  read who has it.
- `subscribe` is a bulk user update of its `subscribers` (`OptionalApiUser`: identity rules,
  dataFields and their types, failures, as `users/bulkUpdate`), each applied user also joining the
  list; it answers `UserBulkUpdateListResponse`. `updateExistingUsersOnly: true` (respected in
  userID-based and hybrid projects only, as the contract says) creates no user: unknown ones fail
  in `notFoundEmails` / `notFoundUserIds`.
- `unsubscribe` names each user as an event does (`lookup`), never creates one, and answers
  `UserBulkUpdateListResponse` with unknown users in `notFoundEmails` / `notFoundUserIds`. A user
  not in the list is a success with nothing to do. `channelUnsubscribe: true` also unsubscribes
  the user from the list's channel (adds `LIST_CHANNEL_ID` to its `unsubscribedChannelIds`);
  without it (or false) the channel subscription is left alone.
- Forgotten users are refused (`forgottenEmails` / `forgottenUserIds`), as in every write.
- A list id that names no list answers 400 `BadParams` with `invalidListId` in its message, as
  Iterable does; a body that does not fit the contract's schema answers 400 `BadJsonBody` with
  `params` naming each bad path.
"""

from __future__ import annotations

from typing import Any

from .envelope import ApiError
from .fields import list_field
from .identity import Profile
from .list_store import ListStore, StaticList
from .lookup import LookupFailure, NamedUser, forgotten_failure, load_named, name_user
from .project import FAILED_UPDATE_LISTS, Project, now_ms

# Every static list of a sandbox project belongs to the project's one marketing email channel.
LIST_CHANNEL_ID = 1
CHANNELS_FIELD = "unsubscribedChannelIds"


def _bad_json(errors: dict[str, str]) -> ApiError:
    described = "; ".join(f"{path}: {problem}" for path, problem in errors.items())
    return ApiError(400, "BadJsonBody", f"Invalid JSON body: {described}", errors)


def _ids(value: Any) -> list[Any]:
    """The ids a list-of-ids field holds (a single id counts as a one-id list)."""
    if value is None:
        return []
    return list(value) if type(value) is list else [value]


def _details(item: StaticList) -> dict[str, Any]:
    """The contract's `ListDetails` of a list (every list is a `Standard` static list)."""
    details: dict[str, Any] = {"id": item.id, "name": item.name}
    if item.description is not None:
        details["description"] = item.description
    details["createdAt"] = item.created_at
    details["listType"] = "Standard"
    return details


def _list_request(body: Any, items_key: str) -> tuple[int, list[dict[str, Any]]]:
    """The listId and the subscriber objects of a subscribe/unsubscribe body, shape checked."""
    if type(body) is not dict or body.get("listId") is None or body.get(items_key) is None:
        raise ApiError(400, "BadParams", f"Request body needs 'listId' and '{items_key}'")
    errors: dict[str, str] = {}
    list_id, items = body["listId"], body[items_key]
    if type(list_id) is not int:
        errors["obj.listId"] = "Integer value expected"
    if type(items) is not list:
        errors[f"obj.{items_key}"] = "Array value expected"
    else:
        for index, item in enumerate(items):
            if type(item) is not dict:
                errors[f"obj.{items_key}[{index}]"] = "Object value expected"
    for key in ("updateExistingUsersOnly", "channelUnsubscribe"):
        if body.get(key) is not None and type(body[key]) is not bool:
            errors[f"obj.{key}"] = "Boolean value expected"
    if body.get("campaignId") is not None and type(body["campaignId"]) is not int:
        errors["obj.campaignId"] = "Integer value expected"
    if errors:
        raise _bad_json(errors)
    return list_id, items


def _failed_response(success_count: int, failed: list[tuple[LookupFailure, Any, Any]]) -> dict[str, Any]:
    """A `UserBulkUpdateListResponse` for requests that create no field (unsubscribe)."""
    lists: dict[str, dict[str, None]] = {name: {} for name in FAILED_UPDATE_LISTS}
    failed_emails: dict[str, None] = {}
    failed_user_ids: dict[str, None] = {}
    for failure, raw_email, raw_user_id in failed:
        for name, value in failure.reports:
            lists[name][value] = None
        # The deprecated top-level lists name every user that failed, whatever the reason.
        emails = [str(raw_email)] if raw_email is not None else [v for n, v in failure.reports if n.endswith("Emails")]
        user_ids = (
            [str(raw_user_id)] if raw_user_id is not None else [v for n, v in failure.reports if n.endswith("UserIds")]
        )
        failed_emails.update(dict.fromkeys(emails))
        failed_user_ids.update(dict.fromkeys(user_ids))
    return {
        "successCount": success_count,
        "failCount": len(failed),
        "invalidEmails": list(failed_emails),
        "invalidUserIds": list(failed_user_ids),
        "failedUpdates": {name: list(values) for name, values in lists.items()},
        "createdFields": [],
        "filteredOutFields": [],
    }


class StaticLists:
    """The static lists of a project. Use from the storage worker thread only."""

    def __init__(self, project: Project):
        self.project = project
        self.field = list_field(project.project_type)
        self.store = ListStore(project.store.connection, self.field)

    # ---- lists

    def all(self) -> dict[str, Any]:
        """GET /api/lists: a `GetListsResponse`, lists by id."""
        return {"lists": [_details(item) for item in self.store.all()]}

    def create(self, body: Any) -> dict[str, Any]:
        """POST /api/lists: creates a static list; a `CreateListResponse`."""
        if type(body) is not dict or body.get("name") is None:
            raise ApiError(400, "BadParams", "Request body needs 'name', the list's name")
        errors: dict[str, str] = {}
        name, description = body["name"], body.get("description")
        if type(name) is not str or not name.strip():
            errors["obj.name"] = "Non-empty string value expected"
        if description is not None and type(description) is not str:
            errors["obj.description"] = "String value expected"
        if errors:
            raise _bad_json(errors)
        return {"listId": self.store.create(name, description, now_ms())}

    def delete(self, list_id: int) -> str:
        """DELETE /api/lists/{listId}: deletes the list and removes it from its members' list fields."""
        self._require(list_id)
        members = self.store.member_profiles(list_id)
        for profile in members:
            profile.data[self.field] = [i for i in _ids(profile.data.get(self.field)) if i != list_id]
        store = self.project.store
        with store.transaction():
            if members:
                store.write(members, {}, now_ms())
            self.store.delete(list_id)
        return "List deleted"

    def _require(self, list_id: int) -> StaticList:
        found = self.store.get(list_id)
        if found is None:
            raise ApiError(400, "BadParams", f"invalidListId: no static list has id {list_id}", {"listId": list_id})
        return found

    # ---- membership

    def subscribe(self, body: Any) -> dict[str, Any]:
        """POST /api/lists/subscribe: a `UserBulkUpdateListResponse`."""
        list_id, subscribers = _list_request(body, "subscribers")
        self._require(list_id)
        existing_only = body.get("updateExistingUsersOnly") is True and self.project.project_type != "email"

        def join(profile: Profile) -> None:
            ids = _ids(profile.data.get(self.field))
            if list_id not in ids:
                ids.append(list_id)
            profile.data[self.field] = ids

        outcome = self.project.update_users(subscribers, create_new_fields=True, adjust=join, create=not existing_only)
        return outcome.bulk_response()

    def unsubscribe(self, body: Any) -> dict[str, Any]:
        """POST /api/lists/unsubscribe: a `UserBulkUpdateListResponse`."""
        list_id, subscribers = _list_request(body, "subscribers")
        self._require(list_id)
        channel_unsubscribe = body.get("channelUnsubscribe") is True
        named = [name_user(self.project.project_type, s.get("email"), s.get("userId")) for s in subscribers]
        profiles, forgotten = load_named(self.project.store, (n for n in named if isinstance(n, NamedUser)))
        changed: dict[int, Profile] = {}
        failed: list[tuple[LookupFailure, Any, Any]] = []
        for subscriber, user in zip(subscribers, named, strict=True):
            if isinstance(user, NamedUser):
                profile = profiles.get(user.key)
                found = forgotten_failure(user, forgotten) or (user.not_found() if profile is None else profile)
            else:
                found = user
            if isinstance(found, LookupFailure):
                failed.append((found, subscriber.get("email"), subscriber.get("userId")))
            elif self._leave(found, list_id, channel_unsubscribe):
                changed[id(found)] = found
        if changed:
            self.project.store.write(list(changed.values()), {}, now_ms())
        return _failed_response(len(subscribers) - len(failed), failed)

    def _leave(self, profile: Profile, list_id: int, channel_unsubscribe: bool) -> bool:
        """Take a user out of a list (and its channel when asked); whether its profile changed."""
        changed = False
        ids = _ids(profile.data.get(self.field))
        if list_id in ids:
            profile.data[self.field] = [i for i in ids if i != list_id]
            changed = True
        if channel_unsubscribe:
            channels = _ids(profile.data.get(CHANNELS_FIELD))
            if LIST_CHANNEL_ID not in channels:
                profile.data[CHANNELS_FIELD] = [*channels, LIST_CHANNEL_ID]
                changed = True
        return changed

    # ---- reads

    def users(self, list_id: int, prefer_user_id: bool) -> str:
        """GET /api/lists/getUsers: one identifier per line (text/plain), in the order users were created.

        Each user is named by the project's identifier: its email in email-based projects, its userId
        in userID-based ones; in hybrid projects its email, or its userId when it has no email or when
        `prefer_user_id` is set and it has one.
        """
        self._require(list_id)
        project_type = self.project.project_type
        lines = []
        for _, email, user_id in self.store.members(list_id):
            if project_type == "userid" or email is None or (prefer_user_id and user_id is not None):
                lines.append(user_id if user_id is not None else email)
            else:
                lines.append(email)
        return "".join(f"{line}\n" for line in lines if line is not None)

    def size(self, list_id: int) -> str:
        """GET /api/lists/{listId}/size: the number of members, as text."""
        self._require(list_id)
        return str(self.store.member_count(list_id))

    # ---- admin

    def count(self) -> int:
        """How many lists exist."""
        return self.store.count()

    def reset(self) -> None:
        """Delete every list (the users, and so their list fields, are reset by the project)."""
        self.store.reset()
