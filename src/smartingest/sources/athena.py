"""Amazon Athena connector: queries run through Athena's API (boto3), their result files streamed from S3 into
pyarrow's CSV reader, typed by a plan made from Athena's description of the result.

A read:

1. ``StartQueryExecution`` in the work group, with the catalog and database of unqualified names and the
   output location; ``GetQueryExecution`` polls it (every 0.1 s at first, 2 s at most) until it succeeds,
   fails or runs past ``query_timeout_seconds`` (then ``StopQueryExecution`` stops it, and the error names
   the setting);
2. ``GetQueryResults`` for one row gives the result's columns (``ResultSetMetadata``): each one's plain Arrow
   type is planned from its Athena type (``_plan``) before any row is read;
3. the result file Athena wrote (CSV, at the query's output location) is streamed from S3 and parsed by
   pyarrow's CSV reader in C++, a block at a time, each column converted as it is parsed: never row by row
   through ``GetQueryResults``' JSON pages (1,000 rows a request), never the whole file in memory.

Why the CSV result rather than ``UNLOAD`` to Parquet: UNLOAD writes in parallel and compressed, so it is
faster for very large results, but it leaves files under a prefix that must be empty and that no one cleans,
runs as a second kind of statement with its own limits, and types its columns its own way; the CSV file is
written for every query anyway and comes with Athena's own column types, so one query reads the same way
for a preview, a schema and a run. (pyathena's Arrow cursor reads the same file, but whole into memory.)

Athena has no read-only session: the base class refuses a model that would write, and the IAM principal
should hold only what docs/sources.md lists. Credentials: the access key in the settings, or boto3's default
chain (environment, profile, instance or task role); ``role_arn`` is assumed on top of either, its
credentials renewed before they expire.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import boto3
import botocore.exceptions
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.session import get_session
from pydantic import Field, SecretStr, field_validator, model_validator

from smartingest.config.models import ModelConfig, Strict
from smartingest.errors import ModelError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources._common import (
    BatchStream,
    close_quietly,
    one_line,
    rebatch,
    scrub_secrets,
    source_error,
    translate_errors,
)
from smartingest.sources._result_plan import ResultColumn, conformed, planned_schema
from smartingest.sources.base import MAX_TABLES, describe_model
from smartingest.sources.sql import SqlConnector

_UTC_US = pa.timestamp("us", tz="UTC")
_RUNNING = frozenset({"QUEUED", "RUNNING"})
# pyarrow parses the file in blocks of this size, and reads a few dozen blocks ahead: that bounds the memory.
_CSV_BLOCK_BYTES = 1 << 20


class AthenaSettings(Strict):
    """Connection settings of an Amazon Athena source (the keys of ``sources.NAME`` besides type and engine)."""

    region: str = Field(description="AWS region of the Athena work group (us-east-1, eu-west-1...).")
    work_group: str = Field("primary", description="Work group the queries run in (its limits and settings apply).")
    catalog: str = Field("AwsDataCatalog", description="Data catalog of unqualified names (the Glue Data Catalog).")
    database: str = Field("default", description="Database in which unqualified table names are looked up.")
    s3_staging_dir: str | None = Field(
        None,
        description="S3 location for the query results (s3://bucket/prefix/); unset: the work group's own.",
    )
    aws_access_key_id: str | None = Field(
        None, description="Access key id; unset: boto3's default chain (environment, profile, instance role)."
    )
    aws_secret_access_key: SecretStr | None = Field(None, description="The access key's secret.")
    aws_session_token: SecretStr | None = Field(None, description="Session token of temporary credentials.")
    role_arn: str | None = Field(None, description="IAM role to assume for the queries (on top of the credentials).")
    external_id: str | None = Field(None, description="External id the role's trust policy asks for.")
    endpoint_url: str | None = Field(
        None, description="Athena endpoint to use instead of the region's (a VPC interface endpoint)."
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint to read the results from instead of the region's (a VPC endpoint)."
    )
    connect_timeout_seconds: int = Field(10, ge=1, le=3600, description="Seconds to wait for a connection.")
    query_timeout_seconds: int | None = Field(
        None, ge=1, description="Stop a query that runs longer than this (StopQueryExecution; no limit when unset)."
    )

    @field_validator("s3_staging_dir")
    @classmethod
    def _s3_location(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"s3://[^/]+(/.*)?", value):
            raise ValueError(f"{value!r} is not an S3 location such as s3://my-bucket/athena-results/")
        return value if value is None or value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _access_key_pairs(self) -> Self:
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError(
                "give aws_access_key_id and aws_secret_access_key together (or neither: the default chain)"
            )
        if self.aws_session_token is not None and self.aws_access_key_id is None:
            raise ValueError("aws_session_token is given without aws_access_key_id")
        if self.external_id is not None and self.role_arn is None:
            raise ValueError("external_id is given without role_arn")
        return self


# ------------------------------------------------------------------------------------------------- sessions


def _boto_session(s: AthenaSettings) -> boto3.Session:
    """The credentials of the settings: the access key, or the default chain; the role assumed on top."""
    keys = {}
    if s.aws_access_key_id is not None and s.aws_secret_access_key is not None:
        keys = {
            "aws_access_key_id": s.aws_access_key_id,
            "aws_secret_access_key": s.aws_secret_access_key.get_secret_value(),
            "aws_session_token": s.aws_session_token.get_secret_value() if s.aws_session_token else None,
        }
    base = boto3.Session(region_name=s.region, **keys)
    if s.role_arn is None:
        return base
    sts = base.client("sts")
    role_arn, external_id = s.role_arn, s.external_id

    def assume() -> dict[str, str]:
        arguments = {"RoleArn": role_arn, "RoleSessionName": "smartingest"}
        if external_id is not None:
            arguments["ExternalId"] = external_id
        credentials = sts.assume_role(**arguments)["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    botocore_session = get_session()
    botocore_session._credentials = RefreshableCredentials.create_from_metadata(  # renewed before they expire
        metadata=assume(), refresh_using=assume, method="sts-assume-role"
    )
    return boto3.Session(botocore_session=botocore_session, region_name=s.region)


@dataclass
class AthenaClients:
    """One call's clients: Athena's and S3's (for the result files)."""

    athena: Any
    s3: Any


