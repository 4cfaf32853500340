"""Catalog items: bulk and single writes, replace vs update, deletes, reads and paging, ids and sizes."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest

from smartingest.sandbox.catalogs import MAX_ITEM_BYTES

from .catalog_helpers import create_catalog, item_value, write_items
from .helpers import assert_envelope


@pytest.fixture
def bikes(email_client):
    """A client of a fresh sandbox with an empty catalog `Bikes`."""
    create_catalog(email_client, "Bikes")
    return email_client


def padded(size: int) -> dict[str, str]:
    """An item value whose compact JSON is exactly `size` bytes."""
    overhead = len(orjson.dumps({"pad": ""}))
    return {"pad": "x" * (size - overhead)}


# ---- bulk write


def test_bulk_write_is_answered_as_received_202_and_applied(bikes):
    response = write_items(bikes, "Bikes", {"b1": {"name": "Roadster", "wheels": 2}, "b2": {"name": "Trike"}})
    body = assert_envelope(response, 202, "Success")
    assert "2" in body["msg"]
    # Iterable applies bulk writes later; the sandbox applies them before answering.
    assert item_value(bikes, "Bikes", "b1") == {"name": "Roadster", "wheels": 2}
    assert item_value(bikes, "Bikes", "b2") == {"name": "Trike"}


def test_bulk_write_replaces_whole_items_unless_asked_otherwise(bikes):
    write_items(bikes, "Bikes", {"b1": {"name": "Roadster", "wheels": 2, "specs": {"gears": 21, "kg": 9}}})
    write_items(bikes, "Bikes", {"b1": {"wheels": 3, "specs": {"gears": 3}}}, replace_fields_only=False)
    assert item_value(bikes, "Bikes", "b1") == {"wheels": 3, "specs": {"gears": 3}}


def test_replace_uploaded_fields_only_keeps_the_other_fields(bikes):
    write_items(bikes, "Bikes", {"b1": {"name": "Roadster", "wheels": 2, "specs": {"gears": 21, "kg": 9}}})
    response = write_items(bikes, "Bikes", {"b1": {"wheels": 3, "specs": {"gears": 3}}}, replace_fields_only=True)
    assert response.status_code == 202
    # Top-level fields sent replace theirs (a nested object whole); fields not sent stay.
    assert item_value(bikes, "Bikes", "b1") == {"name": "Roadster", "wheels": 3, "specs": {"gears": 3}}


def test_replace_uploaded_fields_only_creates_missing_items(bikes):
    write_items(bikes, "Bikes", {"new": {"name": "Unicycle"}}, replace_fields_only=True)
    assert item_value(bikes, "Bikes", "new") == {"name": "Unicycle"}


def test_null_values_are_stored_as_null(bikes):
    write_items(bikes, "Bikes", {"b1": {"name": "Roadster", "colour": "red"}})
    write_items(bikes, "Bikes", {"b1": {"colour": None}}, replace_fields_only=True)
    assert item_value(bikes, "Bikes", "b1") == {"name": "Roadster", "colour": None}


@pytest.mark.parametrize(
    "body",
    [
        {"replaceUploadedFieldsOnly": False},
        {"documents": {"b1": {}}},  # replaceUploadedFieldsOnly is required by the contract
        {"documents": [], "replaceUploadedFieldsOnly": False},
        {"documents": {"b1": {}}, "replaceUploadedFieldsOnly": "yes"},
        [],
    ],
)
def test_a_malformed_bulk_body_is_400_bad_params(bikes, body):
    assert_envelope(bikes.post("/api/catalogs/Bikes/items", json=body), 400, "BadParams")
    assert item_value(bikes, "Bikes", "b1") is None


def test_a_body_that_is_not_json_is_400_bad_json_body(bikes):
    assert_envelope(bikes.post("/api/catalogs/Bikes/items", content=b'{"documents": {'), 400, "BadJsonBody")


def test_1000_items_pass_and_1001_are_400_batch_too_large(bikes):
    documents = {f"b{n}": {"n": n} for n in range(1000)}
    assert write_items(bikes, "Bikes", documents).status_code == 202
    assert bikes.get("/api/catalogs/Bikes/items").json()["totalItemsCount"] == 1000
    documents = {f"c{n}": {"n": n} for n in range(1001)}
    body = assert_envelope(write_items(bikes, "Bikes", documents), 400, "BatchTooLarge")
    assert body["params"] == {"maxItems": 1000, "items": 1001}
    assert item_value(bikes, "Bikes", "c0") is None


@pytest.mark.parametrize("item_id", ["with_underscore", "with space", "dot.ted", "x" * 256, "", "é"])
def test_a_bad_item_id_refuses_the_whole_bulk_request(bikes, item_id):
    response = write_items(bikes, "Bikes", {"good-1": {"n": 1}, item_id: {"n": 2}})
    body = assert_envelope(response, 400, "BadParams")
    assert body["params"]["invalidItemIds"] == [item_id]
    assert item_value(bikes, "Bikes", "good-1") is None


def test_item_ids_are_case_sensitive(bikes):
    write_items(bikes, "Bikes", {"B1": {"n": 1}, "b1": {"n": 2}})
    assert item_value(bikes, "Bikes", "B1") == {"n": 1}
    assert item_value(bikes, "Bikes", "b1") == {"n": 2}
    assert item_value(bikes, "Bikes", "x" * 255) is None  # the longest id is an id


def test_every_bad_item_of_a_request_is_named_at_once(bikes):
    documents = {
        "ok": {"n": 1},
        "bad_id": {"n": 1},
        "not-an-object": [1, 2],
        "dotted": {"a.b": 1, "nested": {"": 2}},
        "big": padded(MAX_ITEM_BYTES + 1),
    }
    body = assert_envelope(write_items(bikes, "Bikes", documents), 400, "BadParams")
    assert body["params"]["invalidItemIds"] == ["bad_id"]
    assert body["params"]["invalidItemValues"] == ["not-an-object"]
    assert body["params"]["invalidFieldNames"] == [
        {"itemId": "dotted", "field": "a.b"},
        {"itemId": "dotted", "field": "nested."},
    ]
    assert body["params"]["oversizedItemIds"] == ["big"]
    assert item_value(bikes, "Bikes", "ok") is None


def test_an_item_of_exactly_30_kb_passes_and_one_byte_more_is_refused(bikes):
    assert write_items(bikes, "Bikes", {"edge": padded(MAX_ITEM_BYTES)}).status_code == 202
    item = bikes.get("/api/catalogs/Bikes/items/edge").json()
    assert item["size"] == MAX_ITEM_BYTES == 30 * 1024
    body = assert_envelope(write_items(bikes, "Bikes", {"over": padded(MAX_ITEM_BYTES + 1)}), 400, "BadParams")
    assert body["params"] == {"oversizedItemIds": ["over"], "maxItemBytes": MAX_ITEM_BYTES}


def test_an_update_that_would_make_an_item_over_30_kb_is_refused(bikes):
    write_items(bikes, "Bikes", {"b1": {"a": "x" * 20_000}})
    response = write_items(bikes, "Bikes", {"b1": {"b": "y" * 20_000}}, replace_fields_only=True)
    body = assert_envelope(response, 400, "BadParams")
    assert body["params"]["oversizedItemIds"] == ["b1"]
    assert item_value(bikes, "Bikes", "b1") == {"a": "x" * 20_000}


# ---- single-item writes


def test_put_creates_or_replaces_an_item(bikes):
    response = bikes.put("/api/catalogs/Bikes/items/b1", json={"value": {"name": "Roadster", "wheels": 2}})
    assert_envelope(response, 202, "Success")
    assert item_value(bikes, "Bikes", "b1") == {"name": "Roadster", "wheels": 2}
    bikes.put("/api/catalogs/Bikes/items/b1", json={"value": {"wheels": 3}})
    assert item_value(bikes, "Bikes", "b1") == {"wheels": 3}


def test_patch_creates_or_updates_top_level_fields(bikes):
    response = bikes.patch("/api/catalogs/Bikes/items/b1", json={"update": {"name": "Roadster", "specs": {"kg": 9}}})
    assert_envelope(response, 202, "Success")
    bikes.patch("/api/catalogs/Bikes/items/b1", json={"update": {"wheels": 2, "specs": {"gears": 21}}})
    assert item_value(bikes, "Bikes", "b1") == {"name": "Roadster", "wheels": 2, "specs": {"gears": 21}}


@pytest.mark.parametrize(("method", "key"), [("PUT", "value"), ("PATCH", "update")])
def test_single_item_writes_check_ids_bodies_and_sizes(bikes, method, key):
    path = "/api/catalogs/Bikes/items"
    body = assert_envelope(bikes.request(method, f"{path}/bad_id", json={key: {"n": 1}}), 400, "BadParams")
    assert body["params"] == {"invalidItemIds": ["bad_id"]}
    assert_envelope(bikes.request(method, f"{path}/b1", json={"other": {"n": 1}}), 400, "BadParams")
    assert_envelope(bikes.request(method, f"{path}/b1", json={key: [1]}), 400, "BadParams")
    body = assert_envelope(bikes.request(method, f"{path}/b1", json={key: {"a.b": 1}}), 400, "BadParams")
    assert body["params"]["invalidFieldNames"] == [{"itemId": "b1", "field": "a.b"}]
    response = bikes.request(method, f"{path}/b1", json={key: padded(MAX_ITEM_BYTES + 1)})
    assert assert_envelope(response, 400, "BadParams")["params"]["oversizedItemIds"] == ["b1"]
    assert item_value(bikes, "Bikes", "b1") is None


# ---- deletes


def test_delete_item_answers_202_and_removes_it(bikes):
    write_items(bikes, "Bikes", {"b1": {"n": 1}, "b2": {"n": 2}})
    assert_envelope(bikes.delete("/api/catalogs/Bikes/items/b1"), 202, "Success")
    assert item_value(bikes, "Bikes", "b1") is None
    assert item_value(bikes, "Bikes", "b2") == {"n": 2}
    # Deleting what is not there is no error (the delete is idempotent).
    assert_envelope(bikes.delete("/api/catalogs/Bikes/items/b1"), 202, "Success")
    assert_envelope(bikes.delete("/api/catalogs/Bikes/items/bad_id"), 400, "BadParams")


def test_bulk_delete_removes_the_listed_items(bikes):
    write_items(bikes, "Bikes", {f"b{n}": {"n": n} for n in range(5)})
    response = bikes.request("DELETE", "/api/catalogs/Bikes/items", json={"itemIds": ["b1", "b3", "unknown"]})
    assert_envelope(response, 202, "Success")
    listed = bikes.get("/api/catalogs/Bikes/items").json()["catalogItemsWithProperties"]
    assert [item["itemId"] for item in listed] == ["b0", "b2", "b4"]


@pytest.mark.parametrize("body", [{}, {"itemIds": "b1"}, {"itemIds": [1]}, {"itemIds": ["b1", "bad_id"]}])
def test_a_bad_bulk_delete_is_400_and_deletes_nothing(bikes, body):
    write_items(bikes, "Bikes", {"b1": {"n": 1}})
    assert_envelope(bikes.request("DELETE", "/api/catalogs/Bikes/items", json=body), 400, "BadParams")
    assert item_value(bikes, "Bikes", "b1") == {"n": 1}


# ---- reads


def test_get_item_answers_catalog_item_with_properties(bikes):
    before = datetime.now().astimezone()
    write_items(bikes, "Bikes", {"b1": {"name": "Roadster", "price": 9.5}})
    item = bikes.get("/api/catalogs/Bikes/items/b1").json()
    assert set(item) == {"catalogName", "itemId", "lastModified", "size", "value"}
    assert (item["catalogName"], item["itemId"]) == ("Bikes", "b1")
    assert item["value"] == {"name": "Roadster", "price": 9.5}
    assert item["size"] == len(orjson.dumps(item["value"]))
    assert item["lastModified"].endswith("Z")  # the contract's date-time, in UTC
    modified = datetime.fromisoformat(item["lastModified"].replace("Z", "+00:00"))
    assert abs((modified - before).total_seconds()) < 60


def test_get_of_an_unknown_item_is_404_and_of_a_bad_id_400(bikes):
    body = assert_envelope(bikes.get("/api/catalogs/Bikes/items/nothing"), 404, "NotFound")
    assert body["params"] == {"catalogName": "Bikes", "itemId": "nothing"}
    assert_envelope(bikes.get("/api/catalogs/Bikes/items/bad_id"), 400, "BadParams")


def test_items_are_listed_by_id_in_pages(bikes, email_server):
    write_items(bikes, "Bikes", {f"b{n:02}": {"n": n} for n in range(25)})
    first = bikes.get("/api/catalogs/Bikes/items").json()
    assert [i["itemId"] for i in first["catalogItemsWithProperties"]] == [f"b{n:02}" for n in range(10)]
    assert first["totalItemsCount"] == 25
    assert first["nextPageUrl"].startswith(email_server.url)
    assert "previousPageUrl" not in first
    last = bikes.get("/api/catalogs/Bikes/items", params={"page": 3}).json()
    assert [i["itemId"] for i in last["catalogItemsWithProperties"]] == [f"b{n:02}" for n in range(20, 25)]
    assert "nextPageUrl" not in last
    assert bikes.get(last["previousPageUrl"]).json()["catalogItemsWithProperties"][0]["itemId"] == "b10"
    every = bikes.get("/api/catalogs/Bikes/items", params={"pageSize": 1000}).json()
    assert len(every["catalogItemsWithProperties"]) == 25


def test_items_are_ordered_by_a_field(bikes):
    write_items(bikes, "Bikes", {"a": {"price": 3}, "b": {"price": 1}, "c": {"price": 2}, "d": {"name": "no price"}})

    def ids(**params) -> list[str]:
        page = bikes.get("/api/catalogs/Bikes/items", params=params).json()
        return [i["itemId"] for i in page["catalogItemsWithProperties"]]

    assert ids(orderBy="price") == ["a", "c", "b", "d"]  # descending by default, items without it last
    assert ids(orderBy="price", sortAscending="true") == ["b", "c", "a", "d"]
    next_page = bikes.get("/api/catalogs/Bikes/items", params={"orderBy": "price", "pageSize": 2}).json()["nextPageUrl"]
    assert [i["itemId"] for i in bikes.get(next_page).json()["catalogItemsWithProperties"]] == ["b", "d"]


@pytest.mark.parametrize(
    "params", [{"page": 0}, {"pageSize": 1001}, {"pageSize": "ten"}, {"sortAscending": "maybe"}, {"orderBy": "a.b"}]
)
def test_bad_item_listing_parameters_are_400_bad_params(bikes, params):
    assert_envelope(bikes.get("/api/catalogs/Bikes/items", params=params), 400, "BadParams")
