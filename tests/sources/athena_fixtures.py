"""Athena fixtures: a loopback server speaking the part of Amazon Athena's JSON API the connector uses, its
answers computed by FakeEngine(dialect="athena"), its result files written to moto's S3 server (also on
loopback), from where the connector reads them as it would from S3.

What it serves, as Athena's API reference documents it (its REST-JSON protocol, which the pinned
botocore speaks, and its JSON 1.1 protocol, ``X-Amz-Target: AmazonAthena.<Operation>``, which older ones do):

* ``StartQueryExecution`` runs the statement (the work group must exist, and an output location come from the
  request or the work group); ``GetQueryExecution`` shows it QUEUED, then RUNNING, then SUCCEEDED or FAILED
  (so the connector polls), with its output location; ``StopQueryExecution`` cancels it;
* a succeeded query's result is written as Athena writes it: ``<id>.csv`` at the output location, every value
  quoted, a NULL an empty field without quotes, timestamps with time zone as ``2024-01-02 03:04:05.000 UTC``;
  ``GetQueryResults`` answers its header row and rows as ``VarCharValue``s, with ``ResultSetMetadata``'s
  column types (``bigint``, ``decimal`` with precision and scale, ``timestamp with time zone``, ``json``...);
* a failed query is ``FAILED`` with a ``StateChangeReason`` as Athena words it (``SYNTAX_ERROR: ...``,
  ``TABLE_NOT_FOUND: ...``, ``COLUMN_NOT_FOUND: ...``) and an ``AthenaError`` (category 2: the user's);
* ``ListDatabases`` and ``ListTableMetadata`` list the dataset's database and its tables;
* a request signed with an access key it does not know is refused (``UnrecognizedClientException``).

Injectable: ``hold`` keeps queries RUNNING until stopped, ``denied_tables`` fails a query reading them for want
of a Glue permission, ``denied_actions`` refuses an operation (``AccessDeniedException``). ``queries``,
``stopped``, ``access_keys`` and ``open_connections`` let the tests see what the connector did.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import boto3
import psutil
import pyarrow as pa
import pytest
from moto.server import ThreadedMotoServer

from .loopback import CountingHandler, released

ACCESS_KEY, SECRET_KEY = "AKIDSMARTINGEST0TEST", "athena-Secret-0123456789"
DATABASE = "sales"
BUCKET = "athena-results"
WORK_GROUPS = {"primary": None, "analytics": f"s3://{BUCKET}/analytics/"}
ACCOUNT = "123456789012"

_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


@dataclass
class Query:
    id: str
    sql: str
    work_group: str
    output: str
    context: dict[str, Any]
    state: str = "QUEUED"
    final: str = "SUCCEEDED"
    polls: int = 0
    reason: str = ""
    columns: list[dict[str, Any]] = field(default_factory=list)
    rows: list[list[str | None]] = field(default_factory=list)


class AthenaFake:
    """The fake Athena, in a thread on a free loopback port; its results go to the S3 server at ``s3_url``."""

    def __init__(self, s3_url: str) -> None:
        from .fake_engine import FakeEngine

        self.engine = FakeEngine("athena", DATABASE)
        self.s3_url = s3_url
        self.hold = False
        self.denied_tables: set[str] = set()
        self.denied_actions: set[str] = set()
        self.queries: dict[str, Query] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.stopped: list[str] = []
        self.access_keys: list[str] = []
        self._open = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="athena-fake", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def reset(self) -> None:
        self.hold = False
        self.denied_tables = set()
        self.denied_actions = set()

    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def running(self) -> list[str]:
        return [q.id for q in list(self.queries.values()) if q.state in ("QUEUED", "RUNNING")]

    def _opened(self, delta: int) -> None:
        with self._lock:
            self._open += delta

    # ------------------------------------------------------------------------------------------------ operations

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        work_group = body.get("WorkGroup", "primary")
        if work_group not in WORK_GROUPS:
            raise _Refused("InvalidRequestException", f"WorkGroup {work_group} is not found.")
        output = (body.get("ResultConfiguration") or {}).get("OutputLocation") or WORK_GROUPS[work_group]
        if output is None:
            raise _Refused(
                "InvalidRequestException",
                "No output location provided. An output location is required either through the Workgroup result "
                "configuration setting or as an API input.",
            )
        query = Query(
            f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}",
            str(body["QueryString"]),
            work_group,
            output.rstrip("/") + "/",
            body.get("QueryExecutionContext") or {},
        )
        self.queries[query.id] = query
        self._run(query)
        return {"QueryExecutionId": query.id}

    def _run(self, query: Query) -> None:
        from .fake_engine import EngineError

        named = {t.lower() for t in re.findall(r"\w+", query.sql)}
        denied = sorted(t for t in self.denied_tables if t in named)
        if denied:
            query.final = "FAILED"
            query.reason = (
                f"Insufficient permissions to execute the query. User: arn:aws:iam::{ACCOUNT}:user/smartingest is not "
                f"authorized to perform: glue:GetTable on resource: arn:aws:glue:us-east-1:{ACCOUNT}:table/"
                f"{DATABASE}/{denied[0]} because no identity-based policy allows the glue:GetTable action"
            )
            return
        try:
            table = self.engine.execute(query.sql)
            described = self.engine.describe(query.sql)
        except EngineError as exc:
            query.final, query.reason = "FAILED", _athena_reason(exc)
            return
        query.columns = [_column_info(name, duck) for name, duck in described]
        query.rows = [[_text(v) for v in row.values()] for row in table.to_pylist()]
        self._write(query)

    def _write(self, query: Query) -> None:
        """The result file, as Athena writes it to the output location."""
        lines = [",".join(_quoted(c["Name"]) for c in query.columns)]
        lines += [",".join("" if v is None else _quoted(v) for v in row) for row in query.rows]
        bucket, _, prefix = query.output.removeprefix("s3://").partition("/")
        s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name="us-east-1",
            aws_access_key_id="moto",
            aws_secret_access_key="moto",
        )
        try:
            s3.put_object(Bucket=bucket, Key=f"{prefix}{query.id}.csv", Body=("\n".join(lines) + "\n").encode())
        finally:
            s3.close()

    def execution(self, query_id: str) -> dict[str, Any]:
        query = self._query(query_id)
        query.polls += 1
        if query.state == "QUEUED":
            query.state = "RUNNING"
        elif query.state == "RUNNING" and not self.hold:
            query.state = query.final
        status: dict[str, Any] = {"State": query.state, "SubmissionDateTime": time.time()}
        if query.state == "FAILED":
            status["StateChangeReason"] = query.reason
            status["AthenaError"] = {
                "ErrorCategory": 2,
                "ErrorType": 1100,
                "Retryable": False,
                "ErrorMessage": query.reason,
            }
        return {
            "QueryExecution": {
                "QueryExecutionId": query.id,
                "Query": query.sql,
                "StatementType": "DML",
                "ResultConfiguration": {"OutputLocation": f"{query.output}{query.id}.csv"},
                "QueryExecutionContext": query.context,
                "Status": status,
                "Statistics": {"EngineExecutionTimeInMillis": 5, "DataScannedInBytes": 0},
                "WorkGroup": query.work_group,
            }
        }

    def results(self, body: dict[str, Any]) -> dict[str, Any]:
        query = self._query(body["QueryExecutionId"])
        if query.state != "SUCCEEDED":
            raise _Refused("InvalidRequestException", f"Query has not yet finished. Current state: {query.state}")
        header = [{"VarCharValue": c["Name"]} for c in query.columns]
        rows = [{"Data": header}] + [
            {"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in query.rows
        ]
        return {
            "ResultSet": {
                "Rows": rows[: int(body.get("MaxResults") or 1000)],
                "ResultSetMetadata": {"ColumnInfo": query.columns},
            },
            "UpdateCount": 0,
        }

    def stop(self, query_id: str) -> dict[str, Any]:
        query = self._query(query_id)
        self.stopped.append(query_id)
        if query.state in ("QUEUED", "RUNNING"):
            query.state = "CANCELLED"
        return {}

    def databases(self) -> dict[str, Any]:
        return {"DatabaseList": [{"Name": "information_schema"}, {"Name": DATABASE}]}

    def tables(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("DatabaseName") != DATABASE:
            return {"TableMetadataList": []}
        listed = [{"Name": name, "TableType": "EXTERNAL_TABLE"} for _, name in self.engine.tables()]
        return {"TableMetadataList": listed}

    def _query(self, query_id: str) -> Query:
        if query_id not in self.queries:
            raise _Refused("InvalidRequestException", f"QueryExecution {query_id} was not found")
        return self.queries[query_id]


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _athena_reason(exc: Any) -> str:
    """An engine refusal as Athena's StateChangeReason words it."""
    if exc.kind == "syntax":
        return f"SYNTAX_ERROR: line 1:1: mismatched input: {exc.message}"
    if exc.kind == "missing_table":
        return f"TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.{DATABASE}.{exc.name}' does not exist"
    if exc.kind == "missing_column":
        return f"COLUMN_NOT_FOUND: line 1:8: Column '{exc.name}' cannot be resolved or requester is not authorized"
    if exc.kind == "write":
        return f"Insufficient permissions to execute the query. {exc.message}"
    return f"GENERIC_USER_ERROR: {exc.message}"


