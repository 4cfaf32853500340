"""The catalog operations of one sandbox project: Iterable's catalog rules over the catalog store.

Every method runs on the storage worker thread (it does blocking SQLite work), takes plain JSON
values and returns JSON-ready values; errors are raised as `ApiError`. The rules, from the contract
(`iterable-api-docs.json`) and Iterable's catalog documentation:

- a catalog name has 1 to 255 letters, digits and dashes and is unique regardless of case; it is
  found in any case and shown as created;
- an item id has 1 to 255 letters, digits and dashes and is case-sensitive;
- a write carries at most 1000 items (`MAX_ITEMS_PER_REQUEST`), each value a JSON object of at most
  30 KiB (`MAX_ITEM_BYTES`, compact UTF-8 JSON, measured on what is sent and on the item it makes);
  field names are never empty and never contain `.`; a catalog has at most 350 fields (`MAX_FIELDS`);
- field types follow `catalog_fields`: set by mappings or fixed by the first value, never changed.

A write request is checked whole before anything is applied: any bad id, value, size, field name or
type refuses the request (400) and nothing of it is stored. A write that passes is applied at once,
although Iterable answers it as asynchronous (202): a read that follows sees it.

Where the contract lists a 404 for an endpoint (`GET` of items and field mappings, the bulk write),
an unknown catalog answers 404; elsewhere the contract lists no 404 and it answers 400. Both carry
the code `NotFound` and `params.catalogName`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from .catalog_fields import (
    CATALOG_FIELD_TYPES,
    CatalogFieldChecker,
    CatalogTypeMismatch,
    invalid_field_names,
    is_valid_field_name,
)
from .catalog_store import CatalogRow, CatalogStore, ItemRow
from .envelope import ApiError, type_mismatch_error
from .project import now_ms

MAX_ITEMS_PER_REQUEST = 1000  # the contract's "Max number of pairs in list is 1000"
MAX_ITEM_BYTES = 30 * 1024  # the contract's "Max size of each json value is 30kb"
MAX_FIELDS = 350  # Iterable's documented limit of unique fields per catalog
MAX_NAME_LENGTH = 255

_NAME = re.compile(rf"[A-Za-z0-9-]{{1,{MAX_NAME_LENGTH}}}")  # catalog names and item ids alike


def is_valid_catalog_name(value: Any) -> bool:
    """Whether `value` may name a catalog: 1 to 255 ASCII letters, digits and dashes."""
    return type(value) is str and _NAME.fullmatch(value) is not None


def is_valid_item_id(value: Any) -> bool:
    """Whether `value` may identify a catalog item: 1 to 255 ASCII letters, digits and dashes."""
    return type(value) is str and _NAME.fullmatch(value) is not None


def _iso_ms(epoch_ms: int) -> str:
    """An epoch-milliseconds time as the contract's `date-time`: ISO 8601 in UTC with milliseconds."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _bad_params(msg: str, params: dict[str, Any] | None = None) -> ApiError:
    return ApiError(400, "BadParams", msg, params)


def _object_field(body: Any, key: str) -> dict[str, Any]:
    """The object `body[key]`, required by the contract; 400 `BadParams` when missing or not an object."""
    if type(body) is not dict or type(body.get(key)) is not dict:
        raise _bad_params(f"Request body must be an object with an object field {key!r}")
    return body[key]


def _require_valid_item_id(item_id: str) -> None:
    if not is_valid_item_id(item_id):
        raise _bad_params(
            f"Invalid item id {item_id!r}: an item id has 1 to 255 letters, digits and dashes",
            {"invalidItemIds": [item_id]},
        )


