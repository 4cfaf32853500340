"""Databricks connector: statements run on a SQL warehouse through Databricks' SQL Statement Execution API,
their results read as Arrow IPC streams from the result's external links.

The API is plain HTTPS and JSON, spoken here with httpx (a dependency of smartingest's already): the
official SDK would add requests, google-auth and protobuf for three endpoints. A read:

1. ``POST /api/2.0/sql/statements`` with the warehouse, the catalog and schema, ``format: ARROW_STREAM`` and
   ``disposition: EXTERNAL_LINKS``; the answer waits a few seconds for the statement, then
   ``GET /api/2.0/sql/statements/{id}`` polls it until it succeeds, fails or runs past
   ``query_timeout_seconds`` (then ``POST .../cancel`` stops it, and the error names the setting);
2. the answer's manifest describes the result's columns: each one's plain Arrow type is planned from it
   (``_plan``), so an empty result has its types and every chunk reads the same;
3. the result is a chain of chunks: each external link (a pre-signed URL of the cloud's object store,
   fetched without the workspace's token) is an Arrow IPC stream, read one record batch at a time from the
   response as it arrives; a chunk's ``next_chunk_internal_link`` gives the next chunk's links. Memory holds
   one record batch of one chunk, never the whole result. A link that expired before it was fetched is asked
   for again.

Databricks has no read-only session: the base class refuses a model that would write, and the principal
should hold only the privileges docs/sources.md lists. A personal access token or an OAuth machine-to-machine
login (a service principal's client id and secret, exchanged for a token at ``/oidc/v1/token`` and renewed
before it expires) authenticates each call.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
import warnings
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import pyarrow as pa
from pydantic import Field, SecretStr, field_validator, model_validator

from smartingest.config.models import ModelConfig, Strict
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources._common import BatchStream, one_line, rebatch, scrub_secrets, source_error, translate_errors
from smartingest.sources._result_plan import ResultColumn, conformed, planned_schema
from smartingest.sources.base import describe_model
from smartingest.sources.sql import SqlConnector, loading_statements

_WAREHOUSE_PATH = re.compile(r"^/sql/1\.0/(?:warehouses|endpoints)/([A-Za-z0-9]+)/?$")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_STATEMENTS = "/api/2.0/sql/statements"
_LOAD_ROWS = 5000  # rows per INSERT of the Lightning engine's loads
_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "CLOSED"})
_TOKEN_MARGIN_SECONDS = 60  # an OAuth token is renewed this long before it expires

# ``schema`` is Databricks' own word for the key; it shadows BaseModel's deprecated schema() method, never used
# on settings, and pydantic would warn about that at every import.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class DatabricksSettings(Strict):
        """Connection settings of a Databricks source (the keys of ``sources.NAME`` besides type and engine)."""

        host: str = Field(
            description="Workspace URL (https://dbc-a1b2c3d4-e5f6.cloud.databricks.com, "
            "https://adb-1234567890123456.7.azuredatabricks.net); https:// is assumed when left out."
        )
        http_path: str | None = Field(
            None, description="The SQL warehouse's HTTP path (/sql/1.0/warehouses/<id>); or give warehouse_id."
        )
        warehouse_id: str | None = Field(None, description="The SQL warehouse's id; or give http_path.")
        access_token: SecretStr | None = Field(
            None, description="Personal access token; or client_id and client_secret (OAuth machine-to-machine)."
        )
        client_id: str | None = Field(
            None, description="OAuth machine-to-machine: the service principal's client (application) id."
        )
        client_secret: SecretStr | None = Field(
            None, description="OAuth machine-to-machine: the service principal's OAuth secret."
        )
        catalog: str | None = Field(
            None, description="Catalog for unqualified names, listed by the table picker (default: the workspace's)."
        )
        schema: str | None = Field(  # type: ignore[assignment]
            None, description="Schema in which unqualified table names are looked up (default: the catalog's default)."
        )
        connect_timeout_seconds: int = Field(10, ge=1, le=3600, description="Seconds to wait for a connection.")
        query_timeout_seconds: int | None = Field(
            None, ge=1, description="Cancel a statement that runs longer than this (no limit when unset)."
        )

        @field_validator("host")
        @classmethod
        def _workspace_url(cls, value: str) -> str:
            url = value.strip().rstrip("/")
            if "://" not in url:
                url = "https://" + url
            parts = urlsplit(url)
            if parts.scheme not in ("https", "http") or not parts.hostname or parts.path:
                raise ValueError(f"{value!r} is not a workspace URL (https://dbc-a1b2c3d4-e5f6.cloud.databricks.com)")
            if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
                raise ValueError("http:// would send the token in clear: use https:// (http is for local test servers)")
            return url

        @model_validator(mode="after")
        def _warehouse_and_credentials(self) -> Self:
            if self.http_path is not None:
                found = _WAREHOUSE_PATH.match(self.http_path)
                if found is None:
                    raise ValueError(f"http_path {self.http_path!r} is not a SQL warehouse's: /sql/1.0/warehouses/<id>")
                if self.warehouse_id is not None and self.warehouse_id != found[1]:
                    raise ValueError("http_path and warehouse_id name different warehouses: give one of them")
                self.warehouse_id = found[1]
            if self.warehouse_id is None:
                raise ValueError("give the SQL warehouse: http_path or warehouse_id")
            oauth = self.client_id is not None or self.client_secret is not None
            if oauth and (self.client_id is None or self.client_secret is None):
                raise ValueError("OAuth machine-to-machine needs both client_id and client_secret")
            if oauth == (self.access_token is not None):
                raise ValueError("give exactly one of access_token and client_id + client_secret")
            return self


# ------------------------------------------------------------------------------------------------ HTTP layer


class DatabricksApiError(Exception):
    """An error answer of the workspace's API (or of the token endpoint), before any statement ran."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"{error_code}: {message}" if error_code else message)
        self.status = status
        self.error_code = error_code
        self.message = message


