"""Catalogs: create, list with paging, delete; names, auth, faults and rate limits, over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from smartingest.sandbox import FaultSettings, StatusBurst

from .catalog_helpers import create_catalog, item_value, write_items
from .helpers import api_client, assert_envelope, start_server


def catalog_names(client: httpx.Client, **params: int) -> dict:
    response = client.get("/api/catalogs", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# ---- create


def test_create_answers_201_with_the_new_catalog(email_client):
    body = create_catalog(email_client, "Bikes")
    assert body["params"]["name"] == "Bikes"
    assert isinstance(body["params"]["id"], int)
    assert catalog_names(email_client) == {"catalogNames": [{"name": "Bikes"}], "totalCatalogsCount": 1}


@pytest.mark.parametrize("name", ["my-catalog-2", "A", "x" * 255, "0-0"])
def test_names_of_letters_digits_and_dashes_up_to_255_are_accepted(email_client, name):
    create_catalog(email_client, name)


@pytest.mark.parametrize("name", ["with_underscore", "with space", "dotted.name", "x" * 256, "caf%C3%A9", "a%2Bb"])
def test_other_names_are_400_bad_params_and_create_nothing(email_client, name):
    assert_envelope(email_client.post(f"/api/catalogs/{name}"), 400, "BadParams")
    assert catalog_names(email_client)["totalCatalogsCount"] == 0


def test_names_are_unique_regardless_of_case(email_client):
    create_catalog(email_client, "Bikes")
    body = assert_envelope(email_client.post("/api/catalogs/BIKES"), 400, "BadParams")
    assert body["params"] == {"catalogName": "Bikes"}
    assert catalog_names(email_client)["totalCatalogsCount"] == 1


def test_a_catalog_is_found_in_any_case_and_shown_as_created(email_client):
    create_catalog(email_client, "Bikes")
    assert write_items(email_client, "bIKES", {"b1": {"wheels": 2}}).status_code == 202
    item = email_client.get("/api/catalogs/BIKES/items/b1").json()
    assert item["catalogName"] == "Bikes"


# ---- list with paging


def test_catalogs_are_listed_oldest_first_in_pages_with_urls(email_client, email_server):
    for n in range(25):
        create_catalog(email_client, f"c{n}")
    first = catalog_names(email_client)  # default page 1, pageSize 10
    assert [c["name"] for c in first["catalogNames"]] == [f"c{n}" for n in range(10)]
    assert first["totalCatalogsCount"] == 25
    assert "previousPageUrl" not in first
    second = email_client.get(first["nextPageUrl"]).json()  # an absolute URL of this server
    assert first["nextPageUrl"].startswith(email_server.url)
    assert [c["name"] for c in second["catalogNames"]] == [f"c{n}" for n in range(10, 20)]
    third = email_client.get(second["nextPageUrl"]).json()
    assert [c["name"] for c in third["catalogNames"]] == [f"c{n}" for n in range(20, 25)]
    assert "nextPageUrl" not in third
    assert email_client.get(third["previousPageUrl"]).json() == second


def test_page_size_picks_the_page_length(email_client):
    for n in range(5):
        create_catalog(email_client, f"c{n}")
    page = catalog_names(email_client, page=2, pageSize=2)
    assert [c["name"] for c in page["catalogNames"]] == ["c2", "c3"]
    assert "page=3" in page["nextPageUrl"] and "pageSize=2" in page["nextPageUrl"]
    assert "page=1" in page["previousPageUrl"]
    assert catalog_names(email_client, page=9)["catalogNames"] == []


@pytest.mark.parametrize(
    "params", [{"page": 0}, {"page": "x"}, {"pageSize": 0}, {"pageSize": 101}, {"pageSize": "1.5"}]
)
def test_bad_paging_parameters_are_400_bad_params(email_client, params):
    assert_envelope(email_client.get("/api/catalogs", params=params), 400, "BadParams")


# ---- delete


def test_delete_removes_the_catalog_with_its_items_and_fields(email_client):
    create_catalog(email_client, "Bikes")
    write_items(email_client, "Bikes", {"b1": {"wheels": 2}})
    body = assert_envelope(email_client.delete("/api/catalogs/bikes"), 200, "Success")
    assert "Bikes" in body["msg"]
    assert catalog_names(email_client)["totalCatalogsCount"] == 0
    # A new catalog of the same name starts empty, without the old field types.
    create_catalog(email_client, "Bikes")
    assert item_value(email_client, "Bikes", "b1") is None
    assert email_client.get("/api/catalogs/Bikes/fieldMappings").json()["definedMappings"] == {}


def test_deleting_an_unknown_catalog_is_400_not_found(email_client):
    body = assert_envelope(email_client.delete("/api/catalogs/nothing"), 400, "NotFound")
    assert body["params"] == {"catalogName": "nothing"}


@pytest.mark.parametrize(
    ("method", "path", "json", "status"),
    [
        ("GET", "/api/catalogs/nothing/items", None, 404),
        ("GET", "/api/catalogs/nothing/items/i1", None, 404),
        ("GET", "/api/catalogs/nothing/fieldMappings", None, 404),
        ("POST", "/api/catalogs/nothing/items", {"documents": {}, "replaceUploadedFieldsOnly": False}, 404),
        # The contract lists no 404 for these: an unknown catalog is 400 there, with the same code.
        ("PUT", "/api/catalogs/nothing/fieldMappings", {"mappingsUpdates": []}, 400),
        ("DELETE", "/api/catalogs/nothing/items", {"itemIds": ["i1"]}, 400),
        ("PUT", "/api/catalogs/nothing/items/i1", {"value": {}}, 400),
        ("PATCH", "/api/catalogs/nothing/items/i1", {"update": {}}, 400),
        ("DELETE", "/api/catalogs/nothing/items/i1", None, 400),
    ],
)
def test_an_unknown_catalog_is_not_found_with_the_contracts_status(email_client, method, path, json, status):
    body = assert_envelope(email_client.request(method, path, json=json), status, "NotFound")
    assert body["params"]["catalogName"] == "nothing"
    assert catalog_names(email_client)["totalCatalogsCount"] == 0  # nothing creates a catalog implicitly


# ---- what every /api route has


def test_catalog_routes_need_the_api_key(email_server, email_client):
    create_catalog(email_client, "Bikes")
    with httpx.Client(base_url=email_server.url) as anonymous:
        assert_envelope(anonymous.get("/api/catalogs"), 401, "BadApiKey")
        response = anonymous.post("/api/catalogs/Bikes/items", json={"documents": {"b1": {}}})
        assert_envelope(response, 401, "BadApiKey")
    with httpx.Client(base_url=email_server.url, headers={"Api-Key": "wrong"}) as wrong:
        assert_envelope(wrong.delete("/api/catalogs/Bikes"), 401, "BadApiKey")
    assert catalog_names(email_client)["totalCatalogsCount"] == 1
    assert item_value(email_client, "Bikes", "b1") is None


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/catalogs/Bikes"), ("PATCH", "/api/catalogs/Bikes"), ("POST", "/api/catalogs/Bikes/items/b1")],
)
def test_methods_the_contract_does_not_give_are_404(email_client, method, path):
    create_catalog(email_client, "Bikes")
    assert_envelope(email_client.request(method, path), 404, "NotFound")


def test_a_bulk_write_over_4_mb_is_413(email_client):
    create_catalog(email_client, "Bikes")
    documents = {f"b{n}": {"pad": "x" * 20_000} for n in range(220)}
    response = write_items(email_client, "Bikes", documents)
    assert_envelope(response, 413, "BatchTooLarge")
    assert item_value(email_client, "Bikes", "b0") is None


def test_faults_aimed_at_a_catalog_endpoint_leave_the_request_unapplied(email_client):
    create_catalog(email_client, "Bikes")
    faults = FaultSettings(endpoint="POST /api/catalogs/{catalogName}/items", status_burst=StatusBurst(count=1))
    email_client.put("/_sandbox/faults", content=faults.model_dump_json()).raise_for_status()
    assert_envelope(write_items(email_client, "Bikes", {"b1": {"n": 1}}), 503, "GenericError")
    assert item_value(email_client, "Bikes", "b1") is None
    assert write_items(email_client, "Bikes", {"b1": {"n": 1}}).status_code == 202
    stats = email_client.get("/_sandbox/stats").json()
    assert stats["requests"]["POST /api/catalogs/{catalogName}/items"] == {"503": 1, "202": 1}
    assert (stats["catalogs"], stats["catalog_items"]) == (1, 1)


def test_reset_removes_every_catalog(email_client):
    create_catalog(email_client, "Bikes")
    write_items(email_client, "Bikes", {"b1": {"n": 1}})
    email_client.post("/_sandbox/reset").raise_for_status()
    assert catalog_names(email_client)["totalCatalogsCount"] == 0
    stats = email_client.get("/_sandbox/stats").json()
    assert (stats["catalogs"], stats["catalog_items"]) == (0, 0)


def test_catalogs_survive_a_restart(tmp_path):
    server = start_server(tmp_path)
    try:
        with api_client(server) as client:
            create_catalog(client, "Bikes")
            write_items(client, "Bikes", {"b1": {"n": 1}})
    finally:
        server.stop()
    server = start_server(tmp_path)
    try:
        with api_client(server) as client:
            assert item_value(client, "Bikes", "b1") == {"n": 1}
    finally:
        server.stop()


# ---- rate limits: the four catalog endpoints whose descriptions state one


@pytest.fixture
def limited(tmp_path):
    server = start_server(tmp_path, rate_limits=True, rate_limit_scale=0.05)
    with api_client(server) as client:
        yield client
    server.stop()


@pytest.mark.parametrize(
    ("method", "path", "json", "burst"),
    [
        ("GET", "/api/catalogs", None, 5),  # 100/s scaled by 0.05
        ("GET", "/api/catalogs/Bikes/items", None, 5),
        ("POST", "/api/catalogs/Bikes/items", {"documents": {}, "replaceUploadedFieldsOnly": False}, 5),
        ("PUT", "/api/catalogs/Bikes/items/b1", {"value": {"n": 1}}, 50),  # 1000/s scaled by 0.05
    ],
)
def test_catalog_endpoints_keep_their_documented_rate(limited, method, path, json, burst):
    create_catalog(limited, "Bikes")
    codes = [limited.request(method, path, json=json).status_code for _ in range(burst * 3)]
    assert all(code < 300 for code in codes[:burst]), codes
    assert 429 in codes[burst:]
    refused = next(
        r for r in (limited.request(method, path, json=json) for _ in range(burst * 3)) if r.status_code == 429
    )
    assert_envelope(refused, 429, "RateLimitExceeded")


def test_catalog_endpoints_without_a_documented_rate_are_not_limited(limited):
    codes = [limited.post(f"/api/catalogs/c{n}").status_code for n in range(30)]
    codes += [limited.get("/api/catalogs/c1/fieldMappings").status_code for _ in range(30)]
    assert set(codes) == {200, 201}
