"""Pydantic models of a project file: sources, models, destinations and syncs.

Every setting has a type, a default and a one-line meaning (its ``description``);
``docs/configuration.md`` is checked against these models by the test suite.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from smartingest.config.base import ID_DESCRIPTION, Name, Strict
from smartingest.config.syncs import (
    SUPPORTED_SYNC_TYPES,
    ArrayMapping,
    CatalogSync,
    ColumnMapping,
    EmailChangeSync,
    EventsSync,
    FieldMapping,
    IdentifiedSync,
    ObjectMapping,
    Schedule,
    StaticListSync,
    StaticMapping,
    SyncBase,
    SyncConfig,
    TemplateMapping,
    UserDeletionSync,
    UsersSync,
    VariableMapping,
)
from smartingest.errors import ConfigError, UnknownNameError

# What the Basic engine's DuckDB may hold before it spills to disk: at a million rows the diff runs as fast
# with 128 MB as with 256 MB (docs/performance.md), and every MB here is a MB of the run's peak memory.
DEFAULT_CDC_MEMORY_LIMIT = "128MB"
DEFAULT_PLANNER_SCHEMA = "smartingest_planner"  # where the Lightning engine keeps its snapshots in a source


class SourceConfig(BaseModel):
    """A connection to a data source. Connector-specific keys are validated by the connector's own model."""

    model_config = ConfigDict(extra="allow")

    id: Name | None = Field(None, description=ID_DESCRIPTION)
    type: str = Field(description="Connector type: postgres, sqlite, duckdb.")
    engine: Literal["basic", "lightning"] = Field(
        "basic", description="Sync engine: basic (diff in the local state store) or lightning (in the warehouse)."
    )
    planner_schema: str = Field(
        DEFAULT_PLANNER_SCHEMA,
        min_length=1,
        max_length=63,
        description="Where the Lightning engine keeps its snapshots in the source (a schema; a database in MySQL "
        "and ClickHouse, a dataset in BigQuery).",
    )

    def connector_settings(self) -> dict[str, Any]:
        """The connector-specific keys (everything but ``id``, ``type``, ``engine`` and ``planner_schema``)."""
        return dict(self.model_extra or {})