# ------------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class _Planned:
    """How one column is read from the CSV file: as ``csv_type``, then ``convert``-ed to the planned type."""

    column: ResultColumn
    csv_type: pa.DataType
    zoned: bool = False  # ``timestamp with time zone``: its text names the zone of each value


_PLAIN_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "float": pa.float32(),
    "double": pa.float64(),
    "varchar": pa.string(),
    "char": pa.string(),
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "time": pa.string(),
    "uuid": pa.string(),
    "ipaddress": pa.string(),
    "unknown": pa.string(),  # a bare NULL
    "interval year to month": pa.string(),
    "interval day to second": pa.string(),
}
# Written as Athena's own text ([1, 2], {a=1}), not JSON: the model's SQL casts them.
_CAST_TO_JSON = frozenset({"array", "map", "row", "struct"})
_CAST_TO_HEX = frozenset({"varbinary", "binary"})


def _column(info: dict[str, Any], subject: str) -> _Planned:
    name, kind = str(info["Name"]), str(info.get("Type") or "unknown").lower()
    if kind == "decimal":
        typ = pa.decimal128(int(info.get("Precision") or 38), int(info.get("Scale") or 0))
        return _Planned(ResultColumn(name, typ), typ)
    if kind in ("timestamp with time zone", "timestamp(3) with time zone"):
        return _Planned(ResultColumn(name, _UTC_US), pa.string(), zoned=True)
    if kind == "json":
        return _Planned(ResultColumn(name, pa.string(), json=True), pa.string())
    if kind in _PLAIN_TYPES:
        return _Planned(ResultColumn(name, _PLAIN_TYPES[kind]), _PLAIN_TYPES[kind])
    cast = (
        f"CAST({name} AS JSON)"
        if kind in _CAST_TO_JSON
        else f"to_hex({name})"
        if kind in _CAST_TO_HEX
        else f"CAST({name} AS VARCHAR)"
    )
    raise ModelError(f"{subject}: column {name!r} is of Athena type {kind}, which is not read as such: select {cast}")


