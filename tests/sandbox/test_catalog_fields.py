"""Catalog field types: mappings set before the first write, types inferred from values, conflicts."""

from __future__ import annotations

import pytest

from smartingest.sandbox.catalogs import MAX_FIELDS

from .catalog_helpers import create_catalog, field_mappings, item_value, set_mappings, write_items
from .helpers import assert_envelope


@pytest.fixture
def bikes(email_client):
    """A client of a fresh sandbox with an empty catalog `Bikes`."""
    create_catalog(email_client, "Bikes")
    return email_client


def test_a_new_catalog_has_no_fields(bikes):
    assert field_mappings(bikes, "Bikes") == {"definedMappings": {}, "undefinedFields": []}


def test_types_are_inferred_from_the_first_values(bikes):
    value = {
        "name": "Roadster",
        "wheels": 2,
        "price": 9.5,
        "electric": False,
        "released": "2024-03-01",
        "specs": {"gears": 21, "frame": "steel"},
        "tags": ["fast", "light"],
        "parts": [{"part": "bell"}],
        "discontinued": None,
        "colours": [],
    }
    write_items(bikes, "Bikes", {"b1": value})
    assert field_mappings(bikes, "Bikes") == {
        "definedMappings": {
            "electric": "boolean",
            "name": "string",
            "parts": "object",
            "parts.part": "string",
            "price": "double",
            "released": "date",
            "specs": "object",
            "specs.frame": "string",
            "specs.gears": "long",
            "tags": "string",  # a list is typed by its elements
            "wheels": "long",
        },
        # Seen with no value to type them by yet.
        "undefinedFields": ["colours", "discontinued"],
    }


def test_an_undefined_field_gets_the_type_of_its_first_value(bikes):
    write_items(bikes, "Bikes", {"b1": {"discontinued": None}})
    write_items(bikes, "Bikes", {"b2": {"discontinued": "2020-01-01 00:00:00 +00:00"}})
    assert field_mappings(bikes, "Bikes") == {"definedMappings": {"discontinued": "date"}, "undefinedFields": []}


def test_mappings_set_before_the_first_write_hold(bikes):
    response = set_mappings(
        bikes,
        "Bikes",
        [
            {"fieldName": "price", "fieldType": "double"},
            {"fieldName": "sku", "fieldType": "string"},
            {"fieldName": "store", "fieldType": "geo_location"},
            {"fieldName": "specs", "fieldType": "object", "children": [{"fieldName": "kg", "fieldType": "double"}]},
        ],
    )
    assert_envelope(response, 200, "Success")
    assert field_mappings(bikes, "Bikes")["definedMappings"] == {
        "price": "double",
        "sku": "string",
        "specs": "object",
        "specs.kg": "double",
        "store": "geo_location",
    }
    # A whole number fits a double field; the mapping, not the value, decides the type.
    write_items(bikes, "Bikes", {"b1": {"price": 10, "specs": {"kg": 9}, "store": {"lat": 48.85, "lon": 2.35}}})
    assert field_mappings(bikes, "Bikes")["definedMappings"]["price"] == "double"
    assert item_value(bikes, "Bikes", "b1") == {"price": 10, "specs": {"kg": 9}, "store": {"lat": 48.85, "lon": 2.35}}


@pytest.mark.parametrize(
    ("fixed", "value", "request_type"),
    [
        ("long", "12", "string"),
        ("long", 1.5, "double"),
        ("double", "cheap", "string"),
        ("boolean", 1, "long"),
        ("date", "next tuesday", "string"),
        ("string", 42, "long"),
        ("string", ["a", 1], "long"),  # every element of a list must fit
        ("object", "flat", "string"),
        ("geo_location", {"lat": 91, "lon": 0}, "object"),
        ("geo_location", "48.85,2.35", "string"),
    ],
)
def test_a_value_that_does_not_fit_its_type_refuses_the_request(bikes, fixed, value, request_type):
    set_mappings(bikes, "Bikes", [{"fieldName": "f", "fieldType": fixed}])
    response = write_items(bikes, "Bikes", {"ok": {"f": None}, "bad": {"f": value}})
    body = assert_envelope(response, 400, "RequestFieldsTypesMismatched")
    assert body["params"] == {
        "mismatchedFields": [{"field": "f", "fixedType": fixed, "requestType": request_type}],
        "mismatchedItemIds": ["bad"],
    }
    assert item_value(bikes, "Bikes", "ok") is None  # nothing of the request was applied


@pytest.mark.parametrize(
    ("fixed", "value"),
    [
        ("long", 3.0),
        ("double", 3),
        ("string", "2024-01-01"),
        ("date", "2024-01-31T13:45:00.000-0400"),
        ("long", [1, 2]),
    ],
)
def test_compatible_values_fit(bikes, fixed, value):
    set_mappings(bikes, "Bikes", [{"fieldName": "f", "fieldType": fixed}])
    assert write_items(bikes, "Bikes", {"b1": {"f": value}}).status_code == 202


