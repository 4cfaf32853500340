"""Merging, field types, per-user failures and GDPR forgetting, over real HTTP."""

from __future__ import annotations

import hashlib

import pytest

from .helpers import all_users, assert_envelope, bulk, data_fields, get_user


def data_of(client, email):
    return get_user(client, email)["user"]["dataFields"]


def update(client, **body):
    return client.post("/api/users/update", json=body)


# ---- merge semantics


def test_update_merges_top_level_fields(email_client):
    update(email_client, email="a@example.com", dataFields={"a": 1, "b": "x", "obj": {"p": 1, "q": 2}})
    update(email_client, email="a@example.com", dataFields={"b": "y", "c": True, "obj": {"p": 5}})
    # Omitted fields are kept; a top-level object is overwritten as a whole.
    assert data_of(email_client, "a@example.com") == {"a": 1, "b": "y", "c": True, "obj": {"p": 5}}


def test_merge_nested_objects_merges_one_level(email_client):
    update(email_client, email="a@example.com", dataFields={"mySettings": {"mobile": True, "deep": {"x": 1}}})
    body = {"email": "a@example.com", "mergeNestedObjects": True}
    update(email_client, **body, dataFields={"mySettings": {"email": True, "deep": {"y": 2}}})
    assert data_of(email_client, "a@example.com") == {"mySettings": {"mobile": True, "email": True, "deep": {"y": 2}}}


def test_bulk_merge_nested_objects_is_per_user(email_client):
    bulk(email_client, [{"email": f"{n}@example.com", "dataFields": {"o": {"a": 1}}} for n in "ab"])
    bulk(
        email_client,
        [
            {"email": "a@example.com", "mergeNestedObjects": True, "dataFields": {"o": {"b": 2}}},
            {"email": "b@example.com", "dataFields": {"o": {"b": 2}}},
        ],
    )
    assert data_of(email_client, "a@example.com") == {"o": {"a": 1, "b": 2}}
    assert data_of(email_client, "b@example.com") == {"o": {"b": 2}}


def test_same_user_twice_in_one_bulk_applies_in_order(email_client):
    body = bulk(
        email_client,
        [
            {"email": "a@example.com", "dataFields": {"n": 1, "keep": "k"}},
            {"email": "A@example.com", "dataFields": {"n": 2}},
        ],
    ).json()
    assert body["successCount"] == 2
    assert data_of(email_client, "a@example.com") == {"n": 2, "keep": "k"}
    assert len(all_users(email_client)) == 1


# ---- field types


def test_get_fields_reports_types_by_dot_path(email_client):
    update(
        email_client,
        email="a@example.com",
        dataFields={
            "name": "Ann",
            "age": 30,
            "score": 1.5,
            "vip": False,
            "signup": "2024-01-31 13:45:00 +00:00",
            "seen": "2024-01-31T13:45:00.000Z",
            "birthday": "1990-05-17",
            "address": {"city": "Paris", "geo": {"lat": 48.8}},
            "tags": ["a"],
            "nothing": None,
        },
    )
    assert data_fields(email_client) == {
        "address": "object",
        "address.city": "string",
        "address.geo": "object",
        "address.geo.lat": "double",
        "age": "long",
        "birthday": "date",
        "name": "string",
        "score": "double",
        "seen": "date",
        "signup": "date",
        "tags": "array",
        "vip": "boolean",
    }


def test_type_mismatch_in_single_update_changes_nothing(email_client):
    update(email_client, email="a@example.com", dataFields={"age": 30})
    response = update(email_client, email="a@example.com", dataFields={"age": "thirty", "other": 1})
    body = assert_envelope(response, 400, "RequestFieldsTypesMismatched")
    assert "age" in body["msg"] and "long" in body["msg"] and "string" in body["msg"]
    assert data_of(email_client, "a@example.com") == {"age": 30}
    assert "other" not in email_client.get("/api/users/getFields").json()["fields"]


