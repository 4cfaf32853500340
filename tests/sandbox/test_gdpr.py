"""Deleting and forgetting users, what they take with them, and the daily cap of forget/unforget."""

from __future__ import annotations

import httpx
import pytest

from .helpers import api_client, assert_envelope, bulk, get_user, start_server


def forget(client: httpx.Client, **user: str) -> httpx.Response:
    return client.post("/api/users/forget", json=user)


def unforget(client: httpx.Client, **user: str) -> httpx.Response:
    return client.post("/api/users/unforget", json=user)


def track(client: httpx.Client, **event: str) -> httpx.Response:
    return client.post("/api/events/track", json={"eventName": "e", **event})


def event_count(client: httpx.Client) -> int:
    return client.get("/_sandbox/stats").json()["events"]


# ---- what deleting and forgetting take with them


REMOVALS = {
    "delete-by-email": lambda c: c.delete("/api/users/a@example.com"),
    "delete-by-user-id": lambda c: c.delete("/api/users/byUserId/u1"),
    "forget": lambda c: forget(c, email="a@example.com"),
}


@pytest.mark.parametrize("removal", list(REMOVALS))
def test_removing_a_user_removes_its_events(email_client, removal):
    bulk(email_client, [{"email": "a@example.com", "userId": "u1"}, {"email": "b@example.com"}])
    track(email_client, email="a@example.com")
    track(email_client, email="b@example.com")
    assert_envelope(REMOVALS[removal](email_client), 200, "Success")
    assert event_count(email_client) == 1
    assert email_client.get("/api/events/b@example.com").json()["events"][0]["email"] == "b@example.com"
    if removal != "forget":
        # A user made again with the same identifiers starts without the old events.
        bulk(email_client, [{"email": "a@example.com", "userId": "u1"}])
        assert email_client.get("/api/events/a@example.com").json() == {"events": []}
        assert email_client.get("/api/events/byUserId/u1").json() == {"events": []}


def test_forgotten_users_refuse_events_until_unforgotten(email_client):
    bulk(email_client, [{"email": "a@example.com", "userId": "u1"}])
    assert_envelope(forget(email_client, email="a@example.com"), 200, "Success")
    assert_envelope(track(email_client, email="a@example.com"), 400, "ForgottenUserError")
    # Every identifier of the forgotten user is refused, whichever names the user.
    body = email_client.post(
        "/api/events/trackBulk",
        json={
            "events": [
                {"eventName": "e", "userId": "u1"},
                {"eventName": "e", "email": "new@example.com", "userId": "u1"},
            ]
        },
    ).json()
    assert body["failedUpdates"]["forgottenUserIds"] == ["u1"]
    assert body["failCount"] == 2
    assert get_user(email_client, "new@example.com") == {}
    assert_envelope(unforget(email_client, email="a@example.com"), 200, "Success")
    assert_envelope(track(email_client, email="a@example.com"), 200, "Success")
    assert event_count(email_client) == 1


def test_hybrid_forget_by_user_id_forgets_the_email_too(hybrid_client):
    bulk(hybrid_client, [{"email": "a@example.com", "userId": "u1"}])
    assert_envelope(forget(hybrid_client, userId="u1"), 200, "Success")
    assert_envelope(track(hybrid_client, email="a@example.com"), 400, "ForgottenUserError")
    assert_envelope(track(hybrid_client, userId="u1"), 400, "ForgottenUserError")
    assert_envelope(unforget(hybrid_client, email="a@example.com"), 200, "Success")  # either identifier unforgets
    assert_envelope(track(hybrid_client, userId="u1"), 200, "Success")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "BadParams"),
        ({"userId": "u1"}, "BadParams"),  # email-based projects forget by email
        ({"email": "not-an-email"}, "InvalidEmailAddressError"),
    ],
)
def test_forget_and_unforget_errors(email_client, body, code):
    assert_envelope(email_client.post("/api/users/forget", json=body), 400, code)
    assert_envelope(email_client.post("/api/users/unforget", json=body), 400, code)


# ---- the daily cap


def test_the_daily_cap_refuses_forget_and_unforget_beyond_it(email_client):
    assert email_client.get("/_sandbox/settings").json()["gdpr_daily_cap"] == 1000  # Iterable's cap
    assert email_client.patch("/_sandbox/settings", json={"gdpr_daily_cap": 2}).json()["gdpr_daily_cap"] == 2
    assert_envelope(forget(email_client, email="a@example.com"), 200, "Success")
    assert_envelope(forget(email_client, email="b@example.com"), 200, "Success")
    refused = assert_envelope(forget(email_client, email="c@example.com"), 429, "RateLimitExceeded")
    assert "daily cap of 2" in refused["msg"]
    hashed = email_client.get("/api/users/forgotten").json()["hashedEmails"]
    assert len(hashed) == 2  # the refused request forgot no one
    # unforget has a cap of its own.
    assert_envelope(unforget(email_client, email="a@example.com"), 200, "Success")
    assert_envelope(unforget(email_client, email="b@example.com"), 200, "Success")
    assert_envelope(unforget(email_client, email="c@example.com"), 429, "RateLimitExceeded")
    # Other endpoints are not capped.
    assert bulk(email_client, [{"email": "d@example.com"}]).status_code == 200
    # The reset restores the start settings and forgets the day's requests.
    email_client.post("/_sandbox/reset").raise_for_status()
    assert email_client.get("/_sandbox/settings").json()["gdpr_daily_cap"] == 1000
    assert_envelope(forget(email_client, email="c@example.com"), 200, "Success")


def test_the_daily_cap_is_a_sandbox_setting_and_holds_without_rate_limits(tmp_path):
    server = start_server(tmp_path, gdpr_daily_cap=1)  # rate limits off
    try:
        with api_client(server) as client:
            assert_envelope(forget(client, email="a@example.com"), 200, "Success")
            assert_envelope(forget(client, email="b@example.com"), 429, "RateLimitExceeded")
            client.patch("/_sandbox/settings", json={"gdpr_daily_cap": None}).raise_for_status()
            assert_envelope(forget(client, email="b@example.com"), 200, "Success")
    finally:
        server.stop()


def test_invalid_project_settings_are_400(email_client):
    assert email_client.patch("/_sandbox/settings", json={"gdpr_daily_cap": -1}).status_code == 400
    assert email_client.patch("/_sandbox/settings", json={"disallowed_event_names": "spam"}).status_code == 400
    assert email_client.patch("/_sandbox/settings", json={"nonsense": 1}).status_code == 400
    assert email_client.get("/_sandbox/settings").json() == {"gdpr_daily_cap": 1000, "disallowed_event_names": []}
