"""getFields lists Iterable's system fields next to the data fields; system field types hold, over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import all_users, assert_envelope, bulk, data_fields, get_user, system_fields


@pytest.mark.parametrize("project_type", ["email", "userid", "hybrid"])
def test_a_fresh_project_lists_iterable_system_fields(request, project_type):
    client = request.getfixturevalue(f"{project_type}_client")
    response = client.get("/api/users/getFields")
    assert response.status_code == 200
    fields = response.json()["fields"]
    assert fields == system_fields(project_type)
    assert fields["email"] == fields["userId"] == "string"
    assert fields["signupDate"] == fields["profileUpdatedAt"] == "date"
    # Static-list subscriptions: emailListIds in email-based projects, userListIds in the others.
    assert ("emailListIds" in fields) == (project_type == "email")
    assert ("userListIds" in fields) == (project_type != "email")


def test_data_fields_are_listed_next_to_the_system_fields(email_client):
    body = bulk(
        email_client,
        [{"email": "a@example.com", "dataFields": {"plan": "gold", "address": {"city": "Paris"}}}],
    ).json()
    assert body["createdFields"] == ["plan", "address", "address.city"]
    fields = email_client.get("/api/users/getFields").json()["fields"]
    assert fields == {**system_fields("email"), "plan": "string", "address": "object", "address.city": "string"}


def test_values_of_system_fields_that_fit_their_types_are_accepted_and_create_no_field(email_client):
    sent = {
        "signupDate": "2024-01-31 13:45:00 +00:00",
        "profileUpdatedAt": "2024-02-01T08:00:00Z",
        "signupSource": "API",
        "phoneNumber": "+15555550100",
        "phoneNumberDetails": {"carrier": "Acme", "updatedAt": "2024-02-01"},
        "emailListIds": [12, 34],
        "unsubscribedChannelIds": [],
        "unsubscribedMessageTypeIds": [7],
        "devices": [{"token": "abc", "platform": "APNS", "endpointEnabled": True}],
    }
    body = bulk(email_client, [{"email": "a@example.com", "dataFields": sent}]).json()
    assert body["successCount"] == 1, body
    assert body["createdFields"] == []
    assert get_user(email_client, "a@example.com")["user"]["dataFields"] == sent  # stored as sent
    assert data_fields(email_client) == {}


@pytest.mark.parametrize(
    ("data", "field", "fixed", "got"),
    [
        ({"signupDate": "yesterday"}, "signupDate", "date", "string"),
        ({"signupDate": 1706708700000}, "signupDate", "date", "long"),
        ({"profileUpdatedAt": True}, "profileUpdatedAt", "date", "boolean"),
        ({"phoneNumber": 15555550100}, "phoneNumber", "string", "long"),
        ({"phoneNumberDetails": "Acme"}, "phoneNumberDetails", "object", "string"),
        ({"phoneNumberDetails": {"updatedAt": "soon"}}, "phoneNumberDetails.updatedAt", "date", "string"),
        ({"emailListIds": ["12"]}, "emailListIds", "long", "string"),
        ({"emailListIds": [1.5]}, "emailListIds", "long", "double"),
        ({"unsubscribedChannelIds": {"id": 1}}, "unsubscribedChannelIds", "long", "object"),
        ({"devices": [{"endpointEnabled": "yes"}]}, "devices.endpointEnabled", "boolean", "string"),
        ({"devices": ["token"]}, "devices", "object", "string"),
    ],
)
def test_a_value_that_does_not_fit_a_system_field_rejects_the_request(email_client, data, field, fixed, got):
    users = [
        {"email": "ok@example.com", "dataFields": {"plan": "gold"}},
        {"email": "a@example.com", "dataFields": data},
    ]
    body = assert_envelope(bulk(email_client, users), 400, "RequestFieldsTypesMismatched")
    assert body["params"]["mismatchedFields"] == [{"field": field, "fixedType": fixed, "requestType": got}]
    assert all_users(email_client) == []
    assert data_fields(email_client) == {}


def test_system_fields_depend_on_the_project_type(hybrid_client):
    # In a hybrid project static lists live in userListIds; emailListIds is an ordinary data field.
    ok = bulk(hybrid_client, [{"email": "a@example.com", "dataFields": {"emailListIds": ["x"]}}]).json()
    assert ok["successCount"] == 1 and ok["createdFields"] == ["emailListIds"]
    assert data_fields(hybrid_client, "hybrid") == {"emailListIds": "array"}
    body = assert_envelope(
        bulk(hybrid_client, [{"email": "b@example.com", "dataFields": {"userListIds": ["x"]}}]),
        400,
        "RequestFieldsTypesMismatched",
    )
    assert body["params"]["mismatchedFields"] == [
        {"field": "userListIds", "fixedType": "long", "requestType": "string"}
    ]


def test_create_new_fields_false_keeps_system_fields(email_client):
    data: dict[str, Any] = {
        "signupDate": "2024-01-31",
        "devices": [{"token": "abc", "brandNew": 1}],
        "brandNew": 1,
    }
    body = bulk(email_client, [{"email": "a@example.com", "dataFields": data}], createNewFields=False).json()
    assert body["successCount"] == 1, body
    assert body["filteredOutFields"] == ["devices.brandNew", "brandNew"]
    assert get_user(email_client, "a@example.com")["user"]["dataFields"] == {
        "signupDate": "2024-01-31",
        "devices": [{"token": "abc"}],
    }
    assert data_fields(email_client) == {}


def test_reset_keeps_the_system_fields(email_client):
    bulk(email_client, [{"email": "a@example.com", "dataFields": {"plan": "gold"}}])
    email_client.post("/_sandbox/reset").raise_for_status()
    assert email_client.get("/api/users/getFields").json() == {"fields": system_fields("email")}