def test_type_mismatch_rejects_the_whole_bulk_request(email_client):
    update(email_client, email="seed@example.com", dataFields={"address": {"zip": 75001}})
    users = [{"email": f"u{i}@example.com", "dataFields": {"n": i}} for i in range(50)]
    users.append({"email": "bad@example.com", "dataFields": {"address": {"zip": "75001"}}})
    response = bulk(email_client, users)
    body = assert_envelope(response, 400, "RequestFieldsTypesMismatched")
    assert "address.zip" in body["msg"] and "long" in body["msg"] and "string" in body["msg"]
    assert body["params"]["mismatchedFields"] == [
        {"field": "address.zip", "fixedType": "long", "requestType": "string"}
    ]
    assert [u["email"] for u in all_users(email_client)] == ["seed@example.com"]
    assert "n" not in email_client.get("/api/users/getFields").json()["fields"]


def test_two_users_disagreeing_on_a_new_field_is_a_mismatch(email_client):
    users = [
        {"email": "a@example.com", "dataFields": {"plan": "gold"}},
        {"email": "b@example.com", "dataFields": {"plan": 3}},
    ]
    body = assert_envelope(bulk(email_client, users), 400, "RequestFieldsTypesMismatched")
    assert "plan" in body["msg"]
    assert all_users(email_client) == []
    assert data_fields(email_client) == {}


def test_user_failing_for_identity_does_not_fix_types(email_client):
    body = bulk(email_client, [{"email": "not an email", "dataFields": {"lonely": "x"}}]).json()
    assert body["failCount"] == 1
    assert body["createdFields"] == []
    assert data_fields(email_client) == {}


@pytest.mark.parametrize(
    ("first", "then", "accepted"),
    [
        (1.5, 2, True),  # a long into a double field
        (1, 2.0, True),  # an integral double into a long field
        (1, 2.5, False),  # a fractional double into a long field
        ("text", "2024-01-31", True),  # a date-like string into a string field
        ("2024-01-31", "text", False),  # a plain string into a date field
        (True, "true", False),
        ({"a": 1}, [1], False),
        ([1], {"a": 1}, False),
        ("x", None, True),  # null fits anything
    ],
)
def test_type_compatibility(email_client, first, then, accepted):
    update(email_client, email="a@example.com", dataFields={"f": first})
    response = update(email_client, email="a@example.com", dataFields={"f": then})
    if accepted:
        assert_envelope(response, 200, "Success")
        assert data_of(email_client, "a@example.com")["f"] == then
    else:
        assert_envelope(response, 400, "RequestFieldsTypesMismatched")
        assert data_of(email_client, "a@example.com")["f"] == first


def test_null_fixes_no_type(email_client):
    update(email_client, email="a@example.com", dataFields={"f": None})
    assert data_fields(email_client) == {}
    assert_envelope(update(email_client, email="a@example.com", dataFields={"f": 7}), 200, "Success")
    assert data_fields(email_client) == {"f": "long"}


def test_create_new_fields_false_filters_out_unknown_fields(email_client):
    update(email_client, email="a@example.com", dataFields={"known": 1, "obj": {"in": 1}})
    body = bulk(
        email_client,
        [{"email": "a@example.com", "dataFields": {"known": 2, "fresh": "x", "obj": {"in": 2, "new": 3}}}],
        createNewFields=False,
    ).json()
    assert body["successCount"] == 1
    assert sorted(body["filteredOutFields"]) == ["fresh", "obj.new"]
    assert data_of(email_client, "a@example.com") == {"known": 2, "obj": {"in": 2}}


def test_invalid_field_name_is_invalid_data(email_client):
    body = bulk(
        email_client,
        [{"email": "a@example.com", "dataFields": {"a.b": 1}}, {"email": "b@example.com", "dataFields": {"n": 1}}],
    ).json()
    assert body["successCount"] == 1 and body["failCount"] == 1
    assert body["failedUpdates"]["invalidDataEmails"] == ["a@example.com"]


# ---- per-user failures in bulk