_TYPES = {
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "SMALLINT": "smallint",
    "TINYINT": "tinyint",
    "DOUBLE": "double",
    "FLOAT": "real",
    "VARCHAR": "varchar",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
    "TIMESTAMP": "timestamp",
    "JSON": "json",
    "BLOB": "varbinary",
    "TIME": "time",
    "UUID": "uuid",
    '"NULL"': "unknown",
}


def _column_info(name: str, duck: str) -> dict[str, Any]:
    info: dict[str, Any] = {"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": name, "Label": name}
    found = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", duck)
    if found:
        info |= {"Type": "decimal", "Precision": int(found[1]), "Scale": int(found[2])}
    elif duck.endswith("[]"):
        info |= {"Type": "array", "Precision": 0, "Scale": 0}
    elif duck.startswith("STRUCT"):
        info |= {"Type": "row", "Precision": 0, "Scale": 0}
    elif duck.startswith("MAP"):
        info |= {"Type": "map", "Precision": 0, "Scale": 0}
    elif duck.startswith("TIMESTAMP_"):  # DuckDB's TIMESTAMP_MS, _S, _NS: Athena's timestamp(p)
        info |= {"Type": "timestamp", "Precision": 3, "Scale": 0}
    else:
        info |= {"Type": _TYPES.get(duck, "varchar"), "Precision": 0, "Scale": 0}
    return info | {"Nullable": "UNKNOWN", "CaseSensitive": info["Type"] == "varchar"}


