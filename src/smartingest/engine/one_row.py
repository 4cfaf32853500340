"""Testing a sync on one row of its model: the exact request a run would send for it, and, when asked,
sending that request and showing Iterable's answer (Smart Ingest's "test a row").

A test never touches the sync's CDC state or its runs: a row sent by a test is sent again by the next
run if the snapshot says it changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import httpx
import orjson
import pyarrow as pa

from smartingest.cdc.hashing import key_text_sql, quote
from smartingest.engine.destination import CHECK_POLICY
from smartingest.engine.pipeline import SyncTarget, prepare
from smartingest.errors import DestinationError, ModelError
from smartingest.iterable.client import IterableClient
from smartingest.iterable.outcomes import Rejected, Verdict, code_of, reason_of, status_of
from smartingest.iterable.writer import Record
from smartingest.sources.base import DEFAULT_BATCH_ROWS, Source
from smartingest.sources.lookup import narrowed_to_key
from smartingest.synctypes.base import OP_COLUMN, PK_COLUMN, TypePlan


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange of a test that sent its row: what was asked, and what Iterable answered."""

    request: str  # "POST /api/users/bulkUpdate"
    status: int
    body: Any  # the answer's JSON, or its text when it is not JSON


@dataclass(frozen=True)
class RowTest:
    """What a run would do with one row, and what Iterable said when the test sent it."""

    sync_name: str
    primary_key: str
    request: str  # the endpoint the row's request goes to
    body: dict[str, Any] | None  # the request carrying the row alone; None when no request would carry it
    refused: str | None = None  # why a run would not send it (a value Iterable cannot store, no identifier...)
    sent: bool = False
    status: str | None = None  # after sending: synced, rejected, retried_next_run, deferred or skipped
    reason: str | None = None
    code: str | None = None
    answers: list[Answer] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what reading the destination found (type conflicts...)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sync": self.sync_name,
            "primary_key": self.primary_key,
            "request": self.request,
            "body": self.body,
            "refused": self.refused,
            "sent": self.sent,
            "status": self.status,
            "reason": self.reason,
            "code": self.code,
            "answers": [{"request": a.request, "status": a.status, "body": a.body} for a in self.answers],
            "warnings": self.warnings,
        }


def try_row(target: SyncTarget, primary_key: str | None, send: bool = False) -> RowTest:
    """The request a run would send for the row of ``primary_key`` (its text as runs show it: a JSON array
    for a composite key; None: the model's first row); with ``send``, sent as a run would send it. Raises
    ModelError when no row or several rows have that key, and the sync-level errors a run would report."""
    source, plan, _spec = prepare(target)
    if primary_key is None:
        row, primary_key = _first_row(source, target)
    else:
        row = _find_row(source, target, primary_key)
    # What the destination holds refines the plan (a field whose type the row's value cannot fit refuses
    # it), as in a run: read before mapping; prepared (catalogs, lists created) only when sending.
    warnings = asyncio.run(_ready(target, plan, send))
    changes = row.append_column(PK_COLUMN, pa.array([primary_key])).append_column(OP_COLUMN, pa.array(["added"]))
    records, decided = plan.map_changes(changes.to_batches()[0])
    if decided:
        [(_pk, _op, verdict)] = decided
        refused = (reason_of(verdict) if isinstance(verdict, Rejected) else None) or "no request is needed"
        return RowTest(target.name, primary_key, plan.endpoint_name, None, refused, warnings=warnings)
    body = orjson.loads(plan.sample_body(records))
    if not send:
        return RowTest(target.name, primary_key, plan.endpoint_name, body, warnings=warnings)
    verdict, answers = asyncio.run(_send(target, plan, records))
    code = code_of(verdict)
    return RowTest(
        target.name,
        primary_key,
        plan.endpoint_name,
        body,
        sent=True,
        status=str(status_of(verdict)),
        reason=reason_of(verdict),
        code=str(code) if code else None,
        answers=answers,
        warnings=warnings,
    )


