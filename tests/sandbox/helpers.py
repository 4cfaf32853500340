"""Helpers of the sandbox tests: start servers, talk to them, check envelopes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from smartingest.sandbox import SandboxServer, SandboxSettings
from smartingest.sandbox.envelope import API_CODES

API_KEY = "test-key-0123456789"

# What a real Iterable project without data fields answers to GET /api/users/getFields (email-based;
# the other project types keep static-list subscriptions in userListIds instead of emailListIds).
ITERABLE_SYSTEM_FIELDS = {
    "devices": "object",
    "devices.appBuild": "string",
    "devices.appPackageName": "string",
    "devices.appVersion": "string",
    "devices.applicationName": "string",
    "devices.deviceId": "string",
    "devices.endpointEnabled": "boolean",
    "devices.iterableSdkVersion": "string",
    "devices.platform": "string",
    "devices.platformEndpoint": "string",
    "devices.token": "string",
    "email": "string",
    "emailListIds": "long",
    "itblInternal.emailDomain": "string",
    "phoneNumber": "string",
    "phoneNumberDetails": "object",
    "phoneNumberDetails.carrier": "string",
    "phoneNumberDetails.countryCodeISO": "string",
    "phoneNumberDetails.lineType": "string",
    "phoneNumberDetails.updatedAt": "date",
    "profileUpdatedAt": "date",
    "signupDate": "date",
    "signupSource": "string",
    "unsubscribedChannelIds": "long",
    "unsubscribedMessageTypeIds": "long",
    "userId": "string",
}


# The lists of users/bulkUpdate's failedUpdates, as the contract names them (spelled out, not imported
# from the sandbox: a list the sandbox lost must fail the tests).
FAILED_USER_LISTS = {
    "conflictEmails",
    "conflictUserIds",
    "forgottenEmails",
    "forgottenUserIds",
    "invalidDataEmails",
    "invalidDataUserIds",
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
}


def system_fields(project_type: str) -> dict[str, str]:
    """The system fields getFields lists in a fresh project of this type."""
    if project_type == "email":
        return dict(ITERABLE_SYSTEM_FIELDS)
    fields = {k: v for k, v in ITERABLE_SYSTEM_FIELDS.items() if k != "emailListIds"}
    return {**fields, "userListIds": "long"}


def start_server(data_dir: Path, **overrides: Any) -> SandboxServer:
    """A started sandbox on a free port, with rate limits off unless asked for."""
    options: dict[str, Any] = {"port": 0, "api_key": API_KEY, "data_dir": data_dir, "rate_limits": False}
    options.update(overrides)
    return SandboxServer(SandboxSettings(**options)).start()


def api_client(server: SandboxServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Api-Key": server.api_key}, timeout=10)


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check an IterableApiResponse: HTTP status, code from the contract's enum, msg, params object."""
    body = response.json()
    assert response.status_code == status, body
    assert body["code"] == code, body
    assert code in API_CODES
    assert isinstance(body["msg"], str)
    assert isinstance(body.get("params", {}), dict)
    return body


def bulk(client: httpx.Client, users: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    return client.post("/api/users/bulkUpdate", json={"users": users, **extra})


def get_user(client: httpx.Client, email: str | None = None, user_id: str | None = None) -> dict[str, Any]:
    """The `UserResponse` for an email or a userId (`{}` when there is no such user)."""
    if email is not None:
        response = client.get("/api/users/getByEmail", params={"email": email})
    else:
        response = client.get(f"/api/users/byUserId/{user_id}")
    assert response.status_code == 200, response.text
    return response.json()


def all_users(client: httpx.Client) -> list[dict[str, Any]]:
    """Every stored user, through the admin listing."""
    users: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client.get("/_sandbox/users", params={"after": after, "limit": 1000}).json()
        users.extend(page["users"])
        if page["next_after"] is None:
            return users
        after = page["next_after"]


def data_fields(client: httpx.Client, project_type: str = "email") -> dict[str, str]:
    """The getFields answer without the project's system fields."""
    response = client.get("/api/users/getFields")
    assert response.status_code == 200, response.text
    system = system_fields(project_type)
    return {path: kind for path, kind in response.json()["fields"].items() if path not in system}
