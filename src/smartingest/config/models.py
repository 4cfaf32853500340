"""Pydantic models of a project file: sources, models, destinations and syncs.

Every setting has a type, a default and a one-line meaning (its ``description``);
``docs/configuration.md`` is checked against these models by the test suite.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    field_validator,
    model_validator,
)

from smartingest.config.rules import TOP_LEVEL_FIELDS, KeyPathError, cast_static_value, path_conflict
from smartingest.errors import ConfigError, UnknownNameError

_NAME = r"^[A-Za-z][A-Za-z0-9_\-]{0,62}$"
Name = Annotated[str, Field(pattern=_NAME)]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SourceConfig(BaseModel):
    """A connection to a data source. Connector-specific keys are validated by the connector's own model."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Connector type: postgres, sqlite, duckdb.")
    engine: Literal["basic", "lightning"] = Field(
        "basic", description="Sync engine: basic (diff in the local state store) or lightning (in the warehouse)."
    )

    def connector_settings(self) -> dict[str, Any]:
        """The connector-specific keys (everything but ``type`` and ``engine``)."""
        return dict(self.model_extra or {})


class ModelConfig(Strict):
    """A data model: a table, a view or a SQL query on a source, with one primary-key column."""

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

    api_key: SecretStr = Field(description="Iterable server-side API key of the project.")
    region: Literal["us", "eu"] = Field("us", description="Iterable data center: us or eu.")
    base_url: str | None = Field(
        None, description="Overrides the region's API address (for the sandbox), e.g. http://127.0.0.1:8765."
    )
    project_type: ProjectType = Field("email", description="How the project identifies users: email, userid or hybrid.")
    environment: Literal["production", "test"] = Field(
        "production", description="production syncs count towards the sync quota; test syncs do not."
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


class ColumnMapping(Strict):
    """Copies a model column into a destination field."""

    from_: str = Field(alias="from", description="Model column to read.")
    to: str = Field(description="Destination field; dots make nested objects (address.city).")
    parse_json: bool | None = Field(
        None,
        description="Send the column's JSON text parsed (object, array, value); default: true for columns "
        "the source knows hold JSON (PostgreSQL json, jsonb, arrays), false for other text.",
    )


class StaticMapping(Strict):
    """Sets a destination field to the same typed value on every row."""

    static: str | int | float | bool | None = Field(description="The value; its YAML type is the type sent.")
    to: str = Field(description="Destination field; dots make nested objects (address.city).")
    type: Literal["string", "number", "boolean", "date"] | None = Field(
        None, description="Casts the value to this type before sending (default: keep the YAML type)."
    )

    @model_validator(mode="after")
    def _value_casts(self) -> StaticMapping:
        # The run would refuse a value that does not cast; refusing it here makes `validate` say so too.
        try:
            cast_static_value(self.static, self.type)
        except ValueError as exc:
            raise KeyPathError(str(exc), ("static",)) from exc
        return self


def _mapping_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "static" if "static" in value else "column"
    return "static" if isinstance(value, StaticMapping) else "column"


FieldMapping = Annotated[
    Annotated[ColumnMapping, Tag("column")] | Annotated[StaticMapping, Tag("static")],
    Discriminator(_mapping_kind),
]

_DURATION = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$")
MIN_INTERVAL_MINUTES = 15


class Schedule(Strict):
    """When a sync runs: every interval (15 minutes at least), on a cron expression, or only by hand."""

    every: str | None = Field(None, description="Interval such as 15m, 2h or 1d (at least 15m).")
    cron: str | None = Field(None, description="Five-field cron expression, in UTC.")

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if self.every is not None and self.cron is not None:
            raise ValueError("set 'every' or 'cron', not both")
        if self.every is not None:
            self.interval_minutes()
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(f"cron {self.cron!r} must have five fields (minute hour day month weekday)")
        return self

    def interval_minutes(self) -> int | None:
        """The interval in minutes, or None for cron and manual schedules."""
        if self.every is None:
            return None
        match = _DURATION.match(self.every)
        if not match:
            raise ValueError(f"every {self.every!r} is not a duration like 15m, 2h or 1d")
        minutes = int(match[1]) * {"m": 1, "min": 1, "h": 60, "d": 1440}[match[2]]
        if minutes < MIN_INTERVAL_MINUTES:
            raise ValueError(f"every {self.every!r} is too frequent: syncs run at most every 15 minutes")
        return minutes

    @property
    def manual(self) -> bool:
        return self.every is None and self.cron is None


SyncType = Literal["users", "events", "catalog", "static_list", "email_change", "user_deletion"]
SUPPORTED_SYNC_TYPES: tuple[str, ...] = ("users",)


class SyncConfig(Strict):
    """A model sent to a destination as one sync type, with field mappings and a schedule."""

    model: Name = Field(description="Name of the model to read.")
    destination: Name = Field(description="Name of the destination to write to.")
    type: SyncType = Field(description="Sync type; this version runs users.")
    match_on: Literal["email", "user_id"] = Field(
        "email", description="Identifier that matches rows to Iterable users: email or user_id."
    )
    mode: Literal["upsert"] = Field("upsert", description="users: upsert creates missing users and updates others.")
    on_removed: Literal["nothing"] = Field(
        "nothing", description="What a row removed from the model does in Iterable (nothing: leave the user)."
    )
    batch_size: int = Field(1000, ge=1, le=1000, description="Most users in one bulkUpdate request.")
    prefer_user_id: bool = Field(
        False, description="Email-based projects: create a user from a userId alone (preferUserId)."
    )
    merge_nested_objects: bool = Field(
        False, description="Merge top-level objects into the profile's instead of replacing them."
    )
    invalid_values: Literal["reject", "null"] = Field(
        "reject",
        description="A value Iterable cannot store (NaN, Infinity, a date outside years 1-9999, a decimal a "
        "double cannot hold): reject its row with the reason, or send null in its place.",
    )
    trim_identifier: bool = Field(
        False, description="Strip leading and trailing spaces from the identifier (email or userId) before matching."
    )
    lowercase_identifier: bool = Field(
        False, description="Lower-case the identifier before matching (Iterable already matches emails ignoring case)."
    )
    mappings: list[FieldMapping] = Field(min_length=1, description="How each destination field is filled.")
    schedule: Schedule = Field(
        default_factory=lambda: Schedule(), description="{every: 15m}, {cron: '0 * * * *'} or manual."
    )

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule_string(cls, value: Any) -> Any:
        if value is None or value == "manual":
            return {}
        if isinstance(value, str):
            raise ValueError("must be 'manual' or a mapping such as {every: 15m} or {cron: '0 * * * *'}")
        return value

    @model_validator(mode="after")
    def _mappings_consistent(self) -> SyncConfig:
        targets = [m.to for m in self.mappings]
        duplicates = sorted({t for t in targets if targets.count(t) > 1})
        if duplicates:
            raise ValueError(f"several mappings write the same field: {', '.join(duplicates)}")
        for target in targets:
            if not target or any(not part for part in target.split(".")):
                raise ValueError(f"mapping target {target!r} is not a field name or dot path")
        for i, mapping in enumerate(self.mappings):
            if isinstance(mapping, StaticMapping) and mapping.to in TOP_LEVEL_FIELDS:
                raise KeyPathError(
                    f"{mapping.to} identifies users and must come from a column, not a static value",
                    ("mappings", i, "to"),
                )
        # A column mapped to the identity fields goes beside dataFields, so a path under it is no clash.
        nested = [None if isinstance(m, ColumnMapping) and m.to in TOP_LEVEL_FIELDS else m.to for m in self.mappings]
        conflict = path_conflict(nested)
        if conflict is not None:
            value, child = conflict
            raise KeyPathError(
                f"{targets[child]!r} makes {targets[value]!r} an object, but mappings[{value}] maps a value to "
                f"{targets[value]!r}: a field cannot be both (rename one of them)",
                ("mappings", child, "to"),
            )
        return self

    @property
    def identifier_field(self) -> str:
        """The Iterable field that identifies a user: email or userId."""
        return "email" if self.match_on == "email" else "userId"


class ProjectConfig(Strict):
    """A whole project file."""

    database_url: str | None = Field(
        None, description="Metadata database (SQLAlchemy URL); default sqlite under SMARTINGEST_HOME."
    )
    state_dir: str | None = Field(
        None, description="Where the Basic engine keeps CDC snapshots; default SMARTINGEST_HOME/state."
    )
    cdc_memory_limit: str = Field(
        "256MB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$",
        description="Memory the Basic engine's diff may use before spilling to disk under state_dir (e.g. 256MB, 2GB).",
    )
    sources: dict[Name, SourceConfig] = Field(default_factory=dict, description="Data sources by name.")
    models: dict[Name, ModelConfig] = Field(default_factory=dict, description="Data models by name.")
    destinations: dict[Name, DestinationConfig] = Field(default_factory=dict, description="Iterable projects by name.")
    syncs: dict[Name, SyncConfig] = Field(default_factory=dict, description="Syncs by name.")

    @model_validator(mode="after")
    def _references_resolve(self) -> ProjectConfig:
        problems: list[str] = []
        for name, model in self.models.items():
            if model.source not in self.sources:
                problems.append(f"models.{name}.source: no source named {model.source!r} ({_known(self.sources)})")
        for name, sync in self.syncs.items():
            if sync.model not in self.models:
                problems.append(f"syncs.{name}.model: no model named {sync.model!r} ({_known(self.models)})")
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


def _sync_problems(name: str, sync: SyncConfig, destination: DestinationConfig) -> list[str]:
    where = f"syncs.{name}"
    problems = []
    if sync.type not in SUPPORTED_SYNC_TYPES:
        problems.append(
            f"{where}.type: {sync.type!r} is not supported yet (supported: {', '.join(SUPPORTED_SYNC_TYPES)})"
        )
    if destination.project_type == "userid" and sync.match_on != "user_id":
        problems.append(f"{where}.match_on: a userID-based project matches users on user_id, not {sync.match_on}")
    targets = {m.to for m in sync.mappings}
    if sync.identifier_field not in targets:
        problems.append(
            f"{where}.mappings: map a column to {sync.identifier_field!r}, the identifier for match_on: {sync.match_on}"
        )
    return problems


def require(mapping: dict[str, Any], name: str, kind: str) -> Any:
    """Look up a named object or raise UnknownNameError listing the defined names."""
    if name not in mapping:
        raise UnknownNameError(f"no {kind} named {name!r} ({_known(mapping)})")
    return mapping[name]


__all__ = [
    "REGION_URLS",
    "ColumnMapping",
    "ConfigError",
    "DestinationConfig",
    "FieldMapping",
    "ModelConfig",
    "ProjectConfig",
    "Schedule",
    "SourceConfig",
    "StaticMapping",
    "SyncConfig",
    "require",
]
