"""The sandbox's routes and answers against Iterable's API contract (the Swagger file in shared/)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import httpx
import pytest

from smartingest.sandbox.app import API_ROUTES
from tests.iterable_contract import CONTRACT_PATH

CONTRACT = CONTRACT_PATH

pytestmark = pytest.mark.skipif(not CONTRACT.exists(), reason=f"the API contract is not at {CONTRACT}")


@cache
def contract() -> dict[str, Any]:
    return json.loads(CONTRACT.read_text())


def operation(method: str, path: str) -> dict[str, Any]:
    return contract()["paths"][path][method.lower()]


def problems(value: Any, schema: dict[str, Any], where: str = "body") -> list[str]:
    """Where `value` does not fit a Swagger 2.0 schema: required properties, no unknown ones, types."""
    if "$ref" in schema:
        schema = contract()["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not an object"]
        properties = schema.get("properties")
        found = [f"{where}.{name}: missing" for name in schema.get("required", []) if name not in value]
        if properties is not None:
            found += [f"{where}.{name}: not in the contract" for name in value if name not in properties]
            for name, item in value.items():
                if name in properties:
                    found += problems(item, properties[name], f"{where}.{name}")
        return found
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not an array"]
        return [p for i, item in enumerate(value) for p in problems(item, schema.get("items", {}), f"{where}[{i}]")]
    python = {"string": str, "integer": int, "boolean": bool, "number": (int, float)}.get(kind or "")
    if python is not None and (not isinstance(value, python) or (kind == "integer" and isinstance(value, bool))):
        return [f"{where}: {value!r} is not a {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    return []


def check(response: httpx.Response, method: str, path: str) -> None:
    """The response fits the contract's answer for its status: its schema and content type.

    An operation that declares `produces` answers one of those types; one that does not, with an
    object or array schema, answers JSON. A bare string schema without `produces` (lists' size) may
    be either: the contract does not say.
    """
    op = operation(method, path)
    answer = op["responses"].get(str(response.status_code))
    assert answer is not None, f"{method} {path}: the contract has no {response.status_code} answer"
    content_type = response.headers["content-type"].split(";")[0]
    schema = answer.get("schema")
    if "produces" in op:
        assert content_type in op["produces"], (content_type, op["produces"])
    elif schema is None or schema != {"type": "string"}:
        assert content_type == "application/json", content_type
    if schema is None:
        return
    if content_type == "application/json":
        assert problems(response.json(), schema) == []
    else:
        assert schema == {"type": "string"}


def test_every_served_route_is_in_the_contract():
    missing = [f"{m} {p}" for m, p, _, _ in API_ROUTES if m.lower() not in contract()["paths"].get(p, {})]
    assert missing == []


def test_event_answers_fit_the_contract(email_client):
    event = {"email": "a@example.com", "eventName": "e", "id": "1", "dataFields": {"n": 1}}
    check(email_client.post("/api/events/track", json=event), "POST", "/api/events/track")
    response = email_client.post(
        "/api/events/trackBulk", json={"events": [event, {"email": "bad", "eventName": "e"}, {"eventName": "e"}]}
    )
    check(response, "POST", "/api/events/trackBulk")
    check(email_client.get("/api/events/a@example.com"), "GET", "/api/events/{email}")
    check(email_client.get("/api/events/byUserId/nobody"), "GET", "/api/events/byUserId/{userId}")
    check(email_client.post("/api/events/track", json={"eventName": "e"}), "POST", "/api/events/track")


def test_list_answers_fit_the_contract(email_client):
    created = email_client.post("/api/lists", json={"name": "L", "description": "d"})
    check(created, "POST", "/api/lists")
    list_id = created.json()["listId"]
    check(email_client.get("/api/lists"), "GET", "/api/lists")
    subscribers = [{"email": "a@example.com", "dataFields": {"n": 1}}, {"email": "bad"}]
    subscribed = email_client.post("/api/lists/subscribe", json={"listId": list_id, "subscribers": subscribers})
    check(subscribed, "POST", "/api/lists/subscribe")
    check(email_client.get("/api/lists/getUsers", params={"listId": list_id}), "GET", "/api/lists/getUsers")
    check(email_client.get(f"/api/lists/{list_id}/size"), "GET", "/api/lists/{listId}/size")
    body = {"listId": list_id, "subscribers": [{"email": "a@example.com"}], "channelUnsubscribe": False}
    check(email_client.post("/api/lists/unsubscribe", json=body), "POST", "/api/lists/unsubscribe")
    check(email_client.delete(f"/api/lists/{list_id}"), "DELETE", "/api/lists/{listId}")
    check(email_client.delete(f"/api/lists/{list_id}"), "DELETE", "/api/lists/{listId}")


def test_forget_and_delete_answers_fit_the_contract(email_client):
    email_client.post("/api/users/update", json={"email": "a@example.com", "userId": "u1"})
    check(email_client.delete("/api/users/byUserId/u1"), "DELETE", "/api/users/byUserId/{userId}")
    check(email_client.delete("/api/users/a@example.com"), "DELETE", "/api/users/{email}")
    check(email_client.post("/api/users/forget", json={"email": "a@example.com"}), "POST", "/api/users/forget")
    check(email_client.post("/api/users/unforget", json={"email": "a@example.com"}), "POST", "/api/users/unforget")