def _text(value: Any) -> str | None:
    """A value as Athena writes it in a result."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        zone = ""
        if value.tzinfo is not None:
            value, zone = value.astimezone(dt.UTC), " UTC"
        return f"{value:%Y-%m-%d %H:%M:%S}.{value.microsecond // 1000:03d}{zone}"
    if isinstance(value, dt.date | Decimal | int | float | str):
        return str(value) if not isinstance(value, dt.date) else value.isoformat()
    if isinstance(value, bytes):
        return " ".join(f"{b:02x}" for b in value)
    if isinstance(value, list):
        return "[" + ", ".join(str(_text(v)) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_text(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class _Handler(CountingHandler):
    @property
    def fake(self) -> AthenaFake:
        return self.server.fake  # type: ignore[attr-defined, no-any-return]

    def count(self, delta: int) -> None:
        self.fake._opened(delta)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        operation, body = self._operation(json.loads(raw) if raw else {})
        self.fake.requests.append((operation, body))
        found = _CREDENTIAL.search(self.headers.get("Authorization", ""))
        key = found[1] if found else ""
        self.fake.access_keys.append(key)
        if key != ACCESS_KEY and not key.startswith("ASIA"):  # ASIA...: temporary keys moto's STS issued
            message = "The security token included in the request is invalid."
            self._error(403, "UnrecognizedClientException", message)
            return
        if operation in self.fake.denied_actions:
            message = (
                f"User: arn:aws:iam::{ACCOUNT}:user/smartingest is not authorized to perform: athena:{operation} on "
                f"resource: arn:aws:athena:us-east-1:{ACCOUNT}:workgroup/primary because no identity-based policy "
                f"allows the athena:{operation} action"
            )
            self._error(400, "AccessDeniedException", message)
            return
        try:
            self._answer(200, self._operate(operation, body))
        except _Refused as exc:
            self._error(400, exc.code, exc.message)

    def _operation(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The operation and its input: from ``X-Amz-Target`` and the body (Athena's JSON 1.1 protocol), or from
        the method, the path and the query string (its REST-JSON protocol, which botocore now speaks)."""
        target = self.headers.get("X-Amz-Target", "")
        if target:
            return target.removeprefix("AmazonAthena."), body
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        path = [unquote(p) for p in parts.path.strip("/").split("/")]
        routes = {
            ("POST", 1): "StartQueryExecution",
            ("GET", 2): "GetQueryExecution",
            ("GET", 3): "GetQueryResults",
            ("POST", 3): "StopQueryExecution",
        }
        if path[0] == "query-executions" and (self.command, len(path)) in routes:
            if len(path) > 1:
                body = body | {"QueryExecutionId": path[1]}
            return routes[(self.command, len(path))], body | query
        if path[0] == "data-catalogs" and len(path) == 3:
            return "ListDatabases", query | {"CatalogName": path[1]}
        if path[0] == "data-catalogs" and len(path) == 5:
            return "ListTableMetadata", query | {"CatalogName": path[1], "DatabaseName": path[3]}
        return f"{self.command} {parts.path}", body

    def _operate(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        if operation == "StartQueryExecution":
            return fake.start(body)
        if operation == "GetQueryExecution":
            return fake.execution(body["QueryExecutionId"])
        if operation == "GetQueryResults":
            return fake.results(body)
        if operation == "StopQueryExecution":
            return fake.stop(body["QueryExecutionId"])
        if operation == "ListDatabases":
            return fake.databases()
        if operation == "ListTableMetadata":
            return fake.tables(body)
        raise _Refused("InvalidRequestException", f"this fake does not serve {operation}")

    def _error(self, status: int, code: str, message: str) -> None:
        self._answer(status, {"__type": code, "Message": message}, {"x-amzn-ErrorType": code})

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("x-amzn-RequestId", secrets.token_hex(16))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


# ------------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """moto's S3 server on a free loopback port, holding the query result bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server._server.server_port}"  # type: ignore[union-attr]
    s3 = boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="moto", aws_secret_access_key="moto"
    )
    s3.create_bucket(Bucket=BUCKET)
    s3.close()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def athena_server(moto_s3: str) -> Iterator[AthenaFake]:
    fake = AthenaFake(moto_s3)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def athena_fake(athena_server: AthenaFake) -> Iterator[AthenaFake]:
    """The session's fake Athena, its injected failures cleared after the test."""
    yield athena_server
    athena_server.reset()


