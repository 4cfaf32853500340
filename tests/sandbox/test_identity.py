"""Identity rules of the three project types, over real HTTP."""

from __future__ import annotations

import re

from .helpers import all_users, assert_envelope, bulk, get_user

PLACEHOLDER = re.compile(r"[0-9a-f]{32}@placeholder\.email")


def update(client, **body):
    return client.post("/api/users/update", json=body)


# ---- email-based projects


def test_email_project_creates_and_updates_by_email(email_client):
    assert_envelope(update(email_client, email="a@example.com", dataFields={"n": 1}), 200, "Success")
    assert_envelope(update(email_client, email="a@example.com", dataFields={"m": 2}), 200, "Success")
    assert get_user(email_client, "a@example.com")["user"]["dataFields"] == {"n": 1, "m": 2}
    assert len(all_users(email_client)) == 1


def test_email_project_user_id_only_updates_the_user_having_it(email_client):
    update(email_client, email="a@example.com", userId="u1", dataFields={"n": 1})
    assert_envelope(update(email_client, userId="u1", dataFields={"n": 2}), 200, "Success")
    assert get_user(email_client, "a@example.com")["user"]["dataFields"] == {"n": 2}


def test_email_project_unknown_user_id_fails_without_prefer_user_id(email_client):
    assert_envelope(update(email_client, userId="ghost", dataFields={"n": 1}), 400, "UnknownUserIdError")
    body = bulk(email_client, [{"userId": "ghost", "dataFields": {"n": 1}}]).json()
    assert body["successCount"] == 0 and body["failCount"] == 1
    assert body["failedUpdates"]["invalidUserIds"] == ["ghost"]
    assert body["invalidUserIds"] == ["ghost"]
    assert all_users(email_client) == []


def test_email_project_prefer_user_id_creates_placeholder_email(email_client):
    assert_envelope(update(email_client, userId="anon", preferUserId=True, dataFields={"n": 1}), 200, "Success")
    user = get_user(email_client, user_id="anon")["user"]
    assert PLACEHOLDER.fullmatch(user["email"]), user
    assert user["dataFields"] == {"n": 1}
    body = bulk(email_client, [{"userId": "anon2", "preferUserId": True}]).json()
    assert body["successCount"] == 1
    assert PLACEHOLDER.fullmatch(get_user(email_client, user_id="anon2")["user"]["email"])


def test_email_project_email_and_user_id_sets_the_user_id(email_client):
    update(email_client, email="a@example.com", dataFields={"n": 1})
    update(email_client, email="a@example.com", userId="u1")
    assert get_user(email_client, user_id="u1")["user"]["email"] == "a@example.com"


def test_email_project_user_id_of_another_user_is_a_conflict(email_client):
    update(email_client, email="a@example.com", userId="u1")
    update(email_client, email="b@example.com", userId="u2")
    assert_envelope(update(email_client, email="a@example.com", userId="u2"), 409, "UserIdAlreadyExists")
    body = bulk(email_client, [{"email": "a@example.com", "userId": "u2", "dataFields": {"n": 1}}]).json()
    assert body["failCount"] == 1 and body["successCount"] == 0
    assert body["failedUpdates"]["conflictUserIds"] == ["u2"]
    assert body["failedUpdates"]["conflictEmails"] == ["a@example.com"]
    assert get_user(email_client, "a@example.com")["user"] == {
        "email": "a@example.com",
        "userId": "u1",
        "dataFields": {},
    }


def test_email_project_missing_identifier_fails_per_user(email_client):
    body = bulk(email_client, [{"dataFields": {"n": 1}}, {"email": "ok@example.com"}]).json()
    assert body["successCount"] == 1 and body["failCount"] == 1
    assert body["failedUpdates"]["invalidEmails"] == [""]


def test_data_fields_user_id_changes_the_user_id(email_client):
    update(email_client, email="a@example.com", userId="old")
    update(email_client, email="a@example.com", dataFields={"userId": "new", "n": 1})
    assert get_user(email_client, user_id="old") == {}
    assert get_user(email_client, user_id="new")["user"] == {
        "email": "a@example.com",
        "userId": "new",
        "dataFields": {"n": 1},
    }


def test_identity_swap_within_one_bulk_request(email_client):
    update(email_client, email="a@example.com", userId="x")
    update(email_client, email="b@example.com", userId="y")
    users = [
        {"email": "a@example.com", "dataFields": {"n": 1}},
        {"email": "a@example.com", "dataFields": {"userId": "tmp"}},
        {"email": "b@example.com", "dataFields": {"userId": "x"}},
        {"email": "a@example.com", "dataFields": {"userId": "y"}},
    ]
    body = bulk(email_client, users).json()
    assert body["successCount"] == 4, body
    assert get_user(email_client, user_id="x")["user"]["email"] == "b@example.com"
    assert get_user(email_client, user_id="y")["user"]["email"] == "a@example.com"