def _plan(metadata: dict[str, Any], subject: str) -> list[_Planned]:
    infos = metadata.get("ColumnInfo") or []
    if not infos:
        raise ModelError(f"{subject} is not a query that returns rows")
    return [_column(info, subject) for info in infos]


def _zoned_instants(values: pa.Array, column: str, subject: str) -> pa.Array:
    """``2024-01-02 03:04:05.000 Europe/Berlin`` (Athena's text of a timestamp with time zone) as the UTC
    instant; a zone is an IANA name or an offset, converted for all the values that carry it at once."""
    parts = pc.extract_regex(values, r"^(?P<local>\S+ \S+) (?P<zone>\S+)$")
    if parts.null_count > values.null_count:
        raise ModelError(f"{subject}: column {column!r} holds a timestamp that is not read as one: {values}")
    local_text, zones = parts.flatten()  # with the nulls of the values, which field() would leave out
    local = pc.cast(local_text, pa.timestamp("us"))
    instants = pa.nulls(len(values), _UTC_US)
    for zone in pc.unique(zones.drop_null()).to_pylist():
        zoned = pc.assume_timezone(local, zone, ambiguous="earliest", nonexistent="earliest").cast(_UTC_US)
        instants = pc.if_else(pc.equal(zones, zone), zoned, instants)
    return instants


