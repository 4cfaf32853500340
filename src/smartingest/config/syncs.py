"""The sync entry of a project file: field mappings, the schedule, and one model per sync type.

A sync's keys depend on its ``type``: ``SyncConfig`` is a union discriminated on it, so each type accepts
only its own keys and an unknown key names itself. What the types share lives in ``SyncBase`` (every type)
and ``IdentifiedSync`` (the types that match rows to Iterable users by email or userId).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from smartingest.config.base import ID_DESCRIPTION, Name, Strict
from smartingest.config.rules import TOP_LEVEL_FIELDS, KeyPathError, cast_static_value, path_conflict


class ColumnMapping(Strict):
    """Copies a model column into a destination field."""

    from_: str = Field(alias="from", description="Model column to read; COLUMN.a.b reads into a struct or JSON column.")
    to: str = Field(description="Destination field; dots make nested objects (address.city).")
    parse_json: bool | None = Field(
        None,
        description="Send the column's JSON text parsed (object, array, value); default: true for columns "
        "the source knows hold JSON (PostgreSQL json, jsonb, arrays), false for other text.",
    )
    skip_null: bool = Field(
        False,
        description="Leave the field out of a row's request where the column is null, so Iterable keeps what "
        "it holds, instead of sending null (which clears it).",
    )


class StaticMapping(Strict):
    """Sets a destination field to the same typed value on every row."""

    static: str | int | float | bool | None = Field(description="The value; its YAML type is the type sent.")
    to: str = Field(description="Destination field; dots make nested objects (address.city).")
    type: Literal["string", "number", "boolean", "date", "null"] | None = Field(
        None,
        description="Casts the value to this type before sending (default: keep the YAML type); null sends null, "
        "clearing the field.",
    )

    @model_validator(mode="after")
    def _value_casts(self) -> StaticMapping:
        # The run would refuse a value that does not cast; refusing it here makes `validate` say so too.
        try:
            cast_static_value(self.static, self.type)
        except ValueError as exc:
            raise KeyPathError(str(exc), ("static",)) from exc
        return self


# Sync metadata a variable mapping can send (docs/configuration.md says what each holds).
VariableName = Literal["model_name", "model_id", "sync_name", "sync_id", "run_id", "run_started_at", "now"]


class VariableMapping(Strict):
    """Sets a destination field to a piece of sync metadata: the same on every row of a run (``now``:
    the time the row's batch was mapped)."""

    variable: VariableName = Field(
        description="Which piece of sync metadata to send (docs/configuration.md, Field mappings)."
    )
    to: str = Field(description="Destination field; dots make nested objects (address.city).")


class TemplateMapping(Strict):
    """Sets a destination field to a Liquid template rendered with the row's columns and the variables."""

    template: str = Field(
        description="Liquid text: {{ column }}, {{ column | filter }}, {% if %}...; every name must be a column "
        "of the model or a variable."
    )
    to: str = Field(description="Destination field; dots make nested objects (address.city).")


class ObjectMapping(Strict):
    """Sets a destination field to an object built from several mappings (their ``to`` are its keys)."""

    object: list[FieldMapping] = Field(min_length=1, description="The object's fields: mappings of any kind.")
    to: str = Field(description="Destination field; dots make nested objects (address.city).")


class ArrayMapping(Strict):
    """Sets a destination field to an array: one element per mapping, in order (objects included)."""

    array: list[FieldMapping] = Field(
        min_length=1, description="The array's elements: mappings of any kind, without `to`."
    )
    to: str = Field(description="Destination field; dots make nested objects (address.city).")

    @model_validator(mode="before")
    @classmethod
    def _elements_have_no_field(cls, value: Any) -> Any:
        # An element is a value, not a field: its mapping names no `to` (one is given inside for validation).
        if isinstance(value, dict) and isinstance(value.get("array"), list):
            elements = []
            for i, element in enumerate(value["array"]):
                if isinstance(element, dict):
                    if "to" in element:
                        raise ValueError(f"array[{i}] is an element of the array: leave out its `to`")
                    element = {**element, "to": f"[{i}]"}
                elements.append(element)
            value = {**value, "array": elements}
        return value


_KINDS: dict[type, str] = {
    StaticMapping: "static",
    VariableMapping: "variable",
    TemplateMapping: "template",
    ObjectMapping: "object",
    ArrayMapping: "array",
}


def _mapping_kind(value: Any) -> str:
    if isinstance(value, dict):
        return next((kind for kind in _KINDS.values() if kind in value), "column")
    return _KINDS.get(type(value), "column")


FieldMapping = Annotated[
    Annotated[ColumnMapping, Tag("column")]
    | Annotated[StaticMapping, Tag("static")]
    | Annotated[VariableMapping, Tag("variable")]
    | Annotated[TemplateMapping, Tag("template")]
    | Annotated[ObjectMapping, Tag("object")]
    | Annotated[ArrayMapping, Tag("array")],
    Discriminator(_mapping_kind),
]
ObjectMapping.model_rebuild()
ArrayMapping.model_rebuild()

_DURATION = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$")
MIN_INTERVAL_MINUTES = 15


def _check_cron(expression: str, zone: ZoneInfo) -> None:
    """A five-field cron expression that fires at most every 15 minutes (ValueError saying why not)."""
    from croniter import croniter

    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError(f"cron {expression!r} is not a five-field cron expression (minute hour day month weekday)")
    moments = croniter(expression, dt.datetime(2025, 1, 1, tzinfo=zone))
    times = [moments.get_next(dt.datetime) for _ in range(200)]
    closest = min((later - earlier for earlier, later in itertools.pairwise(times)), default=dt.timedelta.max)
    if closest < dt.timedelta(minutes=MIN_INTERVAL_MINUTES):
        raise ValueError(f"cron {expression!r} fires more often than every 15 minutes, the most a sync runs")


class Schedule(Strict):
    """When a sync runs: every interval (15 minutes at least), on a cron expression, or only by hand."""

    every: str | None = Field(None, description="Interval such as 15m, 2h or 1d (at least 15m).")
    cron: str | None = Field(None, description="Five-field cron expression (minute hour day month weekday).")
    timezone: str = Field("UTC", description="Time zone of the cron expression (an IANA name: Europe/Paris).")

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if self.every is not None and self.cron is not None:
            raise ValueError("set 'every' or 'cron', not both")
        if self.every is not None:
            self.interval_minutes()
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not a time zone name (UTC, Europe/Paris...)") from None
        if self.cron is not None:
            _check_cron(self.cron, zone)
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
# The types this version runs; the others are validated but refused until their sync type lands.
SUPPORTED_SYNC_TYPES: tuple[str, ...] = ("users", "events", "email_change", "user_deletion", "catalog", "static_list")


class SyncBase(Strict):
    """What every sync type has: a model, a destination, field mappings, a schedule, the value rule."""

    id: Name | None = Field(None, description=ID_DESCRIPTION)
    model: Name = Field(description="Name of the model to read.")
    destination: Name = Field(description="Name of the destination to write to.")
    invalid_values: Literal["reject", "null"] = Field(
        "reject",
        description="A value Iterable cannot store (NaN, Infinity, a date outside years 1-9999, a decimal a "
        "double cannot hold): reject its row with the reason, or send null in its place.",
    )
    mappings: list[FieldMapping] = Field(min_length=1, description="How each destination field is filled.")
    enabled: bool = Field(True, description="false: the schedule runs nothing (the sync still runs by hand).")
    alert_rejected_percent: float = Field(
        10.0,
        ge=0,
        le=100,
        description="Alert when a run rejects more than this share of the rows it sent (percent).",
    )
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
    def _mappings_consistent(self) -> SyncBase:
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


IDENTIFIER_FIELDS = {"email": "email", "user_id": "userId"}  # match_on -> the Iterable field it names


class IdentifiedSync(SyncBase):
    """A sync whose rows are matched to Iterable users by email or userId (a column mapped to it)."""

    match_on: Literal["email", "user_id"] = Field(
        "email", description="Identifier that matches rows to Iterable users: email or user_id."
    )
    trim_identifier: bool = Field(
        False, description="Strip leading and trailing spaces from the identifier (email or userId) before matching."
    )
    lowercase_identifier: bool = Field(
        False, description="Lower-case the identifier before matching (Iterable already matches emails ignoring case)."
    )

    @property
    def identifier_field(self) -> str:
        """The Iterable field that identifies a user: email or userId."""
        return IDENTIFIER_FIELDS[self.match_on]


class UsersSync(IdentifiedSync):
    """Users: rows become user profiles (``users/bulkUpdate``)."""

    type: Literal["users"] = Field(description="users: rows become user profiles (users/bulkUpdate).")
    mode: Literal["upsert", "update"] = Field(
        "upsert",
        description="upsert creates missing users and updates the others; update only updates users Iterable "
        "has (a new row whose user is missing is skipped, after one lookup per new row).",
    )
    on_removed: Literal["nothing", "clear", "delete"] = Field(
        "nothing",
        description="What a row removed from the model does: nothing (leave the user), clear (send null for "
        "every mapped field) or delete (delete the user from Iterable).",
    )
    batch_size: int = Field(1000, ge=1, le=1000, description="Most users in one bulkUpdate request.")
    prefer_user_id: bool = Field(
        False, description="Email-based projects: create a user from a userId alone (preferUserId)."
    )
    merge_nested_objects: bool = Field(
        False, description="Merge top-level objects into the profile's instead of replacing them."
    )


class EventsSync(IdentifiedSync):
    """Events: rows become custom events of users (``events/trackBulk``); mappings fill the event's dataFields."""

    type: Literal["events"] = Field(
        description="events: rows become custom events (events/trackBulk); a changed row replaces its event "
        "(same id), a removed row leaves it."
    )
    event_name: str | None = Field(None, description="The events' name (or event_name_column).")
    event_name_column: str | None = Field(
        None, description="Column holding each event's name (or event_name); a row whose name is empty is rejected."
    )
    created_at: str | None = Field(
        None,
        description="Column of each event's time: a timestamp or date (sent as unix seconds) or an integer "
        "(unix time, sent as it is); null or no column: when Iterable receives the event.",
    )
    event_id: str | None = Field(
        None,
        description="Column of each event's id (at most 512 bytes); default: derived from the sync's name and the "
        "primary key, so a resent row replaces its event.",
    )
    batch_size: int = Field(1000, ge=1, le=1000, description="Most events in one trackBulk request.")

    @model_validator(mode="after")
    def _one_name(self) -> EventsSync:
        if (self.event_name is None) == (self.event_name_column is None):
            raise ValueError("set exactly one of 'event_name' or 'event_name_column'")
        if self.event_name is not None and not self.event_name.strip():
            raise KeyPathError("the event name is empty", ("event_name",))
        # The contract: "Provide an email or a userId (but not both)".
        other = "userId" if self.identifier_field == "email" else "email"
        for i, mapping in enumerate(self.mappings):
            if mapping.to == other:
                raise KeyPathError(
                    f"an event names its user by one identifier ({self.identifier_field}, by match_on): map this "
                    f"column to another field than {other!r} to keep it in the event's dataFields",
                    ("mappings", i, "to"),
                )
        return self


# The contract: catalog names are "Alphanumeric, dashes, case insensitive, 255 characters max".
_CATALOG_NAME = re.compile(r"[A-Za-z0-9-]{1,255}")
CatalogFieldType = Literal["string", "long", "double", "boolean", "date", "geo_location", "object"]


class CatalogSync(SyncBase):
    """Catalog: rows become items of a catalog; mappings fill the item's fields."""

    type: Literal["catalog"] = Field(
        description="catalog: rows become catalog items (POST /api/catalogs/{catalogName}/items); a changed row "
        "rewrites its item."
    )
    catalog: str = Field(
        description="Name of the catalog: 1 to 255 ASCII letters, digits and dashes (Iterable ignores case); "
        "created if missing."
    )
    item_id: str | None = Field(
        None,
        description="Column of each item's id (text or integer); default: the model's primary key (one column). "
        "An id has 1 to 255 ASCII letters, digits and dashes: a row with another id is rejected.",
    )
    replace: bool = Field(
        False,
        description="true: each write replaces the whole item; false: it updates the mapped fields and keeps "
        "the item's other fields (replaceUploadedFieldsOnly).",
    )
    on_removed: Literal["nothing", "delete"] = Field(
        "nothing",
        description="What a row removed from the model does: nothing, or delete its item (needs the item ids "
        "to be the model's primary key).",
    )
    field_types: dict[str, CatalogFieldType] = Field(
        default_factory=dict,
        description="Types given to catalog fields that have none yet, before the first write, e.g. {price: double, "
        "store: geo_location}; dot paths type nested fields. A field's type never changes once set.",
    )
    batch_size: int = Field(1000, ge=1, le=1000, description="Most items in one request.")

    @field_validator("catalog")
    @classmethod
    def _catalog_name(cls, value: str) -> str:
        if not _CATALOG_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a catalog name: Iterable takes 1 to 255 ASCII letters, digits and dashes"
            )
        return value

    @field_validator("field_types")
    @classmethod
    def _field_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for path in value:
            if not path or any(not part for part in path.split(".")):
                raise KeyPathError(f"{path!r} is not a field name or dot path", (path,))
            parts = path.split(".")
            for depth in range(1, len(parts)):
                parent = ".".join(parts[:depth])
                if value.get(parent, "object") != "object":
                    raise KeyPathError(
                        f"{path!r} makes {parent!r} an object, but {parent!r} is declared {value[parent]}", (path,)
                    )
        return value


