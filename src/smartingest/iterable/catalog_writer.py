"""The writer of a catalog sync: item upserts to the bulk write, removed items to the bulk delete.

- ``POST /api/catalogs/{catalogName}/items`` takes ``{"documents": {"<item id>": {...}, ...},
  "replaceUploadedFieldsOnly": bool}``: a record's body is its document as framed there
  (``"sku-1":{"name":"Mug"}``), so the shared ``BulkWriter`` batches it by count and bytes as it is;
- ``DELETE /api/catalogs/{catalogName}/items`` takes ``{"itemIds": ["sku-1", ...]}``: a record's body is
  its id as a JSON string.

Records whose operation is ``removed`` are deletes; every other record is a document. Both endpoints
answer asynchronously (202: the request is received, applied later): an accepted request gives each
of its records the verdict synced. They refuse a request whole (one bad item refuses every item), so
a refusal of several records is split in halves until the bad ones stand alone and are rejected with
Iterable's reason. Ids and item sizes are checked before sending (``synctypes.catalog``), so such a
refusal is rare: a value that does not fit its field's type, or an item an update makes too large.
"""

from __future__ import annotations

from collections.abc import Sequence

from smartingest.iterable.client import IterableClient
from smartingest.iterable.endpoints import (
    CATALOG_ITEMS_BULK_CREATE,
    CATALOG_ITEMS_BULK_DELETE,
    CATALOG_MAX_ITEMS_PER_REQUEST,
)
from smartingest.iterable.writer import BulkWriter, ByOperation, Record

REMOVED = "removed"


def documents_envelope(replace: bool) -> tuple[bytes, bytes]:
    """Head and tail of a bulk write around the comma-joined documents.

    ``replace`` True replaces whole items (``replaceUploadedFieldsOnly: false``); False replaces only
    the fields the documents carry (``true``), keeping the item's other fields.
    """
    fields_only = b"false" if replace else b"true"
    return b'{"documents":{', b'},"replaceUploadedFieldsOnly":' + fields_only + b"}"


class CatalogWriter(ByOperation):
    """Writes one catalog's records (a ``Writer``): documents and deletes, each to its own endpoint."""

    def __init__(self, client: IterableClient, catalog: str, batch_size: int, replace: bool) -> None:
        path = {"catalogName": catalog}
        self.documents = BulkWriter(
            client,
            CATALOG_ITEMS_BULK_CREATE,
            "documents",
            min(batch_size, CATALOG_MAX_ITEMS_PER_REQUEST),
            envelope=documents_envelope(replace),
            path=path,
        )
        super().__init__(
            self.documents, BulkWriter(client, CATALOG_ITEMS_BULK_DELETE, "itemIds", batch_size, path=path)
        )

    def body(self, records: Sequence[Record]) -> bytes:
        """The bulk write carrying these documents (for plans)."""
        return self.documents.body(records)
