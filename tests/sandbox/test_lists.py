"""Static lists: create, read and delete lists, subscribe and unsubscribe users, over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from smartingest.sandbox.lists import LIST_CHANNEL_ID

from .helpers import FAILED_USER_LISTS, all_users, assert_envelope, bulk, get_user


def create_list(client: httpx.Client, name: str = "Newsletter", **extra: Any) -> int:
    response = client.post("/api/lists", json={"name": name, **extra})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"listId"}
    return response.json()["listId"]


def subscribe(client: httpx.Client, list_id: int, subscribers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    response = client.post("/api/lists/subscribe", json={"listId": list_id, "subscribers": subscribers, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def unsubscribe(client: httpx.Client, list_id: int, subscribers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    response = client.post("/api/lists/unsubscribe", json={"listId": list_id, "subscribers": subscribers, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def members(client: httpx.Client, list_id: int, **params: Any) -> list[str]:
    """GET /api/lists/getUsers, checked to be text/plain with one user per line."""
    response = client.get("/api/lists/getUsers", params={"listId": list_id, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "" or response.text.endswith("\n")
    return response.text.splitlines()


def size(client: httpx.Client, list_id: int) -> int:
    response = client.get(f"/api/lists/{list_id}/size")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.isdigit()
    return int(response.text)


def data_of(client: httpx.Client, email: str | None = None, user_id: str | None = None) -> dict[str, Any]:
    return get_user(client, email, user_id)["user"]["dataFields"]


# ---- lists


def test_create_get_and_delete_lists(email_client):
    assert email_client.get("/api/lists").json() == {"lists": []}
    first = create_list(email_client, "Newsletter", description="Weekly news")
    second = create_list(email_client, "VIP")
    lists = email_client.get("/api/lists").json()["lists"]
    assert [(item["id"], item["name"]) for item in lists] == [(first, "Newsletter"), (second, "VIP")]
    assert lists[0]["description"] == "Weekly news" and "description" not in lists[1]
    assert all(item["listType"] == "Standard" and isinstance(item["createdAt"], int) for item in lists)
    assert_envelope(email_client.delete(f"/api/lists/{first}"), 200, "Success")
    assert [item["id"] for item in email_client.get("/api/lists").json()["lists"]] == [second]
    # Deleted ids never come back.
    assert create_list(email_client, "Newsletter") > second


def test_list_errors(email_client):
    body = assert_envelope(email_client.delete("/api/lists/999"), 400, "BadParams")
    assert "invalidListId" in body["msg"]
    assert_envelope(email_client.delete("/api/lists/not-a-number"), 404, "NotFound")
    assert_envelope(email_client.post("/api/lists", json={}), 400, "BadParams")
    assert_envelope(email_client.post("/api/lists", json={"name": 5}), 400, "BadJsonBody")
    assert_envelope(email_client.post("/api/lists", json={"name": "  "}), 400, "BadJsonBody")
    assert_envelope(email_client.post("/api/lists", json={"name": "x", "description": 1}), 400, "BadJsonBody")
    assert email_client.get("/api/lists").json() == {"lists": []}


# ---- subscribe


def test_subscribe_creates_users_and_shows_in_get_users_size_and_email_list_ids(email_client):
    list_id = create_list(email_client)
    bulk(email_client, [{"email": "old@example.com", "dataFields": {"plan": "free"}}])
    body = subscribe(
        email_client,
        list_id,
        [{"email": "old@example.com"}, {"email": "New@example.com", "dataFields": {"plan": "pro"}}],
    )
    assert (body["successCount"], body["failCount"]) == (2, 0)
    assert set(body["failedUpdates"]) == FAILED_USER_LISTS
    assert body["createdFields"] == [] and body["filteredOutFields"] == []
    assert members(email_client, list_id) == ["old@example.com", "new@example.com"]
    assert size(email_client, list_id) == 2
    assert data_of(email_client, "old@example.com") == {"plan": "free", "emailListIds": [list_id]}
    assert data_of(email_client, "new@example.com") == {"plan": "pro", "emailListIds": [list_id]}


def test_subscribing_again_or_to_two_lists(email_client):
    first, second = create_list(email_client, "A"), create_list(email_client, "B")
    subscribe(email_client, first, [{"email": "a@example.com"}])
    subscribe(email_client, first, [{"email": "a@example.com"}, {"email": "a@example.com"}])
    subscribe(email_client, second, [{"email": "a@example.com"}])
    assert data_of(email_client, "a@example.com") == {"emailListIds": [first, second]}
    assert (size(email_client, first), size(email_client, second)) == (1, 1)


def test_subscribe_partial_failures_answer_user_bulk_update_list_response(email_client):
    list_id = create_list(email_client)
    bulk(email_client, [{"email": "gone@example.com"}, {"email": "owner@example.com", "userId": "taken"}])
    email_client.post("/api/users/forget", json={"email": "gone@example.com"}).raise_for_status()
    body = subscribe(
        email_client,
        list_id,
        [
            {"email": "ok@example.com"},
            {"email": "not-an-email"},
            {"email": "gone@example.com"},
            {"email": "other@example.com", "userId": "taken"},
            {"userId": "unknown"},
        ],
    )
    assert (body["successCount"], body["failCount"]) == (1, 4)
    failed = body["failedUpdates"]
    assert failed["invalidEmails"] == ["not-an-email"]
    assert failed["forgottenEmails"] == ["gone@example.com"]
    assert failed["conflictUserIds"] == ["taken"]
    assert failed["invalidUserIds"] == ["unknown"]  # a userId alone needs preferUserId to create a user
    assert members(email_client, list_id) == ["ok@example.com"]


def test_subscribe_type_mismatch_rejects_the_whole_request(email_client):
    list_id = create_list(email_client)
    bulk(email_client, [{"email": "a@example.com", "dataFields": {"age": 30}}])
    response = email_client.post(
        "/api/lists/subscribe",
        json={
            "listId": list_id,
            "subscribers": [{"email": "b@example.com"}, {"email": "c@example.com", "dataFields": {"age": "x"}}],
        },
    )
    assert_envelope(response, 400, "RequestFieldsTypesMismatched")
    assert size(email_client, list_id) == 0


def test_subscribe_errors(email_client):
    body = assert_envelope(
        email_client.post("/api/lists/subscribe", json={"listId": 999, "subscribers": [{"email": "a@example.com"}]}),
        400,
        "BadParams",
    )
    assert "invalidListId" in body["msg"]
    assert_envelope(email_client.post("/api/lists/subscribe", json={"subscribers": []}), 400, "BadParams")
    response = email_client.post("/api/lists/subscribe", json={"listId": "1", "subscribers": ["a@example.com"]})
    body = assert_envelope(response, 400, "BadJsonBody")
    assert set(body["params"]) == {"obj.listId", "obj.subscribers[0]"}
    assert all_users(email_client) == []


def test_update_existing_users_only_creates_no_user_in_userid_projects(userid_client):
    list_id = create_list(userid_client)
    bulk(userid_client, [{"userId": "known"}])
    subscribers = [{"userId": "known"}, {"userId": "new", "email": "new@example.com"}]
    body = subscribe(userid_client, list_id, subscribers, updateExistingUsersOnly=True)
    assert (body["successCount"], body["failCount"]) == (1, 1)
    assert body["failedUpdates"]["notFoundUserIds"] == ["new"]
    assert body["failedUpdates"]["notFoundEmails"] == []
    assert members(userid_client, list_id) == ["known"]
    assert data_of(userid_client, user_id="known") == {"userListIds": [list_id]}
    assert get_user(userid_client, user_id="new") == {}


def test_update_existing_users_only_in_hybrid_projects(hybrid_client):
    list_id = create_list(hybrid_client)
    bulk(hybrid_client, [{"email": "known@example.com"}])
    subscribers = [{"email": "known@example.com"}, {"email": "new@example.com"}]
    body = subscribe(hybrid_client, list_id, subscribers, updateExistingUsersOnly=True)
    assert body["failedUpdates"]["notFoundEmails"] == ["new@example.com"]
    assert members(hybrid_client, list_id) == ["known@example.com"]


def test_update_existing_users_only_is_ignored_in_email_projects(email_client):
    list_id = create_list(email_client)
    body = subscribe(email_client, list_id, [{"email": "new@example.com"}], updateExistingUsersOnly=True)
    assert body["successCount"] == 1
    assert members(email_client, list_id) == ["new@example.com"]


# ---- unsubscribe


def test_unsubscribe_removes_users_from_get_users_size_and_email_list_ids(email_client):
    list_id, other = create_list(email_client, "A"), create_list(email_client, "B")
    subscribe(email_client, list_id, [{"email": "a@example.com"}, {"email": "b@example.com"}])
    subscribe(email_client, other, [{"email": "a@example.com"}])
    body = unsubscribe(email_client, list_id, [{"email": "a@example.com"}])
    assert (body["successCount"], body["failCount"]) == (1, 0)
    assert set(body["failedUpdates"]) == FAILED_USER_LISTS
    assert members(email_client, list_id) == ["b@example.com"]
    assert size(email_client, list_id) == 1
    assert data_of(email_client, "a@example.com")["emailListIds"] == [other]


@pytest.mark.parametrize("channel_unsubscribe", [None, False])
def test_unsubscribe_leaves_the_channel_alone_unless_asked(email_client, channel_unsubscribe):
    list_id = create_list(email_client)
    subscribe(email_client, list_id, [{"email": "a@example.com", "dataFields": {"unsubscribedChannelIds": [77]}}])
    extra = {} if channel_unsubscribe is None else {"channelUnsubscribe": channel_unsubscribe}
    unsubscribe(email_client, list_id, [{"email": "a@example.com"}], **extra)
    assert data_of(email_client, "a@example.com") == {"unsubscribedChannelIds": [77], "emailListIds": []}


def test_channel_unsubscribe_true_also_unsubscribes_from_the_lists_channel(email_client):
    list_id = create_list(email_client)
    subscribe(email_client, list_id, [{"email": "a@example.com"}])
    unsubscribe(email_client, list_id, [{"email": "a@example.com"}], channelUnsubscribe=True, campaignId=12)
    data = data_of(email_client, "a@example.com")
    assert data == {"emailListIds": [], "unsubscribedChannelIds": [LIST_CHANNEL_ID]}
    assert members(email_client, list_id) == []


def test_unsubscribe_partial_failures(email_client):
    list_id = create_list(email_client)
    subscribe(email_client, list_id, [{"email": "gone@example.com"}, {"email": "member@example.com"}])
    bulk(email_client, [{"email": "outsider@example.com"}])
    email_client.post("/api/users/forget", json={"email": "gone@example.com"}).raise_for_status()
    body = unsubscribe(
        email_client,
        list_id,
        [
            {"email": "member@example.com"},
            {"email": "outsider@example.com"},  # not in the list: nothing to do, a success
            {"email": "nobody@example.com"},
            {"email": "bad@"},
            {"email": "gone@example.com"},
            {},
        ],
    )
    assert (body["successCount"], body["failCount"]) == (2, 4)
    failed = body["failedUpdates"]
    assert failed["notFoundEmails"] == ["nobody@example.com"]
    assert failed["invalidEmails"] == ["bad@", ""]
    assert failed["forgottenEmails"] == ["gone@example.com"]
    assert body["invalidEmails"] == ["nobody@example.com", "bad@", "gone@example.com", ""]
    assert all_users(email_client)[-1]["email"] == "outsider@example.com"  # no user was created
    assert len(all_users(email_client)) == 2
    assert members(email_client, list_id) == []


def test_unsubscribe_errors(email_client):
    body = assert_envelope(
        email_client.post("/api/lists/unsubscribe", json={"listId": 42, "subscribers": []}), 400, "BadParams"
    )
    assert "invalidListId" in body["msg"]
    list_id = create_list(email_client)
    response = email_client.post(
        "/api/lists/unsubscribe", json={"listId": list_id, "subscribers": [], "channelUnsubscribe": "yes"}
    )
    assert "obj.channelUnsubscribe" in assert_envelope(response, 400, "BadJsonBody")["params"]


# ---- reads and project types


def test_get_users_and_size_errors(email_client):
    assert_envelope(email_client.get("/api/lists/getUsers"), 400, "BadParams")
    assert_envelope(email_client.get("/api/lists/getUsers", params={"listId": "x"}), 400, "BadParams")
    assert_envelope(email_client.get("/api/lists/getUsers", params={"listId": 5}), 400, "BadParams")
    list_id = create_list(email_client)
    params = {"listId": list_id, "preferUserId": "maybe"}
    assert_envelope(email_client.get("/api/lists/getUsers", params=params), 400, "BadParams")
    assert_envelope(email_client.get("/api/lists/5/size"), 400, "BadParams")
    assert members(email_client, list_id) == [] and size(email_client, list_id) == 0


def test_hybrid_get_users_prefers_user_ids_when_asked(hybrid_client):
    list_id = create_list(hybrid_client)
    subscribe(
        hybrid_client,
        list_id,
        [{"email": "both@example.com", "userId": "both"}, {"email": "mail@example.com"}, {"userId": "id-only"}],
    )
    assert members(hybrid_client, list_id) == ["both@example.com", "mail@example.com", "id-only"]
    assert members(hybrid_client, list_id, preferUserId="true") == ["both", "mail@example.com", "id-only"]
    assert data_of(hybrid_client, user_id="both") == {"userListIds": [list_id]}


def test_userid_project_lists_user_ids(userid_client):
    list_id = create_list(userid_client)
    subscribe(userid_client, list_id, [{"userId": "u1", "email": "a@example.com"}, {"userId": "u2"}])
    assert members(userid_client, list_id) == ["u1", "u2"]
    unsubscribe(userid_client, list_id, [{"userId": "u1"}, {"email": "a@example.com"}])
    assert members(userid_client, list_id) == ["u2"]


# ---- lists and the life of users


def test_deleting_a_list_removes_it_from_its_members(email_client):
    kept, deleted = create_list(email_client, "kept"), create_list(email_client, "deleted")
    subscribe(email_client, kept, [{"email": "a@example.com"}])
    subscribe(email_client, deleted, [{"email": "a@example.com"}, {"email": "b@example.com"}])
    assert_envelope(email_client.delete(f"/api/lists/{deleted}"), 200, "Success")
    assert data_of(email_client, "a@example.com") == {"emailListIds": [kept]}
    assert data_of(email_client, "b@example.com") == {"emailListIds": []}
    assert_envelope(email_client.get("/api/lists/getUsers", params={"listId": deleted}), 400, "BadParams")


def test_deleted_and_forgotten_users_leave_their_lists(email_client):
    list_id = create_list(email_client)
    subscribe(email_client, list_id, [{"email": f"{n}@example.com"} for n in "abc"])
    email_client.delete("/api/users/a@example.com").raise_for_status()
    email_client.post("/api/users/forget", json={"email": "b@example.com"}).raise_for_status()
    assert members(email_client, list_id) == ["c@example.com"]
    assert size(email_client, list_id) == 1
    # A forgotten user cannot be subscribed again until unforgotten.
    assert subscribe(email_client, list_id, [{"email": "b@example.com"}])["failedUpdates"]["forgottenEmails"] == [
        "b@example.com"
    ]
    email_client.post("/api/users/unforget", json={"email": "b@example.com"}).raise_for_status()
    assert subscribe(email_client, list_id, [{"email": "b@example.com"}])["successCount"] == 1
    assert size(email_client, list_id) == 2