class ListRef(Strict):
    """A static list, by name (created if missing) or by id."""

    name: str | None = Field(
        None,
        description="The static list's name: created on the first run if no static list has it; an error if "
        "several have it.",
    )
    id: int | None = Field(None, ge=1, description="The static list's id (an error if the project has no such list).")

    @model_validator(mode="after")
    def _one_kind(self) -> ListRef:
        if (self.name is None) == (self.id is None):
            raise ValueError("set exactly one of 'name' or 'id'")
        if self.name is not None and not self.name.strip():
            raise KeyPathError("the list's name is empty", ("name",))
        return self


class StaticListSync(IdentifiedSync):
    """Static lists: rows entering the model are subscribed to a list, rows leaving it unsubscribed.

    The model's primary key is the identifier (the column mapped to email or userId), so a row leaving
    the model is unsubscribed by its key, the identity it was subscribed with (docs/sync-types.md).
    """

    type: Literal["static_list"] = Field(
        description="static_list: rows are the members of a static list (lists/subscribe, lists/unsubscribe); "
        "the model's primary key must be the identifier column."
    )
    list: ListRef = Field(description="{name: NAME} or {id: N}.")
    on_removed: Literal["unsubscribe", "nothing"] = Field(
        "unsubscribe",
        description="What a row leaving the model does: unsubscribe it from the list (never from the list's "
        "channel), or nothing.",
    )
    update_existing_users_only: bool = Field(
        False,
        description="Subscribe only users that already exist: rows of unknown users are skipped. userID-based "
        "and hybrid projects only (Iterable ignores it in email-based ones).",
    )
    batch_size: int = Field(1000, ge=1, le=1000, description="Most subscribers in one request.")

    @model_validator(mode="after")
    def _identifier_sent_as_the_key(self) -> StaticListSync:
        # A removed row has nothing left but its key: it is unsubscribed by the key, so the identifier
        # must leave exactly as the key holds it, or a removal could name another user.
        for key, change in (("trim_identifier", "trim"), ("lowercase_identifier", "lower-case")):
            if getattr(self, key):
                raise KeyPathError(
                    f"a static_list sync sends the identifier exactly as the model's primary key holds it (a row "
                    f"leaving the model is unsubscribed by its key): {change} it in the model's SQL instead, "
                    "e.g. SELECT lower(trim(email)) AS email",
                    (key,),
                )
        return self