def _csv_batches(body: Any, planned: list[_Planned], subject: str) -> Iterator[pa.RecordBatch]:
    """The result file's rows, parsed by pyarrow a block at a time. Athena quotes every value and writes a
    NULL as an empty field without quotes: an empty quoted field is the empty string."""
    names = [f"c{i}" for i in range(len(planned))]  # the header's names may repeat; positions do not
    reader = pa_csv.open_csv(
        body,
        read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1, block_size=_CSV_BLOCK_BYTES),
        convert_options=pa_csv.ConvertOptions(
            column_types={n: p.csv_type for n, p in zip(names, planned, strict=True)},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    for batch in reader:
        yield pa.RecordBatch.from_arrays(
            [
                _zoned_instants(batch.column(i), p.column.name, subject) if p.zoned else batch.column(i)
                for i, p in enumerate(planned)
            ],
            names=[p.column.name for p in planned],
        )


def _cast_hint(column: str) -> str:
    return f"CAST({column} AS VARCHAR)"


# ------------------------------------------------------------------------------------------------ the connector


class AthenaSource(SqlConnector[AthenaSettings, AthenaClients]):
    """An Amazon Athena catalog; see the module docstring for how it is read."""

    Settings = AthenaSettings
    DIALECT = "athena"

    def __repr__(self) -> str:  # never show the secret key
        s = self.settings
        return f"AthenaSource(region={s.region!r}, work_group={s.work_group!r}, database={s.database!r})"

    def tables(self, limit: int = MAX_TABLES) -> list[str]:
        """The catalog's tables and views as ``database.name``, sorted: listed by Athena's catalog API
        (free, where a query of information_schema is billed and slow on large catalogs)."""
        with self._session() as clients, translate_errors(self._translate):
            names: list[str] = []
            for database in self._pages(
                clients.athena, "list_databases", "DatabaseList", CatalogName=self.settings.catalog
            ):
                if database["Name"] == "information_schema":
                    continue
                listed = self._pages(
                    clients.athena,
                    "list_table_metadata",
                    "TableMetadataList",
                    CatalogName=self.settings.catalog,
                    DatabaseName=database["Name"],
                )
                names.extend(f"{database['Name']}.{t['Name']}" for t in listed)
            return sorted(names)[: int(limit)]

    # ------------------------------------------------------------------------------------------ the driver's parts

    @contextlib.contextmanager
    def _session(self) -> Iterator[AthenaClients]:
        s = self.settings
        config = Config(
            connect_timeout=s.connect_timeout_seconds, retries={"mode": "standard"}, user_agent_extra="smartingest"
        )
        with translate_errors(self._translate):
            session = _boto_session(s)
            athena = session.client("athena", endpoint_url=s.endpoint_url, config=config)
            s3 = session.client("s3", endpoint_url=s.s3_endpoint_url, config=config)
        try:
            yield AthenaClients(athena, s3)
        finally:
            close_quietly(athena.close)
            close_quietly(s3.close)

    def _stream(self, conn: AthenaClients, query: str, model: ModelConfig, batch_rows: int) -> BatchStream:
        def translate(exc: BaseException) -> SourceError | None:
            return self._translate(exc, model)

        subject = f"model {describe_model(model)}"
        with translate_errors(translate):
            execution = self._run(conn, query)
            planned = _plan(self._metadata(conn, execution), subject)
            body = self._result_file(conn, execution)
        columns = [p.column for p in planned]
        parsed = _csv_batches(body, planned, subject) if body is not None else iter(())
        batches = rebatch(conformed(parsed, columns, subject, _cast_hint), batch_rows)
        return BatchStream(planned_schema(columns), batches, translate, on_close=body.close if body else None)

    def _rows(self, conn: AthenaClients, query: str) -> list[tuple[Any, ...]]:
        execution = self._run(conn, query)
        answer = conn.athena.get_query_results(QueryExecutionId=execution["QueryExecutionId"], MaxResults=1000)
        rows = answer["ResultSet"].get("Rows") or []
        return [tuple(d.get("VarCharValue") for d in row["Data"]) for row in rows[1:]]  # the first is the header

    def _tables_sql(self, limit: int) -> str:
        raise NotImplementedError("tables() asks Athena's catalog API")

    def _translate(self, exc: BaseException, model: ModelConfig | None = None) -> SourceError | None:
        return map_athena_error(exc, self.settings, model)

    # ------------------------------------------------------------------------------------------------- internals

    def _run(self, conn: AthenaClients, query: str) -> dict[str, Any]:
        """Run ``query``; its QueryExecution once it SUCCEEDED. QueryFailed when it failed or was cancelled,
        a permanent SourceError naming query_timeout_seconds when it ran past it (after stopping it)."""
        s = self.settings
        arguments: dict[str, Any] = {
            "QueryString": query,
            "QueryExecutionContext": {"Catalog": s.catalog, "Database": s.database},
            "WorkGroup": s.work_group,
        }
        if s.s3_staging_dir is not None:
            arguments["ResultConfiguration"] = {"OutputLocation": s.s3_staging_dir}
        started = time.monotonic()
        query_id = conn.athena.start_query_execution(**arguments)["QueryExecutionId"]
        finished = False
        try:
            execution = self._wait(conn, query_id, started)
            finished = True
        finally:
            if not finished:
                with contextlib.suppress(Exception):  # the first error is the one to report
                    conn.athena.stop_query_execution(QueryExecutionId=query_id)
        return execution

    def _wait(self, conn: AthenaClients, query_id: str, started: float) -> dict[str, Any]:
        timeout = self.settings.query_timeout_seconds
        pause = 0.1
        while True:
            execution: dict[str, Any] = conn.athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            status = execution["Status"]
            if status["State"] not in _RUNNING:
                break
            elapsed = time.monotonic() - started
            if timeout is not None and elapsed >= timeout:
                raise source_error(
                    SourceError,
                    f"query {query_id} ran longer than query_timeout_seconds ({timeout}) and was stopped; raise it "
                    "or make the query faster",
                    transient=False,
                )
            time.sleep(min(pause, timeout - elapsed) if timeout is not None else pause)
            pause = min(pause * 2, 2.0)
        if status["State"] != "SUCCEEDED":
            raise QueryFailed(status["State"], status.get("StateChangeReason") or "", status.get("AthenaError") or {})
        return execution

    def _metadata(self, conn: AthenaClients, execution: dict[str, Any]) -> dict[str, Any]:
        answer = conn.athena.get_query_results(QueryExecutionId=execution["QueryExecutionId"], MaxResults=1)
        metadata: dict[str, Any] = answer["ResultSet"].get("ResultSetMetadata") or {}
        return metadata

    def _result_file(self, conn: AthenaClients, execution: dict[str, Any]) -> Any:
        """The body of the query's CSV result file, streaming (None when it holds nothing, not even a header)."""
        location = (execution.get("ResultConfiguration") or {}).get("OutputLocation") or ""
        found = re.fullmatch(r"s3://([^/]+)/(.+)", location)
        if found is None:
            raise source_error(
                SourceError,
                f"Athena gave no S3 result file for query {execution['QueryExecutionId']} ({location!r}): set "
                "s3_staging_dir, or the work group's query result location",
                transient=False,
            )
        answer = conn.s3.get_object(Bucket=found[1], Key=found[2])
        if not answer.get("ContentLength"):
            answer["Body"].close()
            return None
        return answer["Body"]

    @staticmethod
    def _pages(client: Any, operation: str, key: str, **arguments: Any) -> Iterator[dict[str, Any]]:
        for page in client.get_paginator(operation).paginate(**arguments):
            yield from page.get(key) or []


class QueryFailed(Exception):
    """A query that ended FAILED or CANCELLED, with Athena's reason and its AthenaError."""

    def __init__(self, state: str, reason: str, error: dict[str, Any]) -> None:
        super().__init__(reason or f"the query ended {state}")
        self.state = state
        self.reason = one_line(reason or str(error.get("ErrorMessage") or f"the query ended {state}"))
        self.category = int(error.get("ErrorCategory") or 0)  # 1 system, 2 user, 3 other
        self.retryable = bool(error.get("Retryable"))


# ---------------------------------------------------------------------------------------------- error mapping

_AUTH_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
    }
)
_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "AllAccessDisabled"})
_TRANSIENT_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "InternalServerException", "SlowDown", "InternalError"}
)
_MODEL_PREFIXES = ("SYNTAX_ERROR", "TABLE_NOT_FOUND", "COLUMN_NOT_FOUND", "SCHEMA_NOT_FOUND", "NOT_SUPPORTED")
_DENIED_TEXT = re.compile(r"not authorized|insufficient permissions|access denied|permission", re.I)