class StatementFailed(Exception):
    """A statement that ended FAILED or CANCELED: its error code, SQLSTATE and Databricks' message."""

    def __init__(self, state: str, error_code: str, sql_state: str, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.error_code = error_code
        self.sql_state = sql_state
        self.message = message


def _api_error(response: httpx.Response) -> DatabricksApiError:
    """The error an answer carries: Databricks' ``{"error_code", "message"}``, OAuth's ``{"error",
    "error_description"}``, or the bare text of a proxy or gateway."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("error_code") or body.get("error") or "")
        message = str(body.get("message") or body.get("error_description") or response.reason_phrase)
    else:
        code, message = "", one_line(response.text[:300]) or response.reason_phrase
    return DatabricksApiError(response.status_code, code, one_line(message))


class _ClientCredentials(httpx.Auth):
    """OAuth machine-to-machine: a service principal's token from the workspace's token endpoint, renewed
    before it expires (a long read outlives the hour a token lasts)."""

    requires_response_body = True

    def __init__(self, host: str, client_id: str, client_secret: str) -> None:
        self._url = f"{host}/oidc/v1/token"
        self._basic = httpx.BasicAuth(client_id, client_secret)
        self._token = ""
        self._renew_at = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if time.monotonic() >= self._renew_at:
            token_request = httpx.Request(
                "POST", self._url, data={"grant_type": "client_credentials", "scope": "all-apis"}
            )
            response = yield next(self._basic.auth_flow(token_request))
            if response.status_code != httpx.codes.OK:
                raise _api_error(response)
            answer = response.json()
            self._token = str(answer["access_token"])
            lifetime = float(answer.get("expires_in", 3600))
            self._renew_at = time.monotonic() + max(lifetime - _TOKEN_MARGIN_SECONDS, lifetime / 2)
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class _StreamedBody(io.RawIOBase):
    """A streamed response body as a readable file, for pyarrow's IPC reader (it reads what it needs)."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_bytes()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


@dataclass
class Workspace:
    """One call's clients: ``api`` speaks to the workspace with its credentials, ``download`` fetches the
    pre-signed result links, which must not see them."""

    settings: DatabricksSettings
    api: httpx.Client
    download: httpx.Client

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.api.request(method, path, **kwargs)
        if response.status_code != httpx.codes.OK:
            raise _api_error(response)
        answer: dict[str, Any] = response.json()
        return answer

    def cancel(self, statement_id: str) -> None:
        self.call("POST", f"{_STATEMENTS}/{statement_id}/cancel")

    def run(self, query: str) -> dict[str, Any]:
        """Run ``query`` and return its answer once it SUCCEEDED; StatementFailed when it failed, a permanent
        SourceError naming query_timeout_seconds when it ran past it (after cancelling it)."""
        s = self.settings
        timeout = s.query_timeout_seconds
        # The first answer waits for the statement up to wait_timeout (0, or 5 to 50 s), then it is polled.
        wait = 10 if timeout is None else (min(timeout, 10) if timeout >= 5 else 0)
        body: dict[str, Any] = {
            "statement": query,
            "warehouse_id": s.warehouse_id,
            "format": "ARROW_STREAM",
            "disposition": "EXTERNAL_LINKS",
            "wait_timeout": f"{wait}s",
            "on_wait_timeout": "CONTINUE",
        }
        if s.catalog is not None:
            body["catalog"] = s.catalog
        if s.schema is not None:
            body["schema"] = s.schema
        started = time.monotonic()
        answer = self.call("POST", _STATEMENTS, json=body)
        statement_id = str(answer["statement_id"])
        try:
            answer = self._wait(answer, statement_id, started)
        except BaseException:
            if _state(answer) not in _TERMINAL:
                with contextlib.suppress(Exception):  # the first error is the one to report
                    self.cancel(statement_id)
            raise
        return answer

    def _wait(self, answer: dict[str, Any], statement_id: str, started: float) -> dict[str, Any]:
        timeout = self.settings.query_timeout_seconds
        pause = 0.05
        while _state(answer) not in _TERMINAL:
            if timeout is not None and time.monotonic() - started >= timeout:
                self.cancel(statement_id)
                raise source_error(
                    SourceError,
                    f"the statement ran longer than query_timeout_seconds ({timeout}) and was cancelled; raise it "
                    "or make the query faster",
                    transient=False,
                )
            remaining = None if timeout is None else timeout - (time.monotonic() - started)
            time.sleep(min(pause, remaining) if remaining is not None else pause)
            pause = min(pause * 2, 2.0)
            answer = self.call("GET", f"{_STATEMENTS}/{statement_id}")
        status = answer.get("status") or {}
        if status.get("state") != "SUCCEEDED":
            error = status.get("error") or {}
            raise StatementFailed(
                str(status.get("state")),
                str(error.get("error_code") or ""),
                str(status.get("sql_state") or ""),
                one_line(str(error.get("message") or f"the statement ended {status.get('state')}")),
            )
        return answer

    def batches(self, answer: dict[str, Any]) -> Iterator[pa.RecordBatch]:
        """The record batches of a SUCCEEDED statement's result, chunk after chunk."""
        statement_id = str(answer["statement_id"])
        links = (answer.get("result") or {}).get("external_links") or []
        if not links and (answer.get("manifest") or {}).get("total_chunk_count"):
            links = self._links(statement_id, 0)
        while links:
            for link in links:
                yield from self._chunk(statement_id, link)
            following = links[-1].get("next_chunk_index")
            links = self._links(statement_id, int(following)) if following is not None else []

    def _links(self, statement_id: str, chunk: int) -> list[dict[str, Any]]:
        links: list[dict[str, Any]] = (
            self.call("GET", f"{_STATEMENTS}/{statement_id}/result/chunks/{chunk}").get("external_links") or []
        )
        return links

    def _chunk(self, statement_id: str, link: dict[str, Any]) -> Iterator[pa.RecordBatch]:
        for attempt in (1, 2):
            headers = link.get("http_headers") or {}
            with self.download.stream("GET", link["external_link"], headers=headers) as response:
                if response.status_code in (403, 404) and attempt == 1:
                    # A pre-signed link lasts minutes: one that expired while earlier chunks were read is renewed.
                    link = self._links(statement_id, int(link["chunk_index"]))[0]
                    continue
                if response.status_code != httpx.codes.OK:
                    # The cloud's object store answered, not the workspace: its refusal is no credential's.
                    text = one_line(response.read().decode(errors="replace")[:300])
                    raise source_error(
                        SourceConnectionError,
                        f"chunk {link.get('chunk_index')} of the result could not be fetched from its link "
                        f"(HTTP {response.status_code}): {text}",
                        transient=True,
                    )
                yield from pa.ipc.open_stream(io.BufferedReader(_StreamedBody(response), 1 << 20))
                return


def _state(answer: dict[str, Any]) -> str:
    return str((answer.get("status") or {}).get("state") or "")


# ------------------------------------------------------------------------------------------------- the plan

_PLAIN_TYPES: dict[str, pa.DataType] = {
    "BOOLEAN": pa.bool_(),
    "BYTE": pa.int8(),
    "SHORT": pa.int16(),
    "INT": pa.int32(),
    "LONG": pa.int64(),
    "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
    "STRING": pa.string(),
    "CHAR": pa.string(),
    "BINARY": pa.binary(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "TIMESTAMP_NTZ": pa.timestamp("us"),
    "NULL": pa.string(),
}
# Sent as their JSON text (Databricks writes nested values as JSON in an Arrow result), marked as JSON.
_JSON_TYPES = frozenset({"ARRAY", "MAP", "STRUCT", "VARIANT"})


def _column(meta: dict[str, Any], subject: str) -> ResultColumn:
    name, kind = str(meta["name"]), str(meta.get("type_name") or "").upper()
    if kind == "DECIMAL":
        precision, scale = int(meta.get("type_precision") or 38), int(meta.get("type_scale") or 0)
        return ResultColumn(name, pa.decimal128(precision, scale))
    if kind in _PLAIN_TYPES:
        return ResultColumn(name, _PLAIN_TYPES[kind])
    if kind in _JSON_TYPES:
        return ResultColumn(name, pa.string(), json=True)
    if kind == "INTERVAL":
        return ResultColumn(name, pa.string())
    raise ModelError(
        f"{subject}: column {name!r} is of Databricks type {meta.get('type_text') or kind}, which is not read as "
        f"such: cast it in the model's SQL, e.g. CAST({name} AS STRING)"
    )


def _plan(answer: dict[str, Any], subject: str) -> list[ResultColumn]:
    columns = ((answer.get("manifest") or {}).get("schema") or {}).get("columns") or []
    if not columns:
        raise ModelError(f"{subject} is not a query that returns rows")
    return [_column(meta, subject) for meta in sorted(columns, key=lambda c: int(c.get("position", 0)))]


def _cast_hint(column: str) -> str:
    return f"CAST(`{column}` AS STRING)"


# ------------------------------------------------------------------------------------------------ the connector


class DatabricksSource(SqlConnector[DatabricksSettings, Workspace]):
    """A Databricks SQL warehouse read through the Statement Execution API; see the module docstring."""

    Settings = DatabricksSettings
    DIALECT = "databricks"

    def __repr__(self) -> str:  # never show the token or the client secret
        s = self.settings
        return f"DatabricksSource(host={s.host!r}, warehouse_id={s.warehouse_id!r}, catalog={s.catalog!r})"

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self) -> Iterator[Workspace]:
        s = self.settings
        timeout = httpx.Timeout(60.0, connect=float(s.connect_timeout_seconds))
        auth: httpx.Auth
        if s.access_token is not None:
            auth = _Bearer(s.access_token.get_secret_value())
        else:
            secret = s.client_secret.get_secret_value() if s.client_secret else ""
            auth = _ClientCredentials(s.host, s.client_id or "", secret)
        headers = {"User-Agent": "smartingest"}
        with (
            httpx.Client(base_url=s.host, auth=auth, timeout=timeout, headers=headers) as api,
            httpx.Client(timeout=timeout, headers=headers) as download,
        ):
            yield Workspace(s, api, download)

    def _stream(self, conn: Workspace, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        subject = f"model {describe_model(model)}"
        with translate_errors(translate):
            answer = conn.run(query)
            columns = _plan(answer, subject)
        batches = rebatch(conformed(conn.batches(answer), columns, subject, _cast_hint), batch_rows)
        return BatchStream(planned_schema(columns), batches, translate)

    def _rows(self, conn: Workspace, query: str) -> list[tuple[Any, ...]]:
        answer = conn.run(query)
        return [tuple(row.values()) for batch in conn.batches(answer) for row in batch.to_pylist()]

    def _planner_session(self) -> contextlib.AbstractContextManager[Workspace]:
        return self._session()  # nothing makes the session read-only

    def _execute(self, conn: Workspace, sql: str) -> None:
        conn.run(sql)

    def _load(self, conn: Workspace, schema: str, table: str, data: pa.RecordBatchReader) -> None:
        # The Statement Execution API takes rows only as a statement's text: multi-row INSERTs of literals,
        # each well under its 16 MiB limit on a statement.
        for statement in loading_statements(self, schema, table, data, _LOAD_ROWS):
            conn.run(statement)

    def _tables_sql(self, limit: int) -> str:
        # The catalog's information schema lists what the principal may see, views included.
        return (
            "SELECT concat(table_schema, '.', table_name) FROM information_schema.tables"
            f" WHERE table_schema <> 'information_schema' ORDER BY 1 LIMIT {limit}"
        )

    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        return map_databricks_error(exc, self.settings, model)


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


# ---------------------------------------------------------------------------------------------- error mapping

_ERROR_CLASS = re.compile(r"^\[([A-Z_][A-Z0-9_.]*)\]")
_SYNTAX = frozenset({"PARSE_SYNTAX_ERROR", "PARSE_EMPTY_STATEMENT"})
_NO_PRIVILEGE = frozenset({"INSUFFICIENT_PERMISSIONS", "PERMISSION_DENIED"})
_TRANSIENT_CODES = frozenset(
    {
        "TEMPORARILY_UNAVAILABLE",
        "WORKSPACE_TEMPORARILY_UNAVAILABLE",
        "SERVICE_UNDER_MAINTENANCE",
        "RESOURCE_EXHAUSTED",
        "REQUEST_LIMIT_EXCEEDED",
        "IO_ERROR",
        "INTERNAL_ERROR",
        "ABORTED",
        "CANCELLED",
    }
)
_MODEL_STATES = ("42", "22", "21", "0A", "02", "54")


def map_databricks_error(
    exc: BaseException, settings: DatabricksSettings, model: ModelConfig | None = None
) -> SourceError | None:
    """Translate an error of the Statement Execution API into the error tree (None for exceptions not its own).

    The one place that decides transient vs permanent for Databricks:

    * cannot reach the workspace (refused, unknown host, timeout, connection lost, a result broken off)
      -> SourceConnectionError (transient);
    * the token refused (401; 403 "Invalid access token"), the OAuth client refused -> SourceAuthError;
    * no permission to use the warehouse (403 PERMISSION_DENIED) -> SourceAuthError naming CAN USE;
    * no such warehouse (404, RESOURCE_DOES_NOT_EXIST) -> SourceConnectionError marked permanent, naming
      http_path/warehouse_id;
    * rate limits, a warehouse starting or under maintenance (429, 503, TEMPORARILY_UNAVAILABLE...) ->
      SourceError marked transient;
    * a statement FAILED: a syntax error (PARSE_SYNTAX_ERROR, 42601) -> ModelError "has a syntax error";
      a missing table or column (TABLE_OR_VIEW_NOT_FOUND, UNRESOLVED_COLUMN...) and other errors of the SQL
      or the data (SQLSTATE 42, 22, 21, 0A) -> ModelError with Databricks' text; no privilege on a table
      (INSUFFICIENT_PERMISSIONS, 42501) -> SourceAuthError with the GRANTs; the warehouse's own statement
      timeout (DEADLINE_EXCEEDED) -> SourceError marked permanent, naming query_timeout_seconds;
      cancelled by someone else -> SourceError marked transient.
    """
    where = f"Databricks workspace {settings.host}"
    subject = f"model {describe_model(model)}" if model is not None else "the query"
    mapped: SourceError
    if isinstance(exc, httpx.TransportError):
        mapped = SourceConnectionError(f"cannot reach {where}: {one_line(str(exc)) or type(exc).__name__}")
    elif isinstance(exc, pa.ArrowInvalid):
        mapped = SourceConnectionError(f"the result of {subject} from {where} broke off: {one_line(str(exc))}")
    elif isinstance(exc, DatabricksApiError):
        mapped = _request_error(exc, settings, where)
    elif isinstance(exc, StatementFailed):
        mapped = _statement_error(exc, settings, subject)
    else:
        return None
    return scrub_secrets(mapped, settings)


def _request_error(exc: DatabricksApiError, settings: DatabricksSettings, where: str) -> SourceError:
    detail = str(exc)
    credential = "access_token" if settings.access_token is not None else "client_id and client_secret"
    if exc.status == 401 or exc.error_code in ("UNAUTHENTICATED", "invalid_client") or "access token" in detail.lower():
        return SourceAuthError(f"{where} refused the credentials (check {credential}): {detail}")
    if exc.status == 403 or exc.error_code == "PERMISSION_DENIED":
        return SourceAuthError(
            f"{where} refused the request: {detail}; the principal needs the CAN USE permission on SQL warehouse "
            f"{settings.warehouse_id} (the warehouse's Permissions in the workspace)"
        )
    if exc.status == 404 or exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
        message = f"{where} has no SQL warehouse {settings.warehouse_id!r} (check http_path or warehouse_id): {detail}"
        return source_error(SourceConnectionError, message, transient=False)
    if exc.status in (429, 502, 503, 504) or exc.error_code in _TRANSIENT_CODES:
        return source_error(SourceError, f"{where} failed temporarily: {detail}", transient=True)
    return source_error(SourceError, f"{where} refused the request: {detail}", transient=exc.status >= 500)


def _statement_error(exc: StatementFailed, settings: DatabricksSettings, subject: str) -> SourceError:
    found = _ERROR_CLASS.match(exc.message)
    error_class = found[1].split(".")[0] if found else ""
    detail = exc.message
    if exc.state == "CANCELED" or exc.error_code == "CANCELLED":
        return source_error(SourceError, f"{subject} was cancelled on the warehouse: {detail}", transient=True)
    if exc.error_code == "DEADLINE_EXCEEDED":
        return source_error(
            SourceError,
            f"{subject} ran past the warehouse's statement timeout (query_timeout_seconds: "
            f"{settings.query_timeout_seconds}): {detail}",
            transient=False,
        )
    if error_class in _NO_PRIVILEGE or exc.sql_state == "42501":
        return SourceAuthError(f"the principal may not read {subject}: {detail}; fix: {_grants(settings)}")
    if error_class in _SYNTAX or exc.sql_state == "42601":
        return ModelError(f"{subject} has a syntax error: {detail}")
    if exc.sql_state.startswith(_MODEL_STATES) or error_class:
        return ModelError(f"{subject} cannot be read: {detail}")
    transient = exc.error_code in _TRANSIENT_CODES
    return source_error(SourceError, f"{subject} failed on the warehouse: {detail}", transient=transient)


def _grants(settings: DatabricksSettings) -> str:
    catalog = settings.catalog or "<catalog>"
    schema = f"{catalog}.{settings.schema or '<schema>'}"
    return (
        f"GRANT USE CATALOG ON CATALOG {catalog} TO `<principal>`; GRANT USE SCHEMA ON SCHEMA {schema} TO "
        f"`<principal>`; GRANT SELECT ON SCHEMA {schema} TO `<principal>`"
    )


__all__ = ["DatabricksSettings", "DatabricksSource", "map_databricks_error"]