async def _ready(target: SyncTarget, plan: TypePlan, send: bool) -> list[str]:
    """Inspect the destination for the plan (prepare it when sending); without sending, a destination that
    does not answer is a warning, not a failure: the request is shown all the same."""
    async with IterableClient(target.destination, policy=CHECK_POLICY) as client:
        if send:
            return await plan.prepare_destination(client)
        try:
            return await plan.inspect_destination(client)
        except DestinationError as exc:
            return [f"the destination was not read ({exc}): its field types were not checked"]


def _find_row(source: Source, target: SyncTarget, primary_key: str) -> pa.Table:
    """The model's row with this key: the database looks it up where the key's type allows, else the model
    is streamed (memory stays bounded) and filtered here."""
    columns = target.model.key_columns
    wanted = _key_parts(primary_key, len(columns))
    model = narrowed_to_key(source, target.model, source.schema(target.model), wanted) or target.model
    found: list[pa.Table] = []
    # Keys compare by the text CDC gives them (DuckDB's), the text runs show and the user copies.
    equal = " AND ".join(f"CAST({quote(column)} AS VARCHAR) = ?" for column in columns)
    with source.read(model, DEFAULT_BATCH_ROWS) as batches, duckdb.connect() as con:
        for batch in batches:
            con.register("batch", batch)
            matched = con.sql(f"SELECT * FROM batch WHERE {equal}", params=wanted).to_arrow_table()
            con.unregister("batch")
            if matched.num_rows:
                found.append(matched)
    rows = sum(table.num_rows for table in found)
    name = ", ".join(columns)
    if rows == 0:
        raise ModelError(f"model {target.sync.model!r} has no row with primary key {name} = {primary_key}")
    if rows > 1:
        raise ModelError(
            f"primary key {name} = {primary_key} appears {rows} times in model {target.sync.model!r}: "
            "a run skips every copy until it is unique"
        )
    return found[0]


def _first_row(source: Source, target: SyncTarget) -> tuple[pa.Table, str]:
    """The model's first row and its key's text, as runs show it (what a sync editor previews)."""
    row = source.preview(target.model, 1)
    if not row.num_rows:
        raise ModelError(f"model {target.sync.model!r} has no rows to preview a request with")
    with duckdb.connect() as con:
        con.register("row", row)
        (text,) = con.sql(f"SELECT {key_text_sql(target.model.key_columns)} FROM row").fetchall()[0]
    return row, str(text)


def _key_parts(primary_key: str, parts: int) -> list[str]:
    """The text of each key column: the key itself, or the items of its JSON array for a composite key."""
    if parts == 1:
        return [primary_key]
    try:
        items = orjson.loads(primary_key)
    except orjson.JSONDecodeError:
        items = None
    if not isinstance(items, list) or len(items) != parts:
        raise ModelError(f'a composite primary key is given as a JSON array of its {parts} parts, such as [1, "a"]')
    return [item if isinstance(item, str) else orjson.dumps(item).decode() for item in items]


async def _send(target: SyncTarget, plan: TypePlan, records: Sequence[Record]) -> tuple[Verdict, list[Answer]]:
    """Send the records as a run does; the verdict, and every answer to their requests."""
    recorder = _Recorder()
    async with IterableClient(target.destination, transport=recorder) as client:
        [(_record, verdict)] = list(await plan.writer(client).deliver(records))
    return verdict, recorder.answers


class _Recorder(httpx.AsyncBaseTransport):
    """A transport that keeps every answer it passes on."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.answers: list[Answer] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        try:
            body: Any = orjson.loads(content)
        except orjson.JSONDecodeError:
            body = content.decode(errors="replace")
        self.answers.append(Answer(f"{request.method} {request.url.path}", response.status_code, body))
        # The content is decoded now: the headers must not ask for decoding it again.
        headers = [
            (k, v) for k, v in response.headers.items() if k.lower() not in ("content-encoding", "content-length")
        ]
        return httpx.Response(response.status_code, headers=headers, content=content, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()
