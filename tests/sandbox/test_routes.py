"""Unknown paths under /api/users and malformed emails in the path, over real HTTP."""

from __future__ import annotations

import pytest

from .helpers import assert_envelope


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/users/getSentMessages"),  # an Iterable endpoint the sandbox does not serve
        ("GET", "/api/users/noSuchEndpoint"),
        ("GET", "/api/users/update"),  # served, but for POST
        ("DELETE", "/api/users/forget"),
        ("DELETE", "/api/users/getFields"),
        ("GET", "/api/users/some/nested/path"),
        ("POST", "/api/users/a@example.com"),
    ],
)
def test_an_unknown_path_under_users_is_404_not_found(email_client, method, path):
    body = assert_envelope(email_client.request(method, path), 404, "NotFound")
    assert path in body["msg"]
    # Not taken for a user lookup or deletion: no /api route counted the request.
    assert email_client.get("/_sandbox/stats").json()["requests"] == {}


@pytest.mark.parametrize(
    "email",
    ["a b@example.com", "@example.com", "ann@", "ann@localhost", "ann@@example.com", "ann@exa mple.com"],
)
def test_a_malformed_email_in_the_path_is_400_invalid_email(email_client, email):
    body = assert_envelope(email_client.get(f"/api/users/{email}"), 400, "InvalidEmailAddressError")
    assert email in body["msg"]
    assert_envelope(email_client.delete(f"/api/users/{email}"), 400, "InvalidEmailAddressError")
    assert_envelope(email_client.get("/api/users/getByEmail", params={"email": email}), 400, "InvalidEmailAddressError")


def test_a_malformed_email_in_the_query_is_400_invalid_email(email_client):
    response = email_client.get("/api/users/getByEmail", params={"email": "not-an-email"})
    assert_envelope(response, 400, "InvalidEmailAddressError")


def test_a_well_formed_unknown_email_is_still_no_user(email_client):
    assert email_client.get("/api/users/nobody@example.com").json() == {}
    assert_envelope(email_client.delete("/api/users/nobody@example.com"), 400, "UnknownEmailError")