# ---- userID-based projects


def test_userid_project_requires_user_id(userid_client):
    assert_envelope(update(userid_client, email="a@example.com", dataFields={"n": 1}), 400, "BadParams")
    body = bulk(userid_client, [{"email": "a@example.com"}, {"userId": "u1"}]).json()
    assert body["successCount"] == 1 and body["failCount"] == 1
    assert body["failedUpdates"]["invalidUserIds"] == [""]
    assert body["invalidEmails"] == ["a@example.com"]


def test_userid_project_email_is_a_non_unique_attribute(userid_client):
    body = bulk(
        userid_client,
        [
            {"userId": "u1", "email": "same@example.com", "dataFields": {"n": 1}},
            {"userId": "u2", "email": "same@example.com", "dataFields": {"n": 2}},
        ],
    ).json()
    assert body["successCount"] == 2, body
    assert get_user(userid_client, user_id="u1")["user"]["email"] == "same@example.com"
    assert get_user(userid_client, user_id="u2")["user"]["email"] == "same@example.com"
    update(userid_client, userId="u1", email="changed@example.com")
    assert get_user(userid_client, user_id="u1")["user"]["email"] == "changed@example.com"


def test_userid_project_user_without_email_has_empty_email(userid_client):
    update(userid_client, userId="u1", dataFields={"n": 1})
    assert get_user(userid_client, user_id="u1") == {"user": {"email": "", "userId": "u1", "dataFields": {"n": 1}}}


def test_userid_project_cannot_delete_by_email(userid_client):
    update(userid_client, userId="u1", email="a@example.com")
    assert_envelope(userid_client.delete("/api/users/a@example.com"), 400, "BadParams")
    assert_envelope(userid_client.delete("/api/users/byUserId/u1"), 200, "Success")
    assert get_user(userid_client, user_id="u1") == {}


# ---- hybrid projects


def test_hybrid_project_either_identifier_identifies(hybrid_client):
    update(hybrid_client, email="a@example.com", dataFields={"n": 1})
    update(hybrid_client, userId="u9", dataFields={"n": 9})
    update(hybrid_client, email="a@example.com", userId="u1")  # adds a userId to the email's user
    update(hybrid_client, userId="u1", dataFields={"m": 2})
    assert get_user(hybrid_client, "a@example.com")["user"] == {
        "email": "a@example.com",
        "userId": "u1",
        "dataFields": {"n": 1, "m": 2},
    }
    assert get_user(hybrid_client, user_id="u9")["user"] == {"email": "", "userId": "u9", "dataFields": {"n": 9}}
    assert len(all_users(hybrid_client)) == 2


def test_hybrid_project_email_and_user_id_of_two_users_conflict(hybrid_client):
    update(hybrid_client, email="a@example.com", userId="u1")
    update(hybrid_client, email="b@example.com", userId="u2")
    response = update(hybrid_client, email="a@example.com", userId="u2", dataFields={"n": 1})
    assert_envelope(response, 409, "EmailAlreadyExists")
    body = bulk(
        hybrid_client,
        [
            {"email": "a@example.com", "userId": "u2", "dataFields": {"n": 1}},
            {"email": "c@example.com", "userId": "u3", "dataFields": {"n": 3}},
        ],
    ).json()
    assert body["successCount"] == 1 and body["failCount"] == 1
    assert body["failedUpdates"]["conflictEmails"] == ["a@example.com"]
    assert body["failedUpdates"]["conflictUserIds"] == ["u2"]
    assert get_user(hybrid_client, "a@example.com")["user"]["dataFields"] == {}
    assert get_user(hybrid_client, "c@example.com")["user"]["userId"] == "u3"


def test_hybrid_project_email_of_user_with_other_user_id_conflicts(hybrid_client):
    update(hybrid_client, email="a@example.com", userId="u1")
    body = bulk(hybrid_client, [{"email": "a@example.com", "userId": "new", "dataFields": {"n": 1}}]).json()
    assert body["failCount"] == 1
    assert body["failedUpdates"]["conflictEmails"] == ["a@example.com"]
    assert get_user(hybrid_client, user_id="new") == {}


def test_hybrid_project_new_email_of_user_is_unique(hybrid_client):
    update(hybrid_client, email="a@example.com", userId="u1")
    update(hybrid_client, email="b@example.com", userId="u2")
    response = update(hybrid_client, userId="u1", dataFields={"email": "b@example.com"})
    assert_envelope(response, 409, "EmailAlreadyExists")
    assert_envelope(update(hybrid_client, userId="u1", dataFields={"email": "z@example.com"}), 200, "Success")
    assert get_user(hybrid_client, "z@example.com")["user"]["userId"] == "u1"
    assert get_user(hybrid_client, "a@example.com") == {}