class _ItemProblems:
    """What makes the items of one write request unacceptable, item by item."""

    def __init__(self) -> None:
        self.invalid_ids: list[str] = []
        self.invalid_values: list[str] = []
        self.invalid_fields: list[dict[str, str]] = []
        self.oversized: list[str] = []

    def check(self, item_id: str, value: Any) -> bool:
        """Record what is wrong with one item as sent; True when nothing is."""
        if not is_valid_item_id(item_id):
            self.invalid_ids.append(item_id)
            return False
        if type(value) is not dict:
            self.invalid_values.append(item_id)
            return False
        bad_names = invalid_field_names(value)
        self.invalid_fields.extend({"itemId": item_id, "field": name} for name in bad_names)
        return not bad_names

    def error(self) -> ApiError | None:
        """The 400 `BadParams` naming every problem, or None when there is none."""
        parts: list[str] = []
        params: dict[str, Any] = {}
        if self.invalid_ids:
            parts.append(f"invalid item ids {self.invalid_ids} (an item id has 1 to 255 letters, digits and dashes)")
            params["invalidItemIds"] = self.invalid_ids
        if self.invalid_values:
            parts.append(f"values of items {self.invalid_values} are not JSON objects")
            params["invalidItemValues"] = self.invalid_values
        if self.invalid_fields:
            named = ", ".join(f"{p['field']!r} in item {p['itemId']!r}" for p in self.invalid_fields)
            parts.append(f"invalid field names {named} (a field name is not empty and has no '.')")
            params["invalidFieldNames"] = self.invalid_fields
        if self.oversized:
            parts.append(f"items {self.oversized} are larger than {MAX_ITEM_BYTES} bytes (30 KB)")
            params["oversizedItemIds"] = self.oversized
            params["maxItemBytes"] = MAX_ITEM_BYTES
        if not parts:
            return None
        return _bad_params("Nothing in this request was applied: " + "; ".join(parts), params)


def _mismatch_error(checker: CatalogFieldChecker) -> ApiError:
    mismatches = [(None, m) for m in checker.mismatches.values()]
    return type_mismatch_error(mismatches, {"mismatchedItemIds": checker.mismatched_items})


def _too_many_fields(count: int) -> ApiError:
    return ApiError(
        400,
        "UniqueFieldsLimitExceeded",
        f"A catalog has at most {MAX_FIELDS} fields; this request would make it {count}. "
        "Nothing in this request was applied.",
        {"maxFields": MAX_FIELDS, "fields": count},
    )


