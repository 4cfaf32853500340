"""POST /api/users/updateEmail in each project type, over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from .helpers import all_users, assert_envelope, get_user, start_server


def update_email(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/api/users/updateEmail", json=body)


def create(client: httpx.Client, **user: Any) -> None:
    response = client.post("/api/users/update", json=user)
    assert response.status_code == 200, response.text


# ---- email-based projects


def test_current_email_moves_the_profile_to_the_new_email(email_client):
    create(email_client, email="old@example.com", userId="u1", dataFields={"plan": "gold"})
    assert_envelope(
        update_email(email_client, currentEmail="old@example.com", newEmail="new@example.com"), 200, "Success"
    )
    expected = {"user": {"email": "new@example.com", "userId": "u1", "dataFields": {"plan": "gold"}}}
    assert get_user(email_client, "new@example.com") == expected
    assert email_client.get("/api/users/new@example.com").json() == expected
    assert get_user(email_client, user_id="u1") == expected
    assert get_user(email_client, "old@example.com") == {}
    assert len(all_users(email_client)) == 1
    # The old email is free again: an update to it creates another user.
    create(email_client, email="old@example.com", dataFields={"plan": "free"})
    assert len(all_users(email_client)) == 2


def test_current_user_id_names_the_user(email_client):
    create(email_client, email="old@example.com", userId="u1")
    assert_envelope(update_email(email_client, currentUserId="u1", newEmail="new@example.com"), 200, "Success")
    assert get_user(email_client, user_id="u1")["user"]["email"] == "new@example.com"


def test_current_email_takes_precedence_over_current_user_id(email_client):
    create(email_client, email="a@example.com", userId="ua")
    create(email_client, email="b@example.com", userId="ub")
    response = update_email(email_client, currentEmail="a@example.com", currentUserId="ub", newEmail="c@example.com")
    assert_envelope(response, 200, "Success")
    assert get_user(email_client, user_id="ua")["user"]["email"] == "c@example.com"
    assert get_user(email_client, user_id="ub")["user"]["email"] == "b@example.com"


def test_new_email_is_matched_case_insensitively_and_stored_lower_cased(email_client):
    create(email_client, email="ann@example.com")
    assert_envelope(update_email(email_client, currentEmail="ANN@example.com", newEmail="Ann@New.com"), 200, "Success")
    assert get_user(email_client, "ann@new.com")["user"]["email"] == "ann@new.com"
    # The user's own email, in another case: nothing to change, not a conflict.
    assert_envelope(update_email(email_client, currentEmail="ann@new.com", newEmail="ANN@new.com"), 200, "Success")


def test_unknown_current_user_is_400_bad_params(email_client):
    body = assert_envelope(
        update_email(email_client, currentEmail="nobody@example.com", newEmail="n@example.com"), 400, "BadParams"
    )
    assert "does not exist" in body["msg"]
    assert_envelope(update_email(email_client, currentUserId="nobody", newEmail="n@example.com"), 400, "BadParams")
    assert all_users(email_client) == []


def test_new_email_of_another_user_is_409_email_already_exists(email_client):
    create(email_client, email="a@example.com", dataFields={"n": 1})
    create(email_client, email="b@example.com", dataFields={"n": 2})
    response = update_email(email_client, currentEmail="a@example.com", newEmail="B@example.com")
    body = assert_envelope(response, 409, "EmailAlreadyExists")
    assert "already exists" in body["msg"]
    assert get_user(email_client, "a@example.com")["user"]["dataFields"] == {"n": 1}
    assert get_user(email_client, "b@example.com")["user"]["dataFields"] == {"n": 2}


def test_malformed_values_are_400_with_the_matching_code(email_client):
    create(email_client, email="a@example.com", userId="u1")
    for new in ("not an email", "a@b", 42):
        assert_envelope(
            update_email(email_client, currentEmail="a@example.com", newEmail=new), 400, "InvalidEmailAddressError"
        )
    assert_envelope(
        update_email(email_client, currentEmail="a@@example.com", newEmail="n@example.com"),
        400,
        "InvalidEmailAddressError",
    )
    assert_envelope(
        update_email(email_client, currentUserId="x" * 53, newEmail="n@example.com"), 400, "InvalidUserIdError"
    )
    assert get_user(email_client, "a@example.com")["user"]["userId"] == "u1"


def test_missing_fields_are_400_bad_params(email_client):
    create(email_client, email="a@example.com")
    assert_envelope(update_email(email_client, currentEmail="a@example.com"), 400, "BadParams")
    assert_envelope(update_email(email_client, newEmail="n@example.com"), 400, "BadParams")
    assert_envelope(email_client.post("/api/users/updateEmail", json=["a@example.com"]), 400, "BadParams")
    assert_envelope(email_client.post("/api/users/updateEmail", content=b"{"), 400, "BadJsonBody")
    assert get_user(email_client, "a@example.com") != {}


def test_forgotten_users_and_emails(email_client):
    create(email_client, email="gone@example.com")
    create(email_client, email="here@example.com")
    email_client.post("/api/users/forget", json={"email": "gone@example.com"}).raise_for_status()
    # The current user was forgotten.
    response = update_email(email_client, currentEmail="gone@example.com", newEmail="n@example.com")
    assert_envelope(response, 409, "ForgottenUserError")
    # The new email was forgotten: Iterable answers EmailAlreadyExists.
    body = assert_envelope(
        update_email(email_client, currentEmail="here@example.com", newEmail="gone@example.com"),
        409,
        "EmailAlreadyExists",
    )
    assert "forgotten" in body["msg"]
    assert get_user(email_client, "here@example.com") != {}
    assert get_user(email_client, "gone@example.com") == {}


def test_update_email_has_no_rate_limit(tmp_path):
    # The contract states no rate limit for updateEmail. Scaled down, getFields (3/s) allows one
    # request at a time while updateEmail is never refused.
    server = start_server(tmp_path, rate_limits=True, rate_limit_scale=0.01)
    try:
        with httpx.Client(base_url=server.url, headers={"Api-Key": server.api_key}, timeout=10) as client:
            create(client, email="u0@example.com")
            assert [client.get("/api/users/getFields").status_code for _ in range(2)] == [200, 429]
            for i in range(20):
                response = update_email(client, currentEmail=f"u{i}@example.com", newEmail=f"u{i + 1}@example.com")
                assert_envelope(response, 200, "Success")
            assert get_user(client, "u20@example.com") != {}
    finally:
        server.stop()


# ---- hybrid projects


def test_hybrid_project_by_user_id_and_by_email(hybrid_client):
    create(hybrid_client, userId="u1")  # no email yet
    assert_envelope(update_email(hybrid_client, currentUserId="u1", newEmail="first@example.com"), 200, "Success")
    assert get_user(hybrid_client, user_id="u1")["user"]["email"] == "first@example.com"
    assert_envelope(
        update_email(hybrid_client, currentEmail="first@example.com", newEmail="second@example.com"), 200, "Success"
    )
    assert get_user(hybrid_client, "second@example.com")["user"]["userId"] == "u1"
    assert get_user(hybrid_client, "first@example.com") == {}


def test_hybrid_project_keeps_emails_unique(hybrid_client):
    create(hybrid_client, userId="u1", email="one@example.com")
    create(hybrid_client, userId="u2", email="two@example.com")
    assert_envelope(
        update_email(hybrid_client, currentUserId="u1", newEmail="two@example.com"), 409, "EmailAlreadyExists"
    )
    assert get_user(hybrid_client, user_id="u1")["user"]["email"] == "one@example.com"


def test_hybrid_project_refuses_a_forgotten_user_id(hybrid_client):
    create(hybrid_client, userId="u1", email="one@example.com")
    hybrid_client.post("/api/users/forget", json={"userId": "u1"}).raise_for_status()
    assert_envelope(
        update_email(hybrid_client, currentUserId="u1", newEmail="n@example.com"), 409, "ForgottenUserError"
    )


# ---- userID-based projects


def test_userid_project_names_the_user_by_user_id_only(userid_client):
    create(userid_client, userId="u1", email="one@example.com")
    response = update_email(userid_client, currentEmail="one@example.com", newEmail="n@example.com")
    body = assert_envelope(response, 400, "BadParams")
    assert "currentUserId" in body["msg"]
    # currentEmail does not identify anyone here: currentUserId names the user even when both are sent.
    response = update_email(
        userid_client, currentEmail="other@example.com", currentUserId="u1", newEmail="n@example.com"
    )
    assert_envelope(response, 200, "Success")
    assert get_user(userid_client, user_id="u1")["user"]["email"] == "n@example.com"


def test_userid_project_emails_need_not_be_unique(userid_client):
    create(userid_client, userId="u1", email="one@example.com")
    create(userid_client, userId="u2", email="two@example.com")
    assert_envelope(update_email(userid_client, currentUserId="u1", newEmail="two@example.com"), 200, "Success")
    assert get_user(userid_client, user_id="u1")["user"]["email"] == "two@example.com"
    assert get_user(userid_client, user_id="u2")["user"]["email"] == "two@example.com"
    assert_envelope(update_email(userid_client, currentUserId="nobody", newEmail="n@example.com"), 400, "BadParams")
