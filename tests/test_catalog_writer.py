"""The catalog writer against the sandbox over real HTTP: what each endpoint refuses, row by row, and
how requests are bounded by count and bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from smartingest.codes import ReasonCode
from smartingest.config.models import DestinationConfig
from smartingest.iterable.catalog_writer import CatalogWriter
from smartingest.iterable.client import IterableClient
from smartingest.iterable.endpoints import MB
from smartingest.iterable.outcomes import SYNCED, Rejected
from smartingest.sandbox import SandboxServer
from smartingest.synctypes.catalog_items import ItemRecord
from tests.conftest import API_KEY


def _document(item_id: str, value: dict[str, Any], pk: str | None = None) -> ItemRecord:
    return ItemRecord(pk or item_id, "added", orjson.dumps(item_id) + b":" + orjson.dumps(value))


def _delete(item_id: str) -> ItemRecord:
    return ItemRecord(item_id, "removed", orjson.dumps(item_id))


def _deliver(server: SandboxServer, records: list[ItemRecord], replace: bool = False) -> dict[str, Any]:
    destination = DestinationConfig(api_key=API_KEY, base_url=server.url)

    async def send() -> dict[str, Any]:
        async with IterableClient(destination) as client:
            writer = CatalogWriter(client, "shop", batch_size=1000, replace=replace)
            outcomes = await writer.deliver(records)
            return {"verdicts": {record.pk: verdict for record, verdict in outcomes}, "stats": dict(client.stats)}

    return asyncio.run(send())


def _api(server: SandboxServer) -> httpx.Client:
    client = httpx.Client(base_url=server.url, headers={"Api-Key": API_KEY}, timeout=30)
    client.post("/api/catalogs/shop").raise_for_status()
    return client


def test_bulk_delete_isolates_an_id_iterable_refuses(sandbox: SandboxServer) -> None:
    api = _api(sandbox)
    api.put("/api/catalogs/shop/items/a-1", json={"value": {"n": 1}}).raise_for_status()
    api.put("/api/catalogs/shop/items/a-2", json={"value": {"n": 2}}).raise_for_status()
    sent = _deliver(sandbox, [_delete("a-1"), _delete("bad id"), _delete("a-2"), _delete("never-there")])
    verdicts = sent["verdicts"]
    assert verdicts["a-1"] == verdicts["a-2"] == verdicts["never-there"] == SYNCED
    refused = verdicts["bad id"]
    assert isinstance(refused, Rejected) and refused.code == ReasonCode.REFUSED
    assert refused.reason.startswith("BadParams") and "bad id" in refused.reason
    assert sent["stats"]["splits"] >= 1
    assert api.get("/api/catalogs/shop/items").json()["totalItemsCount"] == 0


def test_bulk_write_isolates_an_item_an_update_makes_too_large(sandbox: SandboxServer) -> None:
    api = _api(sandbox)
    api.put("/api/catalogs/shop/items/big", json={"value": {"old": "o" * 20_000}}).raise_for_status()
    records = [_document("small", {"new": "s"}), _document("big", {"new": "n" * 15_000}), _document("x", {"n": 1})]
    verdicts = _deliver(sandbox, records, replace=False)["verdicts"]
    assert verdicts["small"] == verdicts["x"] == SYNCED
    refused = verdicts["big"]
    assert isinstance(refused, Rejected) and "30720" in refused.reason
    # With replace the update makes the item anew: it fits.
    assert _deliver(sandbox, [records[1]], replace=True)["verdicts"]["big"] == SYNCED
    assert set(api.get("/api/catalogs/shop/items/big").json()["value"]) == {"new"}


def test_bulk_write_refuses_a_type_mismatch_row_by_row(sandbox: SandboxServer) -> None:
    _api(sandbox)
    records = [_document(f"i-{n}", {"size": n}) for n in range(6)] + [_document("odd", {"size": "XL"})]
    sent = _deliver(sandbox, records)
    refused = sent["verdicts"].pop("odd")
    assert isinstance(refused, Rejected) and refused.code == ReasonCode.TYPE_MISMATCH
    assert set(sent["verdicts"].values()) == {SYNCED}


def test_requests_are_bounded_by_count_and_by_four_megabytes(sandbox: SandboxServer) -> None:
    destination = DestinationConfig(api_key=API_KEY, base_url=sandbox.url)
    records = [_document(f"i-{n}", {"text": "t" * 29_000}) for n in range(300)]

    async def group() -> list[list[Any]]:
        async with IterableClient(destination) as client:
            by_bytes = list(CatalogWriter(client, "shop", batch_size=1000, replace=True).batches(records))
            by_count = list(CatalogWriter(client, "shop", batch_size=7, replace=True).batches(records[:20]))
            return [by_bytes, by_count]

    by_bytes, by_count = asyncio.run(group())
    assert [len(b) for b in by_count] == [7, 7, 6]
    assert len(by_bytes) == 3 and sum(len(b) for b in by_bytes) == 300
    for batch in by_bytes:
        assert sum(len(r.body) + 1 for r in batch) + 64 <= 4 * MB
    _api(sandbox)
    sent = _deliver(sandbox, records, replace=True)
    assert set(sent["verdicts"].values()) == {SYNCED}
    assert (sent["stats"]["requests"], sent["stats"]["refused"]) == (3, 0)
