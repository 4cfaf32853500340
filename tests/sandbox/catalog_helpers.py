"""Helpers of the catalog tests: create catalogs, write and read items over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from .helpers import assert_envelope


def create_catalog(client: httpx.Client, name: str) -> dict[str, Any]:
    """Create a catalog; the 201 envelope's body."""
    return assert_envelope(client.post(f"/api/catalogs/{name}"), 201, "Success")


def write_items(
    client: httpx.Client, catalog: str, documents: dict[str, Any], replace_fields_only: bool = False
) -> httpx.Response:
    """POST /api/catalogs/{catalog}/items with these documents."""
    body = {"documents": documents, "replaceUploadedFieldsOnly": replace_fields_only}
    return client.post(f"/api/catalogs/{catalog}/items", json=body)


def item_value(client: httpx.Client, catalog: str, item_id: str) -> dict[str, Any] | None:
    """The stored value of an item, or None when GET answers 404."""
    response = client.get(f"/api/catalogs/{catalog}/items/{item_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.json()["value"]


def field_mappings(client: httpx.Client, catalog: str) -> dict[str, Any]:
    response = client.get(f"/api/catalogs/{catalog}/fieldMappings")
    assert response.status_code == 200, response.text
    return response.json()


def set_mappings(client: httpx.Client, catalog: str, mappings: list[dict[str, Any]]) -> httpx.Response:
    return client.put(f"/api/catalogs/{catalog}/fieldMappings", json={"mappingsUpdates": mappings})