class Catalogs:
    """The catalogs of one project, with Iterable's rules."""

    def __init__(self, store: CatalogStore):
        self.store = store

    def _catalog(self, name: str, missing_status: int) -> CatalogRow:
        """The catalog named `name` (any case); `NotFound` with `missing_status` when there is none."""
        row = self.store.catalog(name)
        if row is None:
            raise ApiError(missing_status, "NotFound", f"Catalog not found: {name}", {"catalogName": name})
        return row

    # ---- catalogs

    def list_catalogs(self, page: int, page_size: int) -> tuple[list[dict[str, str]], int]:
        """GET /api/catalogs: one page of `CatalogName`s, oldest first, and the number of catalogs."""
        names = self.store.catalog_names((page - 1) * page_size, page_size)
        return [{"name": name} for name in names], self.store.count_catalogs()

    def create_catalog(self, name: str) -> dict[str, Any]:
        """POST /api/catalogs/{catalogName}: `{"id", "name"}` of the new catalog."""
        if not is_valid_catalog_name(name):
            raise _bad_params(
                f"Invalid catalog name {name!r}: a catalog name has 1 to {MAX_NAME_LENGTH} letters, digits and dashes",
                {"catalogName": name},
            )
        existing = self.store.catalog(name)
        if existing is not None:
            raise _bad_params(
                f"A catalog named {existing.name!r} already exists (catalog names are case-insensitive)",
                {"catalogName": existing.name},
            )
        row = self.store.create_catalog(name, now_ms())
        return {"id": row.id, "name": row.name}

    def delete_catalog(self, name: str) -> str:
        """DELETE /api/catalogs/{catalogName}: the catalog goes with its items and field types."""
        row = self._catalog(name, 400)
        self.store.delete_catalog(row.id)
        return f"Catalog {row.name} deleted"

    # ---- field mappings

    def field_mappings(self, name: str) -> dict[str, Any]:
        """GET /api/catalogs/{catalogName}/fieldMappings: `CatalogFieldMappingsResponse`."""
        fields = self.store.fields(self._catalog(name, 404).id)
        return {
            "definedMappings": {path: kind for path, kind in fields.items() if kind is not None},
            "undefinedFields": [path for path, kind in fields.items() if kind is None],
        }

    def set_field_mappings(self, name: str, body: Any) -> str:
        """PUT /api/catalogs/{catalogName}/fieldMappings: set types of fields that have none yet.

        A mapping equal to a field's type changes nothing; a different one refuses the whole request
        (400 `RequestFieldsTypesMismatched`), as does a field named twice with two types.
        """
        if type(body) is not dict or type(body.get("mappingsUpdates")) is not list:
            raise _bad_params("Request body must be an object with a list 'mappingsUpdates'")
        requested: dict[str, str] = {}
        checker = CatalogFieldChecker(fixed={})
        _flatten_mappings(body["mappingsUpdates"], "", requested, checker)
        row = self._catalog(name, 400)
        fields = self.store.fields(row.id)
        for path, kind in requested.items():
            fixed = fields.get(path)
            if fixed is not None and fixed != kind:
                checker.mismatches.setdefault(path, CatalogTypeMismatch(path, fixed, kind))
        if checker.mismatches:
            raise _mismatch_error(checker)
        count = len(fields.keys() | requested.keys())
        if count > MAX_FIELDS:
            raise _too_many_fields(count)
        self.store.set_fields(row.id, dict(requested))
        return "Catalog field mappings updated"

    # ---- item writes

    def bulk_write(self, name: str, body: Any) -> int:
        """POST /api/catalogs/{catalogName}/items: create or update up to 1000 items; how many.

        `replaceUploadedFieldsOnly: false` replaces each item by its document; `true` replaces only
        the document's top-level fields in an existing item (a nested object is replaced whole).
        """
        documents = _object_field(body, "documents")
        replace_fields_only = body.get("replaceUploadedFieldsOnly")
        if type(replace_fields_only) is not bool:
            raise _bad_params("Request body must have a boolean 'replaceUploadedFieldsOnly'")
        row = self._catalog(name, 404)
        if len(documents) > MAX_ITEMS_PER_REQUEST:
            raise ApiError(
                400,
                "BatchTooLarge",
                f"A request carries at most {MAX_ITEMS_PER_REQUEST} items; this one has {len(documents)}. "
                "Nothing in this request was applied.",
                {"maxItems": MAX_ITEMS_PER_REQUEST, "items": len(documents)},
            )
        self._write(row, documents, merge=replace_fields_only)
        return len(documents)

    def put_item(self, name: str, item_id: str, body: Any) -> str:
        """PUT /api/catalogs/{catalogName}/items/{itemId}: create or replace one item."""
        _require_valid_item_id(item_id)
        value = _object_field(body, "value")
        self._write(self._catalog(name, 400), {item_id: value}, merge=False)
        return "Catalog item update request received"

    def patch_item(self, name: str, item_id: str, body: Any) -> str:
        """PATCH /api/catalogs/{catalogName}/items/{itemId}: create one item, or update its top-level fields."""
        _require_valid_item_id(item_id)
        update = _object_field(body, "update")
        self._write(self._catalog(name, 400), {item_id: update}, merge=True)
        return "Catalog item update request received"

    def _write(self, catalog: CatalogRow, documents: dict[str, Any], merge: bool) -> None:
        """Check every item of a request, then store them all in one transaction (or refuse them all)."""
        problems = _ItemProblems()
        sent: dict[str, str] = {}
        for item_id, value in documents.items():
            if problems.check(item_id, value):
                sent[item_id] = text = _json_text(value)
                if len(text.encode()) > MAX_ITEM_BYTES:
                    problems.oversized.append(item_id)
        if (error := problems.error()) is not None:
            raise error
        stored = self.store.items(catalog.id, documents) if merge else {}
        texts: dict[str, str] = {}
        for item_id, value in documents.items():
            old = stored.get(item_id)
            texts[item_id] = sent[item_id] if old is None else _json_text({**orjson.loads(old), **value})
            if len(texts[item_id].encode()) > MAX_ITEM_BYTES:
                problems.oversized.append(item_id)
        if (error := problems.error()) is not None:
            raise error
        fields = self.store.fields(catalog.id)
        checker = CatalogFieldChecker(fixed={path: kind for path, kind in fields.items() if kind is not None})
        for item_id, value in documents.items():
            checker.check_item(item_id, value)
        if checker.mismatches:
            raise _mismatch_error(checker)
        count = len(fields.keys() | checker.seen)
        if count > MAX_FIELDS:
            raise _too_many_fields(count)
        new_fields = {path: checker.new_types.get(path) for path in checker.seen if fields.get(path) is None}
        self.store.write_items(catalog.id, texts, new_fields, now_ms())

    # ---- item deletes

    def bulk_delete(self, name: str, body: Any) -> str:
        """DELETE /api/catalogs/{catalogName}/items: delete the listed items; unknown ids are no error."""
        item_ids = body.get("itemIds") if type(body) is dict else None
        if type(item_ids) is not list or any(type(item_id) is not str for item_id in item_ids):
            raise _bad_params("Request body must be an object with a list of strings 'itemIds'")
        catalog = self._catalog(name, 400)
        invalid = [item_id for item_id in item_ids if not is_valid_item_id(item_id)]
        if invalid:
            raise _bad_params(
                f"Nothing in this request was applied: invalid item ids {invalid} "
                "(an item id has 1 to 255 letters, digits and dashes)",
                {"invalidItemIds": invalid},
            )
        self.store.delete_items(catalog.id, item_ids)
        return "Bulk delete catalog items request received"

    def delete_item(self, name: str, item_id: str) -> str:
        """DELETE /api/catalogs/{catalogName}/items/{itemId}: delete one item; an unknown item is no error."""
        _require_valid_item_id(item_id)
        self.store.delete_items(self._catalog(name, 400).id, [item_id])
        return "Received request to delete item"

    # ---- item reads

    def list_items(
        self, name: str, page: int, page_size: int, order_by: str | None, ascending: bool
    ) -> tuple[list[dict[str, Any]], int]:
        """GET /api/catalogs/{catalogName}/items: one page of `CatalogItemWithProperties` and the item count.

        Without `order_by` items come in item id order. With it, by that top-level field's value,
        descending unless `ascending`. The contract honours `sortAscending` only for a field with a
        type; here every field that has a value has a type (mapped or inferred), so it always applies.
        """
        catalog = self._catalog(name, 404)
        rows = self.store.page_of_items(catalog.id, (page - 1) * page_size, page_size, order_by, ascending)
        return [_item_with_properties(catalog, row) for row in rows], self.store.count_items(catalog.id)

    def get_item(self, name: str, item_id: str) -> dict[str, Any]:
        """GET /api/catalogs/{catalogName}/items/{itemId}: `CatalogItemWithProperties`; 404 when absent."""
        _require_valid_item_id(item_id)
        catalog = self._catalog(name, 404)
        row = self.store.item(catalog.id, item_id)
        if row is None:
            raise ApiError(
                404,
                "NotFound",
                f"Catalog item not found: {item_id} in {catalog.name}",
                {"catalogName": catalog.name, "itemId": item_id},
            )
        return _item_with_properties(catalog, row)

    # ---- admin

    def counts(self) -> dict[str, int]:
        """How many catalogs and catalog items the project has."""
        return self.store.counts()

    def reset(self) -> None:
        """Remove every catalog with its items and field types."""
        self.store.reset()