class ModelConfig(Strict):
    """A data model: a table, a view or a SQL query on a source, with one primary-key column."""

    id: Name | None = Field(None, description=ID_DESCRIPTION)
    source: Name = Field(description="Name of the source the model reads from.")
    sql: str | None = Field(None, description="A SELECT query; exclusive with table.")
    table: str | None = Field(
        None, description="A table or view name, optionally schema-qualified; exclusive with sql."
    )
    primary_key: str | list[str] = Field(
        description="Column whose value identifies a row (unique, not null), or a list of columns that do together."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ModelConfig:
        if (self.sql is None) == (self.table is None):
            raise ValueError("set exactly one of 'sql' or 'table'")
        if self.sql is not None and not self.sql.strip():
            raise ValueError("'sql' is empty")
        columns = self.key_columns
        if not columns or any(not c.strip() for c in columns):
            raise ValueError("primary_key names no column")
        if len(set(columns)) != len(columns):
            raise ValueError(f"primary_key lists a column twice: {columns}")
        return self

    @property
    def key_columns(self) -> list[str]:
        """The primary key's columns, in order (one for a single-column key)."""
        return [self.primary_key] if isinstance(self.primary_key, str) else list(self.primary_key)


ProjectType = Literal["email", "userid", "hybrid"]

REGION_URLS = {"us": "https://api.iterable.com", "eu": "https://api.eu.iterable.com"}


class DestinationConfig(Strict):
    """An Iterable project."""

    id: Name | None = Field(None, description=ID_DESCRIPTION)
    api_key: SecretStr = Field(description="Iterable server-side API key of the project.")
    region: Literal["us", "eu"] = Field("us", description="Iterable data center: us or eu.")
    base_url: str | None = Field(
        None, description="Overrides the region's API address (for the sandbox), e.g. http://127.0.0.1:8765."
    )
    project_type: ProjectType = Field("email", description="How the project identifies users: email, userid or hybrid.")
    environment: Literal["production", "test"] = Field(
        "production", description="production syncs count towards the sync quota; test syncs do not."
    )
    organization: Name = Field(
        "default",
        description="The organization that owns this project; the sync quota counts each organization's "
        "production syncs apart.",
    )
    timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one HTTP request to Iterable.")
    max_attempts: int = Field(
        6, ge=1, le=20, description="Attempts per request on 429, 5xx, timeouts and dropped connections."
    )
    backoff_base_seconds: float = Field(
        0.5, gt=0, description="First retry delay; doubles per attempt, with full jitter."
    )
    backoff_max_seconds: float = Field(30.0, gt=0, description="Longest delay between two attempts.")
    max_retry_after_seconds: float = Field(
        120.0,
        gt=0,
        description="Longest wait a Retry-After answer is honoured for; when Iterable asks for longer, "
        "sending stops for the run and the unsent rows are sent by the next run.",
    )
    rate_limit_scale: float = Field(
        1.0,
        gt=0,
        description="Multiplies every endpoint's documented rate limit (raise only if Iterable raised yours).",
    )
    max_concurrent_requests: int = Field(4, ge=1, le=64, description="Requests in flight at once.")

    @property
    def url(self) -> str:
        """The API address requests are sent to."""
        return (self.base_url or REGION_URLS[self.region]).rstrip("/")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must start with http:// or https:// and name a host")
        return value

    @field_validator("api_key")
    @classmethod
    def _non_empty_key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("is empty")
        return value


class S3StateStoreConfig(Strict):
    """CDC state in an S3-compatible object store (credentials from the environment, as boto3 finds them)."""

    type: Literal["s3"] = Field(description="s3: an S3-compatible object store.")
    bucket: str = Field(min_length=3, description="The bucket that holds the state.")
    prefix: str = Field("smartingest", description="Key prefix of the state's objects in the bucket.")
    endpoint_url: str | None = Field(
        None, description="Address of an S3-compatible store other than AWS (MinIO...), e.g. http://127.0.0.1:9000."
    )
    region: str | None = Field(None, description="The bucket's region (default: boto3's configuration).")
    timeout_seconds: float = Field(30.0, gt=0, description="Connect and read timeout of one request.")


class LocalStateStoreConfig(Strict):
    """CDC state in the local state directory only."""

    type: Literal["local"] = Field(description="local: the state directory (state_dir) only.")


StateStoreConfig = LocalStateStoreConfig | S3StateStoreConfig


class WebhookAlert(Strict):
    """An alert POSTed as JSON to a URL, signed with HMAC-SHA256 of the body (``X-Smartingest-Signature``)."""

    type: Literal["webhook"] = Field(description="webhook: POST the alert as JSON.")
    url: str = Field(description="Where to POST it (http:// or https://).")
    secret: SecretStr = Field(description="Key of the body's HMAC-SHA256 signature (use ${ENV_VAR}).")


class SlackAlert(Strict):
    """An alert posted to a Slack channel through an incoming webhook."""

    type: Literal["slack"] = Field(description="slack: post to a Slack incoming webhook.")
    url: SecretStr = Field(description="The incoming webhook's URL (a secret: use ${ENV_VAR}).")


class EmailAlert(Strict):
    """An alert sent by email over SMTP."""

    type: Literal["email"] = Field(description="email: send the alert over SMTP.")
    to: list[str] = Field(min_length=1, description="Recipients.")
    sender: str = Field(alias="from", description="The From address.")
    host: str = Field(description="SMTP server.")
    port: int = Field(587, description="SMTP port (587 with STARTTLS, 465 with TLS, 25 plain).")
    security: Literal["starttls", "tls", "none"] = Field("starttls", description="starttls, tls or none.")
    username: str | None = Field(None, description="SMTP login, if the server wants one.")
    password: SecretStr | None = Field(None, description="SMTP password (use ${ENV_VAR}).")
    ca_file: str | None = Field(
        None,
        description="CA certificates (PEM) to verify the server's certificate with, for a private CA "
        "(default: the system's).",
    )
    timeout_seconds: float = Field(30.0, gt=0, description="Timeout of the SMTP conversation.")

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> EmailAlert:
        if self.password is not None and self.security == "none":
            raise ValueError("a password would cross the network in clear: set security to starttls or tls")
        return self


AlertChannel = Annotated[WebhookAlert | SlackAlert | EmailAlert, Field(discriminator="type")]


class RedisRateLimiterConfig(Strict):
    """Request pacing shared through Redis by every process sending to one Iterable project."""

    type: Literal["redis"] = Field(description="redis: pace requests across processes and machines.")
    url: str = Field("redis://127.0.0.1:6379/0", description="The Redis server (redis://[:password@]host:port/db).")


class LocalRateLimiterConfig(Strict):
    """Request pacing in each process alone."""

    type: Literal["local"] = Field(description="local: each process paces its own requests.")


RateLimiterConfig = LocalRateLimiterConfig | RedisRateLimiterConfig


class WorkersConfig(Strict):
    """Runs executed by ``smartingest worker`` processes (Celery), on any machine, rather than by ``serve``."""

    broker_url: str = Field(description="The Celery broker: redis://host:6379/0 or amqp://user:pass@host:5672//.")
    resend_after_seconds: float = Field(
        30.0, gt=0, description="A run still queued this long after it was handed to the workers is handed again."
    )


class ProjectConfig(Strict):
    """A whole project file."""

    database_url: str | None = Field(
        None, description="Metadata database (SQLAlchemy URL); default sqlite under SMARTINGEST_HOME."
    )
    state_dir: str | None = Field(
        None, description="Where the Basic engine keeps CDC snapshots; default SMARTINGEST_HOME/state."
    )
    workers: WorkersConfig | None = Field(
        None,
        description="{broker_url: ...}: runs go to `smartingest worker` processes through Celery; by default "
        "`serve` executes them itself.",
    )
    alerts: list[AlertChannel] = Field(
        default_factory=list,
        description="Where alerts go (webhook, slack, email): a sync that fails, that rejects more rows than "
        "its alert_rejected_percent, and that recovers; one alert per change of state.",
    )
    state_store: LocalStateStoreConfig | S3StateStoreConfig = Field(
        default_factory=lambda: LocalStateStoreConfig(type="local"),
        discriminator="type",
        description="Where CDC snapshots are kept: {type: local} (state_dir), or {type: s3, bucket, ...}, so a "
        "run can execute on any machine (state_dir then caches them).",
    )
    rate_limiter: Annotated[LocalRateLimiterConfig | RedisRateLimiterConfig, Field(discriminator="type")] | None = (
        Field(
            None,
            description="How requests to each Iterable endpoint are kept under its rate limit: {type: local} (each "
            "process alone) or {type: redis, url: ...} (every worker together, for workers on several machines). "
            "Default: the workers' broker when it is Redis, else local.",
        )
    )
    cdc_memory_limit: str = Field(
        DEFAULT_CDC_MEMORY_LIMIT,
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$",
        description="Memory the Basic engine's diff may use before spilling to disk under state_dir (e.g. 128MB, 2GB).",
    )
    checkpoint_rows: int = Field(
        100_000,
        ge=1,
        description="During a run, commit what Iterable acknowledged to the snapshot every this many rows, so a "
        "run killed midway resends at most that many.",
    )
    checkpoint_seconds: float = Field(
        60.0,
        gt=0,
        description="...or every this many seconds, whichever comes first (each checkpoint writes only the rows "
        "acknowledged since the previous one).",
    )
    sync_quota: int | None = Field(
        5,
        ge=0,
        description="Most syncs across the organization's production projects (test projects do not count); "
        "null: no limit.",
    )
    lease_seconds: float = Field(
        60.0,
        ge=1,
        description="How long a run's claim on its sync (its lease, renewed every quarter of this) outlives the "
        "last sign of life of its process: a run on a machine that died is taken over after this long.",
    )
    row_outcomes_retention_days: int | None = Field(
        30,
        ge=1,
        description="Days a run's row-level outcomes are kept (runs keep their counts; each sync's latest run "
        "keeps its rows); null keeps them forever.",
    )
    sources: dict[Name, SourceConfig] = Field(default_factory=dict, description="Data sources by name.")
    models: dict[Name, ModelConfig] = Field(default_factory=dict, description="Data models by name.")
    destinations: dict[Name, DestinationConfig] = Field(default_factory=dict, description="Iterable projects by name.")
    syncs: dict[Name, SyncConfig] = Field(default_factory=dict, description="Syncs by name.")

    @property
    def pacing(self) -> RateLimiterConfig:
        """The rate limiter in effect: ``rate_limiter``; unset, the workers' Redis broker (workers on several
        machines must share their pacing), else each process alone."""
        if self.rate_limiter is not None:
            return self.rate_limiter
        if self.workers is not None and self.workers.broker_url.startswith(("redis://", "rediss://")):
            return RedisRateLimiterConfig(type="redis", url=self.workers.broker_url)
        return LocalRateLimiterConfig(type="local")

    def sync_id(self, name: str) -> str:
        """The stable id of the sync ``name`` (its ``id``, or its name)."""
        return self.syncs[name].id or name

    def sync_named(self, sync_id: str) -> str | None:
        """The name of the sync whose id is ``sync_id`` (None when none is)."""
        return next((name for name in self.syncs if self.sync_id(name) == sync_id), None)

    def model_id(self, name: str) -> str:
        return self.models[name].id or name

    @model_validator(mode="after")
    def _ids_unique(self) -> ProjectConfig:
        problems: list[str] = []
        kinds: dict[str, dict[str, Any]] = {
            "sources": self.sources,
            "models": self.models,
            "destinations": self.destinations,
            "syncs": self.syncs,
        }
        for kind, objects in kinds.items():
            owner: dict[str, str] = {}
            for name, obj in objects.items():
                stable = obj.id or name
                if stable in owner:
                    problems.append(
                        f"{kind}.{name}.id: {stable!r} is also the id of {kind}.{owner[stable]} (an id defaults to "
                        "the name): give each its own"
                    )
                owner.setdefault(stable, name)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _references_resolve(self) -> ProjectConfig:
        problems: list[str] = []
        for name, model in self.models.items():
            if model.source not in self.sources:
                problems.append(f"models.{name}.source: no source named {model.source!r} ({_known(self.sources)})")
        for name, sync in self.syncs.items():
            if sync.model not in self.models:
                problems.append(f"syncs.{name}.model: no model named {sync.model!r} ({_known(self.models)})")
            elif isinstance(sync, CatalogSync):
                problems.extend(_catalog_key_problems(name, sync, self.models[sync.model]))
            if sync.destination not in self.destinations:
                problems.append(
                    f"syncs.{name}.destination: no destination named {sync.destination!r} ({_known(self.destinations)})"
                )
                continue
            problems.extend(_sync_problems(name, sync, self.destinations[sync.destination]))
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _known(names: dict[str, Any]) -> str:
    return "defined: " + ", ".join(sorted(names)) if names else "none defined"


def _catalog_key_problems(name: str, sync: CatalogSync, model: ModelConfig) -> list[str]:
    """Item ids come from one column: the model's key by default. Deleting removed rows' items needs the
    ids to be the key, the only value CDC keeps of a row that left the model."""
    key = model.key_columns
    if sync.item_id is None and len(key) > 1:
        return [
            f"syncs.{name}.item_id: the model's primary key has several columns ({', '.join(key)}) and an item id "
            "is one text: set item_id to a column that identifies each item"
        ]
    if sync.on_removed == "delete" and sync.item_id is not None and key != [sync.item_id]:
        return [
            f"syncs.{name}.on_removed: delete needs the item ids to be the model's primary key (a removed row "
            f"keeps only its key), not column {sync.item_id!r}: make {sync.item_id!r} the model's primary_key "
            "and leave item_id out"
        ]
    return []


def _sync_problems(name: str, sync: SyncBase, destination: DestinationConfig) -> list[str]:
    where = f"syncs.{name}"
    problems = []
    kind = getattr(sync, "type", "")
    if kind not in SUPPORTED_SYNC_TYPES:
        problems.append(f"{where}.type: {kind!r} is not supported yet (supported: {', '.join(SUPPORTED_SYNC_TYPES)})")
    if isinstance(sync, EmailChangeSync) and destination.project_type != "email":
        problems.append(
            f"{where}.type: email_change works in email-based projects only; in a {destination.project_type} "
            "project, change emails with a users sync that maps the new address to email"
        )
    # The contract: "In email-based projects, you must forget users by email" (unforget alike).
    if (
        isinstance(sync, UserDeletionSync)
        and sync.action != "delete"
        and destination.project_type == "email"
        and sync.match_on != "email"
    ):
        problems.append(f"{where}.match_on: an email-based project can {sync.action} users by email only")
    if isinstance(sync, IdentifiedSync):
        if destination.project_type == "userid" and sync.match_on != "user_id":
            problems.append(f"{where}.match_on: a userID-based project matches users on user_id, not {sync.match_on}")
        targets = {m.to for m in sync.mappings}
        if sync.identifier_field not in targets:
            problems.append(
                f"{where}.mappings: map a column to {sync.identifier_field!r}, the identifier for "
                f"match_on: {sync.match_on}"
            )
    return problems


def require(mapping: dict[str, Any], name: str, kind: str) -> Any:
    """Look up a named object or raise UnknownNameError listing the defined names."""
    if name not in mapping:
        raise UnknownNameError(f"no {kind} named {name!r} ({_known(mapping)})")
    return mapping[name]


__all__ = [
    "REGION_URLS",
    "ArrayMapping",
    "CatalogSync",
    "ColumnMapping",
    "ConfigError",
    "DestinationConfig",
    "EmailChangeSync",
    "EventsSync",
    "FieldMapping",
    "IdentifiedSync",
    "ModelConfig",
    "Name",
    "ObjectMapping",
    "ProjectConfig",
    "Schedule",
    "SourceConfig",
    "StaticListSync",
    "StaticMapping",
    "Strict",
    "SyncBase",
    "SyncConfig",
    "TemplateMapping",
    "UserDeletionSync",
    "UsersSync",
    "VariableMapping",
    "require",
]