def test_an_inferred_type_refuses_later_values_of_another_type(bikes):
    write_items(bikes, "Bikes", {"b1": {"wheels": 2}})
    for update in (True, False):
        response = write_items(bikes, "Bikes", {"b1": {"wheels": "two"}}, replace_fields_only=update)
        assert_envelope(response, 400, "RequestFieldsTypesMismatched")
    response = bikes.patch("/api/catalogs/Bikes/items/b1", json={"update": {"wheels": "two"}})
    assert_envelope(response, 400, "RequestFieldsTypesMismatched")
    response = bikes.put("/api/catalogs/Bikes/items/b2", json={"value": {"wheels": "two"}})
    assert_envelope(response, 400, "RequestFieldsTypesMismatched")
    assert item_value(bikes, "Bikes", "b1") == {"wheels": 2}


def test_two_items_of_one_request_disagreeing_about_a_new_field_refuse_it(bikes):
    response = write_items(bikes, "Bikes", {"b1": {"size": 54}, "b2": {"size": "L"}})
    body = assert_envelope(response, 400, "RequestFieldsTypesMismatched")
    assert body["params"]["mismatchedFields"] == [{"field": "size", "fixedType": "long", "requestType": "string"}]
    assert field_mappings(bikes, "Bikes") == {"definedMappings": {}, "undefinedFields": []}


def test_types_are_per_catalog(bikes):
    create_catalog(bikes, "Cars")
    write_items(bikes, "Bikes", {"b1": {"size": 54}})
    assert write_items(bikes, "Cars", {"c1": {"size": "L"}}).status_code == 202


def test_a_mapping_never_changes_a_type(bikes):
    write_items(bikes, "Bikes", {"b1": {"wheels": 2, "store": {"lat": 1, "lon": 2}}})
    response = set_mappings(
        bikes,
        "Bikes",
        [{"fieldName": "wheels", "fieldType": "string"}, {"fieldName": "store", "fieldType": "geo_location"}],
    )
    body = assert_envelope(response, 400, "RequestFieldsTypesMismatched")
    assert body["params"]["mismatchedFields"] == [
        {"field": "wheels", "fixedType": "long", "requestType": "string"},
        {"field": "store", "fixedType": "object", "requestType": "geo_location"},  # map it before the first write
    ]
    # Restating a type is no change; nothing of the refused request was applied.
    assert_envelope(set_mappings(bikes, "Bikes", [{"fieldName": "wheels", "fieldType": "long"}]), 200, "Success")
    assert field_mappings(bikes, "Bikes")["definedMappings"]["wheels"] == "long"


def test_a_mapping_types_an_undefined_field(bikes):
    write_items(bikes, "Bikes", {"b1": {"released": None}})
    set_mappings(bikes, "Bikes", [{"fieldName": "released", "fieldType": "date"}])
    assert field_mappings(bikes, "Bikes") == {"definedMappings": {"released": "date"}, "undefinedFields": []}
    assert_envelope(write_items(bikes, "Bikes", {"b2": {"released": "soon"}}), 400, "RequestFieldsTypesMismatched")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"mappingsUpdates": {"fieldName": "a", "fieldType": "long"}},
        {"mappingsUpdates": [{"fieldName": "a", "fieldType": "integer"}]},
        {"mappingsUpdates": [{"fieldName": "a.b", "fieldType": "long"}]},
        {"mappingsUpdates": [{"fieldName": "", "fieldType": "long"}]},
        {"mappingsUpdates": [{"fieldType": "long"}]},
        {
            "mappingsUpdates": [
                {"fieldName": "a", "fieldType": "long", "children": [{"fieldName": "b", "fieldType": "long"}]}
            ]
        },
    ],
)
def test_a_malformed_mapping_request_is_400_bad_params_and_sets_nothing(bikes, body):
    response = bikes.put("/api/catalogs/Bikes/fieldMappings", json=body)
    assert_envelope(response, 400, "BadParams")
    assert field_mappings(bikes, "Bikes")["definedMappings"] == {}


def test_a_field_mapped_twice_with_two_types_is_a_mismatch(bikes):
    mappings = [{"fieldName": "a", "fieldType": "long"}, {"fieldName": "a", "fieldType": "string"}]
    assert_envelope(set_mappings(bikes, "Bikes", mappings), 400, "RequestFieldsTypesMismatched")
    assert field_mappings(bikes, "Bikes")["definedMappings"] == {}


def test_a_catalog_holds_at_most_350_fields(bikes):
    fields = {f"f{n}": n for n in range(MAX_FIELDS)}
    assert write_items(bikes, "Bikes", {"b1": fields}).status_code == 202
    body = assert_envelope(write_items(bikes, "Bikes", {"b2": {"one-more": 1}}), 400, "UniqueFieldsLimitExceeded")
    assert body["params"] == {"maxFields": MAX_FIELDS, "fields": MAX_FIELDS + 1}
    response = set_mappings(bikes, "Bikes", [{"fieldName": "one-more", "fieldType": "long"}])
    assert_envelope(response, 400, "UniqueFieldsLimitExceeded")
    assert item_value(bikes, "Bikes", "b2") is None
    assert write_items(bikes, "Bikes", {"b3": {"f1": 5}}).status_code == 202  # known fields still take values
