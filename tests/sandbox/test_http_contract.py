"""Auth, envelopes, body limits and malformed requests, over real HTTP."""

from __future__ import annotations

import httpx
import orjson

from smartingest.sandbox.app import MAX_BODY_BYTES

from .helpers import FAILED_USER_LISTS, assert_envelope, bulk, get_user


def test_missing_api_key_is_401_bad_api_key(email_server, email_client):
    with httpx.Client(base_url=email_server.url) as anonymous:
        response = anonymous.post("/api/users/update", json={"email": "a@example.com"})
    assert_envelope(response, 401, "BadApiKey")
    assert get_user(email_client, "a@example.com") == {}


def test_wrong_api_key_is_401_bad_api_key(email_server, email_client):
    with httpx.Client(base_url=email_server.url, headers={"Api-Key": "not-the-key"}) as wrong:
        assert_envelope(wrong.get("/api/users/getFields"), 401, "BadApiKey")
        assert_envelope(wrong.post("/api/users/bulkUpdate", json={"users": []}), 401, "BadApiKey")


def test_right_api_key_gets_success_envelope(email_client):
    response = email_client.post("/api/users/update", json={"email": "a@example.com", "dataFields": {"x": 1}})
    assert_envelope(response, 200, "Success")


def test_unknown_user_is_empty_object(email_client):
    assert get_user(email_client, "nobody@example.com") == {}
    assert email_client.get("/api/users/nobody@example.com").json() == {}
    assert get_user(email_client, user_id="nobody") == {}
    assert email_client.get("/api/users/byUserId", params={"userId": "nobody"}).json() == {}


def test_get_user_response_shape(email_client):
    email_client.post("/api/users/update", json={"email": "Ann@Example.com", "userId": "u1", "dataFields": {"n": 1}})
    expected = {"user": {"email": "ann@example.com", "userId": "u1", "dataFields": {"n": 1}}}
    assert get_user(email_client, "ann@example.com") == expected
    assert get_user(email_client, "ANN@example.com") == expected  # emails match case-insensitively
    assert email_client.get("/api/users/ann@example.com").json() == expected
    assert get_user(email_client, user_id="u1") == expected


def test_email_with_slash_in_path(email_client):
    email_client.post("/api/users/update", json={"email": "a/b@example.com", "dataFields": {"n": 1}})
    assert email_client.get("/api/users/a%2Fb@example.com").json()["user"]["email"] == "a/b@example.com"


def test_malformed_json_is_400_bad_json_body(email_client):
    response = email_client.post("/api/users/bulkUpdate", content=b'{"users": [')
    assert_envelope(response, 400, "BadJsonBody")
    assert_envelope(email_client.post("/api/users/update", content=b""), 400, "BadJsonBody")


def test_missing_required_fields_is_400_bad_params(email_client):
    assert_envelope(email_client.post("/api/users/bulkUpdate", json={}), 400, "BadParams")
    assert_envelope(email_client.post("/api/users/bulkUpdate", json={"users": [1]}), 400, "BadParams")
    assert_envelope(email_client.post("/api/users/update", json={"dataFields": {"x": 1}}), 400, "BadParams")
    assert_envelope(email_client.get("/api/users/getByEmail"), 400, "BadParams")


def test_body_over_4_mb_is_413_batch_too_large(email_client):
    users = [{"email": f"user{i}@example.com", "dataFields": {"pad": "x" * 1000}} for i in range(4200)]
    body = orjson.dumps({"users": users})
    assert len(body) > MAX_BODY_BYTES
    body_ = assert_envelope(email_client.post("/api/users/bulkUpdate", content=body), 413, "BatchTooLarge")
    assert "4194304" in body_["msg"]
    assert get_user(email_client, "user0@example.com") == {}


def test_body_of_exactly_4_mb_is_accepted(email_client):
    head, tail = b'{"users": [{"email": "big@example.com", "dataFields": {"pad": "', b'"}}]}'
    body = head + b"x" * (MAX_BODY_BYTES - len(head) - len(tail)) + tail
    assert len(body) == MAX_BODY_BYTES == 4 * 1024 * 1024
    response = email_client.post("/api/users/bulkUpdate", content=body)
    assert response.status_code == 200, response.text
    assert response.json()["successCount"] == 1


def test_chunked_body_over_4_mb_is_413(email_client):
    def chunks():
        yield b'{"users": [], "pad": "'
        for _ in range(5):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    response = email_client.post("/api/users/bulkUpdate", content=chunks())
    assert_envelope(response, 413, "BatchTooLarge")


def test_bulk_response_has_every_contract_list(email_client):
    body = bulk(email_client, [{"email": "a@example.com", "dataFields": {"n": 1}}]).json()
    assert body["successCount"] == 1 and body["failCount"] == 0
    assert set(body["failedUpdates"]) == FAILED_USER_LISTS
    assert body["invalidEmails"] == [] and body["invalidUserIds"] == []
    assert body["createdFields"] == ["n"]
    assert body["filteredOutFields"] == []


def test_unknown_api_route_is_404_envelope(email_client):
    assert_envelope(email_client.get("/api/nothing/here"), 404, "NotFound")