def map_athena_error(
    exc: BaseException, settings: AthenaSettings, model: ModelConfig | None = None
) -> SourceError | None:
    """Translate a boto3 or Athena error into the error tree (None for exceptions not theirs).

    The one place that decides transient vs permanent for Athena:

    * cannot reach Athena or S3 (refused, unknown host, timeouts) -> SourceConnectionError (transient);
    * no credentials, or credentials refused (UnrecognizedClientException, ExpiredTokenException...) ->
      SourceAuthError (check the access key, or the default chain);
    * an action the principal may not perform (AccessDeniedException, S3 AccessDenied, a query failed for
      want of a Glue, Lake Formation or S3 permission) -> SourceAuthError naming the IAM actions;
    * a work group or output location that does not exist or is not set (InvalidRequestException about
      them, NoSuchBucket) -> SourceConnectionError marked permanent, naming the setting;
    * throttling and Athena's internal errors, a query failed with Retryable -> SourceError (transient);
    * a query failed on its SQL (SYNTAX_ERROR, TABLE_NOT_FOUND, COLUMN_NOT_FOUND..., AthenaError category 2,
      the user's) -> ModelError with Athena's reason; a syntax error says so;
    * a query cancelled by someone else -> SourceError (transient); Athena's own time limit -> SourceError
      (permanent) naming query_timeout_seconds and the work group.
    """
    subject = f"model {describe_model(model)}" if model is not None else "the query"
    where = f"Athena in {settings.region} (work group {settings.work_group!r})"
    if isinstance(exc, QueryFailed):
        return _query_error(exc, settings, subject)
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return SourceAuthError(
            f"no AWS credentials for {where}: set aws_access_key_id and aws_secret_access_key, or configure the "
            f"default chain (environment, profile, instance role): {exc}"
        )
    if isinstance(exc, botocore.exceptions.ClientError):
        return scrub_secrets(_client_error(exc, settings, where, subject), settings)
    if isinstance(exc, botocore.exceptions.BotoCoreError):  # EndpointConnectionError, timeouts, a body cut short
        return SourceConnectionError(f"cannot reach {where} or its S3 results: {one_line(str(exc))}")
    if isinstance(exc, pa.ArrowInvalid):
        return ModelError(f"{subject}: Athena's result file is not read as described: {one_line(str(exc))}")
    return None