def test_invalid_emails_fail_per_user_and_the_rest_is_applied(email_client):
    users = [
        {"email": "good1@example.com", "dataFields": {"n": 1}},
        {"email": "user @example.com", "dataFields": {"n": 2}},
        {"email": "no-at-sign", "dataFields": {"n": 3}},
        {"email": "good2@example.com", "dataFields": {"n": 4}},
    ]
    body = bulk(email_client, users).json()
    assert body["successCount"] == 2 and body["failCount"] == 2
    assert body["failedUpdates"]["invalidEmails"] == ["user @example.com", "no-at-sign"]
    assert body["invalidEmails"] == ["user @example.com", "no-at-sign"]
    assert sorted(u["email"] for u in all_users(email_client)) == ["good1@example.com", "good2@example.com"]


@pytest.mark.parametrize("bad_user_id", ["", "x" * 53, "trailing ", "tab\there", "caf\u00e9", 42])
def test_invalid_user_ids_fail_per_user(hybrid_client, bad_user_id):
    users = [{"userId": bad_user_id, "dataFields": {"n": 1}}, {"userId": "fine", "dataFields": {"n": 2}}]
    body = bulk(hybrid_client, users).json()
    assert body["successCount"] == 1 and body["failCount"] == 1
    assert body["failedUpdates"]["invalidUserIds"] == [str(bad_user_id)]
    response = update(hybrid_client, userId=bad_user_id)
    assert_envelope(response, 400, "InvalidUserIdError")


def test_longest_valid_user_id_is_accepted(hybrid_client):
    assert_envelope(update(hybrid_client, userId="x" * 52), 200, "Success")


def test_invalid_email_in_single_update(email_client):
    assert_envelope(update(email_client, email="nope@", dataFields={"n": 1}), 400, "InvalidEmailAddressError")


# ---- GDPR forget / unforget and deletion


def test_forgotten_user_is_deleted_and_not_updated(email_client):
    update(email_client, email="gone@example.com", userId="g1", dataFields={"n": 1})
    assert_envelope(email_client.post("/api/users/forget", json={"email": "gone@example.com"}), 200, "Success")
    assert get_user(email_client, "gone@example.com") == {}
    body = bulk(
        email_client,
        [{"email": "gone@example.com", "dataFields": {"n": 2}}, {"email": "kept@example.com"}],
    ).json()
    assert body["successCount"] == 1 and body["failCount"] == 1
    assert body["failedUpdates"]["forgottenEmails"] == ["gone@example.com"]
    body = bulk(email_client, [{"userId": "g1", "preferUserId": True}]).json()
    assert body["failedUpdates"]["forgottenUserIds"] == ["g1"]
    assert_envelope(update(email_client, email="gone@example.com"), 409, "ForgottenUserError")
    hashed = email_client.get("/api/users/forgotten").json()["hashedEmails"]
    assert hashed == [hashlib.sha256(b"gone@example.com").hexdigest()]

    assert_envelope(email_client.post("/api/users/unforget", json={"email": "gone@example.com"}), 200, "Success")
    assert_envelope(update(email_client, email="gone@example.com", dataFields={"n": 3}), 200, "Success")
    assert data_of(email_client, "gone@example.com") == {"n": 3}


def test_forget_follows_the_project_type(email_client, userid_client):
    assert_envelope(email_client.post("/api/users/forget", json={"userId": "u1"}), 400, "BadParams")
    assert_envelope(userid_client.post("/api/users/forget", json={"email": "a@example.com"}), 400, "BadParams")
    assert_envelope(userid_client.post("/api/users/forget", json={"userId": "u1"}), 200, "Success")
    body = bulk(userid_client, [{"userId": "u1"}]).json()
    assert body["failedUpdates"]["forgottenUserIds"] == ["u1"]


def test_delete_by_email_and_by_user_id(email_client):
    update(email_client, email="a@example.com", userId="u1")
    update(email_client, email="b@example.com", userId="u2")
    assert_envelope(email_client.delete("/api/users/a@example.com"), 200, "Success")
    assert_envelope(email_client.delete("/api/users/byUserId/u2"), 200, "Success")
    assert all_users(email_client) == []
    assert_envelope(email_client.delete("/api/users/a@example.com"), 400, "UnknownEmailError")
    assert_envelope(email_client.delete("/api/users/byUserId/u2"), 400, "UnknownUserIdError")