def _only_the_identifier(sync: IdentifiedSync, kind: str) -> None:
    """Types that send one user's identifier and nothing else take only its mapping: another would be
    silently dropped."""
    for i, mapping in enumerate(sync.mappings):
        if not isinstance(mapping, ColumnMapping) or mapping.to != sync.identifier_field:
            raise KeyPathError(
                f"{kind} sends only the user's {sync.identifier_field} (match_on: {sync.match_on}), so "
                f"{mapping.to!r} would not be sent: remove this mapping",
                ("mappings", i, "to"),
            )


class EmailChangeSync(IdentifiedSync):
    """Email address changes: each row changes its user's email to ``new_email`` (``users/updateEmail``)."""

    type: Literal["email_change"] = Field(
        description="email_change: rows change users' email addresses (users/updateEmail); the only mapping is "
        "the current identifier (match_on). match_on email: a row fires when its key first appears; user_id: "
        "also when its new_email changes. Removed rows do nothing."
    )
    new_email: str = Field(
        description="Column of the new email address (text; trimmed and lower-cased like the identifier when the "
        "sync says so); a row without one is rejected."
    )

    @model_validator(mode="after")
    def _identifier_only(self) -> EmailChangeSync:
        _only_the_identifier(self, "email_change")
        return self


class UserDeletionSync(IdentifiedSync):
    """Deleting, forgetting or unforgetting users: fires when a primary key first appears in the model."""

    type: Literal["user_deletion"] = Field(
        description="user_deletion: rows delete, forget or unforget users, once, when their primary key first "
        "appears in the model; the only mapping is the identifier (match_on). Changed and removed rows do nothing."
    )
    action: Literal["delete", "forget", "unforget"] = Field(
        description="delete (DELETE /api/users/{email} or byUserId/{userId}), forget or unforget (users/forget, "
        "users/unforget: 1000 a day per project; rows over that are deferred to a later run)."
    )

    @model_validator(mode="after")
    def _identifier_only(self) -> UserDeletionSync:
        _only_the_identifier(self, "user_deletion")
        return self


SyncConfig = Annotated[
    UsersSync | EventsSync | CatalogSync | StaticListSync | EmailChangeSync | UserDeletionSync,
    Field(discriminator="type"),
]
SYNC_MODELS: dict[str, type[SyncBase]] = {
    "users": UsersSync,
    "events": EventsSync,
    "catalog": CatalogSync,
    "static_list": StaticListSync,
    "email_change": EmailChangeSync,
    "user_deletion": UserDeletionSync,
}


def placeholder_mappings(definition: Mapping[str, Any], key_column: str) -> list[dict[str, str]]:
    """The least mappings with which a sync defined as ``definition`` (its mappings not chosen yet) passes
    its checks: its key column to the identifier it matches on (to email for a type without one), so an
    editor can check the rest of a draft before suggestions replace them."""
    field = IDENTIFIER_FIELDS.get(str(definition.get("match_on") or "email"), "email")
    return [{"from": key_column, "to": field}]