def _client_error(
    exc: botocore.exceptions.ClientError, settings: AthenaSettings, where: str, subject: str
) -> SourceError:
    error = exc.response.get("Error") or {}
    code, message = str(error.get("Code") or ""), one_line(str(error.get("Message") or exc))
    operation = exc.operation_name
    detail = f"{code}: {message} ({operation})"
    if code in _AUTH_CODES:
        return SourceAuthError(f"{where} refused the credentials (check the access key or role): {detail}")
    if code in _DENIED_CODES or (code == "InvalidRequestException" and _DENIED_TEXT.search(message)):
        return SourceAuthError(f"the principal may not read {subject}: {detail}; {_IAM_HINT.format(s=settings)}")
    if code == "NoSuchBucket" or (code == "InvalidRequestException" and "output" in message.lower()):
        text = f"{where} cannot use the query result location (check s3_staging_dir): {detail}"
        return source_error(SourceConnectionError, text, transient=False)
    if code == "InvalidRequestException" and "workgroup" in message.lower().replace(" ", ""):
        return source_error(SourceConnectionError, f"{where}: check work_group: {detail}", transient=False)
    if code in _TRANSIENT_CODES or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
        return source_error(SourceError, f"{where} failed temporarily: {detail}", transient=True)
    if code == "InvalidRequestException" and operation == "StartQueryExecution":
        return ModelError(f"{subject} cannot be run: {detail}")
    return SourceError(f"{where} failed: {detail}")


def _query_error(exc: QueryFailed, settings: AthenaSettings, subject: str) -> SourceError:
    reason = exc.reason
    if exc.state == "CANCELLED":
        return source_error(SourceError, f"{subject} was cancelled in Athena: {reason}", transient=True)
    if "timeout" in reason.lower() or "EXCEEDED_TIME_LIMIT" in reason:
        return source_error(
            SourceError,
            f"{subject} ran past Athena's time limit for work group {settings.work_group!r}: {reason}; raise the "
            f"work group's limit (query_timeout_seconds: {settings.query_timeout_seconds}) or make the query faster",
            transient=False,
        )
    if _DENIED_TEXT.search(reason) and not reason.startswith(_MODEL_PREFIXES):
        return SourceAuthError(f"the principal may not read {subject}: {reason}; {_IAM_HINT.format(s=settings)}")
    if reason.startswith("SYNTAX_ERROR") or "mismatched input" in reason:
        return ModelError(f"{subject} has a syntax error: {reason}")
    if reason.startswith(_MODEL_PREFIXES) or exc.category == 2:
        return ModelError(f"{subject} cannot be read: {reason}")
    return source_error(SourceError, f"{subject} failed in Athena: {reason}", transient=exc.retryable)


_IAM_HINT = (
    "the IAM policy needs athena:StartQueryExecution, GetQueryExecution, GetQueryResults, StopQueryExecution, "
    "ListDatabases and ListTableMetadata on work group {s.work_group!r}; glue:GetDatabase(s), GetTable(s) and "
    "GetPartitions on catalog {s.catalog!r}; s3:GetObject and ListBucket on the tables' data; s3:GetObject, "
    "PutObject and GetBucketLocation on the query result location"
)


__all__ = ["AthenaSettings", "AthenaSource", "QueryFailed", "map_athena_error"]
