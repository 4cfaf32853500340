"""Custom events: events/track, events/trackBulk and the event reads, over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .helpers import all_users, assert_envelope, bulk, get_user

FAILED_EVENT_LISTS = {
    "forgottenEmails",
    "forgottenUserIds",
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
}


def track(client: httpx.Client, **event: Any) -> httpx.Response:
    return client.post("/api/events/track", json=event)


def track_bulk(client: httpx.Client, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/api/events/trackBulk", json={"events": events})
    assert response.status_code == 200, response.text
    return response.json()


def events_of(client: httpx.Client, email: str | None = None, user_id: str | None = None, **params: Any) -> list:
    path = f"/api/events/{email}" if email is not None else f"/api/events/byUserId/{user_id}"
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()["events"]


def set_project(client: httpx.Client, **settings: Any) -> dict[str, Any]:
    response = client.patch("/_sandbox/settings", json=settings)
    assert response.status_code == 200, response.text
    return response.json()


# ---- track


def test_track_answers_the_event_id_and_the_event_can_be_read_back(email_client):
    body = assert_envelope(
        track(email_client, email="a@example.com", eventName="purchase", id="ev-1", dataFields={"amount": 12.5}),
        200,
        "Success",
    )
    assert body["msg"] == "Event with id: ev-1 tracked."
    assert body["params"] == {"id": "ev-1"}
    [event] = events_of(email_client, "a@example.com")
    assert event["_id"] == "ev-1"
    assert event["eventName"] == "purchase"
    assert event["eventType"] == "customEvent"
    assert event["email"] == "a@example.com"
    assert event["dataFields"] == {"amount": 12.5}


def test_track_without_an_id_generates_one_per_event(email_client):
    first = track(email_client, email="a@example.com", eventName="open").json()["params"]["id"]
    second = track(email_client, email="a@example.com", eventName="open").json()["params"]["id"]
    assert first and second and first != second
    assert {e["_id"] for e in events_of(email_client, "a@example.com")} == {first, second}


def test_track_creates_the_user_by_email_without_touching_its_profile(email_client):
    track(email_client, email="New@Example.com", userId="u-1", eventName="signup", dataFields={"plan": "pro"})
    # The user is created by its email (matched case-insensitively); the event's data is not profile data
    # and the userId sent alongside identifies no one in an email-based project.
    assert get_user(email_client, "new@example.com") == {"user": {"email": "new@example.com", "dataFields": {}}}


def test_created_at_is_epoch_seconds_or_milliseconds(email_client):
    track(email_client, email="a@example.com", eventName="s", id="s", createdAt=1_700_000_000)
    track(email_client, email="a@example.com", eventName="ms", id="ms", createdAt=1_700_000_000_123)
    times = {e["_id"]: e["createdAt"] for e in events_of(email_client, "a@example.com")}
    assert times == {"s": "2023-11-14 22:13:20 +00:00", "ms": "2023-11-14 22:13:20 +00:00"}


def test_single_track_errors(email_client):
    assert_envelope(track(email_client, email="nope@", eventName="e"), 400, "InvalidEmailAddressError")
    assert_envelope(track(email_client, userId="", eventName="e"), 400, "InvalidUserIdError")
    assert_envelope(track(email_client, eventName="e"), 400, "BadParams")
    # An email-based project creates users from events by email only (TrackRequest has no preferUserId).
    assert_envelope(track(email_client, userId="nobody", eventName="e"), 400, "UnknownUserIdError")
    assert all_users(email_client) == []


@pytest.mark.parametrize(
    ("event", "path"),
    [
        ({"email": "a@example.com"}, "obj.eventName"),
        ({"email": "a@example.com", "eventName": 7}, "obj.eventName"),
        ({"email": "a@example.com", "eventName": "e", "createdAt": "yesterday"}, "obj.createdAt"),
        ({"email": "a@example.com", "eventName": "e", "createdAt": -1}, "obj.createdAt"),
        ({"email": "a@example.com", "eventName": "e", "dataFields": [1]}, "obj.dataFields"),
        ({"email": "a@example.com", "eventName": "e", "id": 12}, "obj.id"),
        ({"email": "a@example.com", "eventName": "e", "id": "x" * 513}, "obj.id"),
        ({"email": "a@example.com", "eventName": "e", "campaignId": "c"}, "obj.campaignId"),
        ({"email": "a@example.com", "eventName": "e", "createNewFields": "no"}, "obj.createNewFields"),
    ],
)
def test_a_track_request_off_its_schema_is_400_bad_json_body_naming_the_path(email_client, event, path):
    body = assert_envelope(email_client.post("/api/events/track", json=event), 400, "BadJsonBody")
    assert path in body["params"]
    assert all_users(email_client) == []


def test_an_event_id_of_512_bytes_is_accepted(email_client):
    event_id = "é" * 256  # 512 bytes in UTF-8
    assert_envelope(track(email_client, email="a@example.com", eventName="e", id=event_id), 200, "Success")
    assert [e["_id"] for e in events_of(email_client, "a@example.com")] == [event_id]


# ---- idempotent event ids


def test_a_resent_event_id_is_the_same_event_not_a_second_one(email_client):
    event = {"email": "a@example.com", "eventName": "purchase", "id": "order-1", "createdAt": 1_700_000_000}
    assert track_bulk(email_client, [{**event, "dataFields": {"amount": 1}}])["successCount"] == 1
    assert track_bulk(email_client, [{**event, "dataFields": {"amount": 2}}])["successCount"] == 1
    [stored] = events_of(email_client, "a@example.com")
    assert stored["dataFields"] == {"amount": 2}  # the resend replaced it
    assert email_client.get("/_sandbox/stats").json()["events"] == 1


def test_a_resend_without_created_at_keeps_the_stored_time(email_client):
    track(email_client, email="a@example.com", eventName="e", id="e1", createdAt=1_600_000_000)
    track(email_client, email="a@example.com", eventName="e", id="e1", dataFields={"n": 1})
    [stored] = events_of(email_client, "a@example.com")
    assert stored["createdAt"] == "2020-09-13 12:26:40 +00:00"
    assert stored["dataFields"] == {"n": 1}


def test_the_same_id_twice_in_one_request_is_one_event(email_client):
    body = track_bulk(
        email_client,
        [
            {"email": "a@example.com", "eventName": "e", "id": "dup", "dataFields": {"n": 1}},
            {"email": "a@example.com", "eventName": "e", "id": "dup", "dataFields": {"n": 2}},
        ],
    )
    assert body["successCount"] == 2
    assert [e["dataFields"] for e in events_of(email_client, "a@example.com")] == [{"n": 2}]


# ---- trackBulk partial failures


def test_track_bulk_answers_every_contract_list_and_applies_the_valid_events(email_client):
    bulk(email_client, [{"email": "forgotten@example.com"}])
    email_client.post("/api/users/forget", json={"email": "forgotten@example.com"}).raise_for_status()
    body = track_bulk(
        email_client,
        [
            {"email": "ok@example.com", "eventName": "e"},
            {"email": "not-an-email", "eventName": "e"},
            {"userId": "unknown-user", "eventName": "e"},
            {"email": "forgotten@example.com", "eventName": "e"},
            {"eventName": "e"},
        ],
    )
    assert set(body) == {
        "successCount",
        "failCount",
        "invalidEmails",
        "invalidUserIds",
        "disallowedEventNames",
        "filteredOutFields",
        "createdFields",
        "failedUpdates",
    }
    assert set(body["failedUpdates"]) == FAILED_EVENT_LISTS
    assert (body["successCount"], body["failCount"]) == (1, 4)
    failed = body["failedUpdates"]
    assert failed["invalidEmails"] == ["not-an-email", ""]
    assert failed["notFoundUserIds"] == ["unknown-user"]
    assert failed["forgottenEmails"] == ["forgotten@example.com"]
    # The deprecated lists: malformed emails, and userIds that were not found.
    assert body["invalidEmails"] == ["not-an-email", ""]
    assert body["invalidUserIds"] == ["unknown-user"]
    assert len(events_of(email_client, "ok@example.com")) == 1
    assert get_user(email_client, "forgotten@example.com") == {}


def test_a_user_id_alone_finds_an_existing_user_in_an_email_project(email_client):
    bulk(email_client, [{"email": "a@example.com", "userId": "u1"}])
    assert track_bulk(email_client, [{"userId": "u1", "eventName": "e"}])["successCount"] == 1
    assert [e["eventName"] for e in events_of(email_client, "a@example.com")] == ["e"]


def test_track_bulk_body_errors_fail_the_whole_request(email_client):
    assert_envelope(email_client.post("/api/events/trackBulk", json={}), 400, "BadParams")
    assert_envelope(email_client.post("/api/events/trackBulk", json={"events": {}}), 400, "BadJsonBody")
    response = email_client.post(
        "/api/events/trackBulk",
        json={"events": [{"email": "a@example.com", "eventName": "e"}, {"email": "b@example.com", "createdAt": "x"}]},
    )
    body = assert_envelope(response, 400, "BadJsonBody")
    assert set(body["params"]) == {"obj.events[1].eventName", "obj.events[1].createdAt"}
    assert all_users(email_client) == []


def test_an_empty_track_bulk_succeeds_with_nothing(email_client):
    body = track_bulk(email_client, [])
    assert (body["successCount"], body["failCount"]) == (0, 0)


# ---- disallowed event names


def test_disallowed_event_names_are_not_tracked(email_client):
    assert set_project(email_client, disallowed_event_names=["spam"])["disallowed_event_names"] == ["spam"]
    body = track_bulk(
        email_client,
        [
            {"email": "a@example.com", "eventName": "spam"},
            {"email": "a@example.com", "eventName": "spam"},
            {"email": "a@example.com", "eventName": "fine"},
        ],
    )
    assert body["disallowedEventNames"] == ["spam"]
    assert (body["successCount"], body["failCount"]) == (1, 2)
    single = assert_envelope(track(email_client, email="a@example.com", eventName="spam"), 200, "Success")
    assert "is disallowed from tracking" in single["msg"]
    assert [e["eventName"] for e in events_of(email_client, "a@example.com")] == ["fine"]
    email_client.post("/_sandbox/reset").raise_for_status()  # reset restores the start settings
    assert email_client.get("/_sandbox/settings").json()["disallowed_event_names"] == []


# ---- field types per event name


def test_field_types_are_fixed_per_event_name(email_client):
    track_bulk(email_client, [{"email": "a@example.com", "eventName": "purchase", "dataFields": {"total": 10}}])
    # Another event name may use the same field name with another type.
    body = track_bulk(email_client, [{"email": "a@example.com", "eventName": "review", "dataFields": {"total": "5*"}}])
    assert body["successCount"] == 1
    response = email_client.post(
        "/api/events/trackBulk",
        json={
            "events": [
                {"email": "b@example.com", "eventName": "review", "dataFields": {"total": "4*"}},
                {"email": "b@example.com", "eventName": "purchase", "dataFields": {"total": "ten"}},
            ]
        },
    )
    body = assert_envelope(response, 400, "RequestFieldsTypesMismatched")
    assert body["params"]["mismatchedFields"] == [
        {"eventName": "purchase", "field": "total", "fixedType": "long", "requestType": "string"}
    ]
    assert get_user(email_client, "b@example.com") == {}  # nothing of the request was applied
    assert_envelope(
        track(email_client, email="a@example.com", eventName="purchase", dataFields={"total": "ten"}),
        400,
        "RequestFieldsTypesMismatched",
    )


def test_two_events_of_one_name_disagreeing_on_a_new_field_is_a_mismatch(email_client):
    response = email_client.post(
        "/api/events/trackBulk",
        json={
            "events": [
                {"email": "a@example.com", "eventName": "e", "dataFields": {"x": 1}},
                {"email": "a@example.com", "eventName": "e", "dataFields": {"x": True}},
            ]
        },
    )
    assert_envelope(response, 400, "RequestFieldsTypesMismatched")


def test_created_and_filtered_out_fields(email_client):
    body = track_bulk(
        email_client, [{"email": "a@example.com", "eventName": "e", "dataFields": {"a": 1, "o": {"b": "x"}}}]
    )
    assert body["createdFields"] == ["a", "o", "o.b"]
    body = track_bulk(
        email_client,
        [{"email": "a@example.com", "eventName": "e", "createNewFields": False, "dataFields": {"a": 2, "c": 3}}],
    )
    assert body["filteredOutFields"] == ["c"] and body["createdFields"] == []
    assert events_of(email_client, "a@example.com")[0]["dataFields"] == {"a": 2}


def test_only_applied_events_fix_types(email_client):
    track_bulk(email_client, [{"email": "bad", "eventName": "e", "dataFields": {"x": "text"}}])
    assert (
        track_bulk(email_client, [{"email": "a@example.com", "eventName": "e", "dataFields": {"x": 1}}])["successCount"]
        == 1
    )


# ---- project types


def test_userid_project_events_need_a_user_id(userid_client):
    body = track_bulk(
        userid_client,
        [
            {"userId": "u1", "eventName": "e", "email": "shared@example.com"},
            {"email": "a@example.com", "eventName": "e"},
        ],
    )
    assert (body["successCount"], body["failCount"]) == (1, 1)
    assert body["failedUpdates"]["invalidUserIds"] == [""]
    assert get_user(userid_client, user_id="u1")["user"]["email"] == ""  # the email sent identifies no one
    [event] = events_of(userid_client, user_id="u1")
    assert event["userId"] == "u1" and "email" not in event
    assert_envelope(track(userid_client, email="a@example.com", eventName="e"), 400, "BadParams")


def test_hybrid_project_events_name_their_user_by_user_id_else_email(hybrid_client):
    bulk(hybrid_client, [{"email": "a@example.com", "userId": "u1"}])
    body = track_bulk(
        hybrid_client,
        [
            {"userId": "u1", "eventName": "by-user-id"},
            {"email": "a@example.com", "eventName": "by-email"},
            {"userId": "u2", "eventName": "creates-u2"},
            {"email": "new@example.com", "eventName": "creates-new"},
        ],
    )
    assert body["successCount"] == 4
    assert {e["eventName"] for e in events_of(hybrid_client, user_id="u1")} == {"by-user-id", "by-email"}
    assert [e["eventName"] for e in events_of(hybrid_client, user_id="u2")] == ["creates-u2"]
    assert [e["eventName"] for e in events_of(hybrid_client, "new@example.com")] == ["creates-new"]
    assert len(all_users(hybrid_client)) == 3


# ---- reads


def test_event_reads_are_most_recent_first_and_limited(email_client):
    track_bulk(
        email_client,
        [{"email": "a@example.com", "eventName": f"e{n}", "createdAt": 1_700_000_000 + n} for n in range(40)],
    )
    names = [e["eventName"] for e in events_of(email_client, "a@example.com")]
    assert names == [f"e{n}" for n in range(39, 9, -1)]  # 30 by default
    assert len(events_of(email_client, "a@example.com", limit=200)) == 40
    assert [e["eventName"] for e in events_of(email_client, "a@example.com", limit=1)] == ["e39"]


@pytest.mark.parametrize("limit", ["0", "201", "ten", "-1"])
def test_a_limit_outside_1_to_200_is_400(email_client, limit):
    response = email_client.get("/api/events/a@example.com", params={"limit": limit})
    assert_envelope(response, 400, "BadParams")
    assert_envelope(email_client.get("/api/events/byUserId/u1", params={"limit": limit}), 400, "BadParams")


def test_event_reads_of_unknown_or_malformed_users(email_client):
    assert events_of(email_client, "nobody@example.com") == []
    assert events_of(email_client, user_id="nobody") == []
    assert_envelope(email_client.get("/api/events/not@valid"), 400, "InvalidEmailAddressError")
    assert_envelope(email_client.get("/api/events/track"), 404, "NotFound")  # served for POST only


def test_events_follow_their_user_through_an_email_change(email_client):
    track(email_client, email="old@example.com", eventName="e")
    email_client.post(
        "/api/users/updateEmail", json={"currentEmail": "old@example.com", "newEmail": "new@example.com"}
    ).raise_for_status()
    assert [e["email"] for e in events_of(email_client, "new@example.com")] == ["new@example.com"]
    assert events_of(email_client, "old@example.com") == []