def _item_with_properties(catalog: CatalogRow, row: ItemRow) -> dict[str, Any]:
    return {
        "catalogName": catalog.name,
        "itemId": row.item_id,
        "lastModified": _iso_ms(row.last_modified),
        "size": row.size,
        # The stored JSON text goes out as it is, without a parse and a new dump.
        "value": orjson.Fragment(row.value),
    }


def _flatten_mappings(definitions: list[Any], prefix: str, into: dict[str, str], checker: CatalogFieldChecker) -> None:
    """Turn `CatalogFieldDefinitionSerializedModel`s into path -> type; a field named twice with two
    types is recorded as a mismatch in `checker`. 400 `BadParams` on a malformed definition."""
    for definition in definitions:
        if type(definition) is not dict:
            raise _bad_params("Each mapping must be an object with 'fieldName' and 'fieldType'")
        field_name, field_type = definition.get("fieldName"), definition.get("fieldType")
        if not is_valid_field_name(field_name):
            raise _bad_params(
                f"Invalid field name {prefix}{field_name}: a field name is a non-empty string without '.'",
                {"fieldName": field_name},
            )
        path = prefix + str(field_name)  # checked above: a non-empty string
        if field_type not in CATALOG_FIELD_TYPES:
            raise _bad_params(
                f"Invalid type {field_type!r} for field {path!r}: valid types are {sorted(CATALOG_FIELD_TYPES)}",
                {"fieldName": path, "fieldType": field_type},
            )
        if path in into and into[path] != field_type:
            checker.mismatches.setdefault(path, CatalogTypeMismatch(path, into[path], field_type))
        into[path] = field_type
        children = definition.get("children")
        if children is None:
            continue
        if type(children) is not list or field_type != "object":
            raise _bad_params(
                f"Field {path!r}: 'children' is a list, and only a field of type object has children",
                {"fieldName": path},
            )
        _flatten_mappings(children, path + ".", into, checker)