def athena_settings(fake: AthenaFake, **overrides: Any) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "database": DATABASE,
        "s3_staging_dir": f"s3://{BUCKET}/results/",
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "endpoint_url": fake.url,
        "s3_endpoint_url": fake.s3_url,
    } | overrides


def s3_connections(s3_url: str) -> int:
    """This process's open client connections to the S3 server (the connector's, reading results)."""
    port = int(s3_url.rsplit(":", 1)[1])
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status in (psutil.CONN_ESTABLISHED, psutil.CONN_CLOSE_WAIT)
    )


def athena_released(fake: AthenaFake, wait: float = 2.0) -> bool:
    """No connection of the source's to Athena or S3 is open, and none of its queries still runs."""

    def held() -> bool:
        return bool(fake.open_connections() or fake.running() or s3_connections(fake.s3_url))

    return released(held, wait)


@pytest.fixture
def athena_case(athena_fake: AthenaFake) -> Any:
    from smartingest.sources.athena import AthenaSource

    from .conftest import Case, _expected_rows

    settings = athena_settings(athena_fake)
    return Case(
        name="athena",
        source=AthenaSource(AthenaSource.Settings(**settings)),
        schema_name=DATABASE,
        types={
            "id": pa.int64(),  # bigint
            "name": pa.string(),
            "balance": pa.decimal128(12, 2),
            "score": pa.float64(),
            "active": pa.bool_(),
            "born": pa.date32(),
            "updated_at": pa.timestamp("us", tz="UTC"),  # timestamp with time zone
            "attrs": pa.string(),  # json
        },
        rows=_expected_rows(decimal=True, native_dates=True),
        is_released=lambda wait=2.0: athena_released(athena_fake, wait),
        settings=settings,
        released_means=(
            "no HTTP connection of the source's to the fake Athena or to the S3 server is open and none of its"
            " queries still runs (Athena's API has no sessions to count)"
        ),
    )
