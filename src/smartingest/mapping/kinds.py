"""Mapping kinds, compiled: one small object per field mapping of a sync.

Each says which model columns it reads (the row hash covers exactly those), its part of the mapping's
fingerprint (a change resends every row), the Iterable field types its values create (checked against
the destination's before sending), and how it produces one batch's values as JSON text, column-wise. A
new kind of mapping is one more class here and one more compiler in ``COMPILERS``; nothing that builds
request items changes. Objects and arrays compile their parts with ``compile_kind``, as the plan does.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from smartingest.codes import ReasonCode
from smartingest.columns import is_json_text
from smartingest.config.models import (
    ArrayMapping,
    ColumnMapping,
    ObjectMapping,
    StaticMapping,
    TemplateMapping,
    VariableMapping,
)
from smartingest.config.syncs import VariableName
from smartingest.errors import MappingError
from smartingest.mapping.encode import ITERABLE_DATETIME_FORMAT, Encoder, Problems, json_kinds, json_string
from smartingest.mapping.objects import Leaf, check_paths, insert, json_array, json_object
from smartingest.mapping.templates import CompiledTemplate, compile_template
from smartingest.mapping.values import cast_static, check_castable

TOP_LEVEL_IDENTITY = ("email", "userId")


class FieldKind(Protocol):
    """One compiled field mapping."""

    @property
    def target(self) -> str:
        """The field path it writes (``address.city``)."""
        ...

    @property
    def columns(self) -> tuple[str, ...]:
        """The model columns it reads."""
        ...

    @property
    def source(self) -> str:
        """Where its values come from, for messages: ``column 'plan' (string)``."""
        ...

    @property
    def kinds(self) -> tuple[tuple[str, str], ...]:
        """The Iterable field types its values create, by path (none when they depend on each value)."""
        ...

    @property
    def skip_null(self) -> bool:
        """Whether a null leaves the field out of the row's request instead of sending null."""
        ...

    def fingerprint(self) -> list[Any]:
        """Its part of the mapping's fingerprint (JSON-able): what shapes the values it sends."""
        ...

    def values(self, batch: pa.RecordBatch, encoder: Encoder, problems: Problems) -> pa.Array | str:
        """Its JSON text for every row of ``batch`` (null for null), or one constant JSON text; values
        Iterable cannot store are reported to ``problems``. Never raises for a bad value."""
        ...


@dataclass(frozen=True)
class ColumnValue:
    """``{from: COLUMN, to: FIELD}``: a column's values, encoded by their Arrow type (``parse_json``: the
    column holds JSON text, sent parsed). ``from: COLUMN.a.b`` reads into a struct column (Arrow picks the
    field out) or a JSON column (each value parsed, the path followed; absent is null)."""

    column: str
    target: str
    parse_json: bool = False
    column_type: str = ""
    kinds: tuple[tuple[str, str], ...] = ()
    skip_null: bool = False
    path: tuple[str, ...] = ()  # into the column's values

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    @property
    def read(self) -> str:
        """What it reads: the column, or the path into it (``address.city``)."""
        return ".".join((self.column, *self.path))

    @property
    def source(self) -> str:
        return f"column {self.read!r} ({self.column_type})"

    def fingerprint(self) -> list[Any]:
        # skip_null and a path take part only when set, so mappings written before them keep their fingerprint.
        return (
            ["column", self.column, self.target, self.parse_json]
            + (["skip_null"] if self.skip_null else [])
            + (["path", *self.path] if self.path else [])
        )

    def values(self, batch: pa.RecordBatch, encoder: Encoder, problems: Problems) -> pa.Array | str:
        array = batch.column(self.column)
        where = f"{self.target} (column {self.read!r})"
        if self.path and self.parse_json:
            array, not_json = _json_path(array, self.path)
            problems.add(not_json, f"{where}: column {self.column!r} holds text that is not JSON")
        elif self.path:
            array = pc.struct_field(array, list(self.path))
        return encoder.encode(array, where, problems, self.parse_json)


@dataclass(frozen=True)
class StaticValue:
    """``{static: VALUE, to: FIELD}``: the same value on every row."""

    target: str
    value: str | int | float | bool | None
    skip_null: bool = False  # a static value is the same on every row: null is sent when it is the value

    @property
    def columns(self) -> tuple[str, ...]:
        return ()

    @property
    def source(self) -> str:
        return f"the static value {self.value!r}"

    @property
    def kinds(self) -> tuple[tuple[str, str], ...]:
        kind = _python_kind(self.value)
        return ((self.target, kind),) if kind else ()

    def fingerprint(self) -> list[Any]:
        return ["static", self.target, repr(self.value)]

    def values(self, batch: pa.RecordBatch, encoder: Encoder, problems: Problems) -> pa.Array | str:
        return orjson.dumps(self.value).decode()


@dataclass(frozen=True)
class RunInfo:
    """What variable mappings send: the sync, its model, and the run (no run id in a plan, which sends
    nothing). An id not given is the name (as an object without an ``id`` key has)."""

    sync_name: str
    model_name: str
    run_id: int | None = None
    started_at: dt.datetime | None = None  # UTC; None: the time the values are first read
    sync_id: str | None = None
    model_id: str | None = None

    def value(self, name: str) -> str | int | None:
        """A variable's value (``now`` is read each time)."""
        if name == "sync_name":
            return self.sync_name
        if name == "sync_id":
            return self.sync_id or self.sync_name
        if name == "model_name":
            return self.model_name
        if name == "model_id":
            return self.model_id or self.model_name
        if name == "run_id":
            return self.run_id
        moment = dt.datetime.now(dt.UTC) if name == "now" or self.started_at is None else self.started_at
        return moment.astimezone(dt.UTC).strftime(ITERABLE_DATETIME_FORMAT)


VARIABLE_KINDS = {"run_id": "long", "run_started_at": "date", "now": "date"}  # the others: "string"


@dataclass(frozen=True)
class VariableValue:
    """``{variable: NAME, to: FIELD}``: sync metadata, the same on every row of a batch. It reads no column,
    so it takes no part in the row hash: a new run id does not make every row changed."""

    target: str
    name: str
    run: RunInfo
    skip_null: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return ()

    @property
    def source(self) -> str:
        return f"the variable {self.name!r}"

    @property
    def kinds(self) -> tuple[tuple[str, str], ...]:
        return ((self.target, VARIABLE_KINDS.get(self.name, "string")),)

    def fingerprint(self) -> list[Any]:
        return ["variable", self.name, self.target]

    def values(self, batch: pa.RecordBatch, encoder: Encoder, problems: Problems) -> pa.Array | str:
        return orjson.dumps(self.run.value(self.name)).decode()


@dataclass(frozen=True)
class TemplateValue:
    """``{template: "...", to: FIELD}``: a Liquid template rendered per row (mapping/templates.py). The
    columns it reads take part in the row hash, so a change to one makes the row changed."""

    target: str
    template: CompiledTemplate
    run: RunInfo | None
    skip_null: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return self.template.columns

    @property
    def source(self) -> str:
        return f"the template {self.template.source!r}"

    @property
    def kinds(self) -> tuple[tuple[str, str], ...]:
        return ((self.target, "string"),)

    def fingerprint(self) -> list[Any]:
        return ["template", self.template.source, self.target]

    def values(self, batch: pa.RecordBatch, encoder: Encoder, problems: Problems) -> pa.Array | str:
        variables = {name: self.run.value(name) for name in self.template.variables} if self.run else {}

        def fail(rows: pa.Array, message: str) -> None:
            problems.add(rows, f"{self.target}: the template failed: {message}", ReasonCode.TEMPLATE_FAILED)

        return json_string(self.template.render(batch, variables, fail))


@dataclass(frozen=True)
class ObjectValue:
    """``{object: [MAPPINGS], to: FIELD}``: one object from several mappings (their targets are its keys,
    dots nesting further). Each part keeps its own rules: a part that skips nulls is left out where null."""

    target: str
    parts: tuple[FieldKind, ...]

    @property
    def skip_null(self) -> bool:
        # Where every part was left out the object is null, and left out too: {} would clear the field.
        return all(part.skip_null for part in self.parts)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(column for part in self.parts for column in part.columns))

    @property
    def source(self) -> str:
        return f"an object of {len(self.parts)} fields"

    @property
    def kinds(self) -> tuple[tuple[str, str], ...]:
        return tuple((f"{self.target}.{path}", kind) for part in self.parts for path, kind in part.kinds)

    def fingerprint(self) -> list[Any]:
        return ["object", self.target, [part.fingerprint() for part in self.parts]]

    def values(self, batch: pa.RecordBatch, encoder: Encoder, problems: Problems) -> pa.Array | str:
        tree: dict[str, Any] = {}
        inner = problems.within(f"{self.target}.")
        for part in self.parts:
            values = part.values(batch, encoder, inner)
            # A part whose field type does not fit rejects the rows that have a value there, not every row.
            encoder.refuse_misfits(values, inner.prefix + part.target, inner)
            insert(tree, part.target.split("."), Leaf(values, part.skip_null))
        return json_object(tree)


@dataclass(frozen=True)
class ArrayValue:
    """``{array: [MAPPINGS], to: FIELD}``: one array, an element per mapping in order (null where null)."""

    target: str
    elements: tuple[FieldKind, ...]
    skip_null: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(column for element in self.elements for column in element.columns))

    @property
    def source(self) -> str:
        return f"an array of {len(self.elements)} elements"

    @property
    def kinds(self) -> tuple[tuple[str, str], ...]:
        return ()  # Iterable types an array by its elements, which may differ

    def fingerprint(self) -> list[Any]:
        return ["array", self.target, [element.fingerprint() for element in self.elements]]

    def values(self, batch: pa.RecordBatch, encoder: Encoder, problems: Problems) -> pa.Array | str:
        inner = problems.within(self.target)  # elements are named "[0]", "[1]"...
        return json_array([element.values(batch, encoder, inner) for element in self.elements], batch.num_rows)


def _python_kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    # A static date leaves as a date string, which Iterable may type as date: let the value decide.
    return None


def compile_column(mapping: ColumnMapping, schema: pa.Schema, at: str) -> ColumnValue:
    """A column mapping checked against the model's schema; MappingError names the mapping at fault."""
    names = schema.names
    name, path = _column_and_path(mapping.from_, names)
    if name is None:
        raise MappingError(f"{at}: the model has no column {mapping.from_!r} (columns: {', '.join(names)})")
    column = schema.field(name)
    parse_json = is_json_text(column) if mapping.parse_json is None else mapping.parse_json
    if parse_json and not _is_text(column.type):
        raise MappingError(f"{at}: parse_json needs a text column; {name!r} is {column.type}")
    if path and mapping.to in TOP_LEVEL_IDENTITY:
        raise MappingError(
            f"{at}: {mapping.to} identifies users and must be a column of its own: select {mapping.from_} "
            "as a column in the model"
        )
    dtype = column.type
    if path and not parse_json:
        dtype = _struct_path_type(column, path, at)
    check_castable(mapping.from_, dtype)
    if mapping.to in TOP_LEVEL_IDENTITY:  # identifiers always leave as text
        kinds: tuple[tuple[str, str], ...] = ((mapping.to, "string"),)
    else:
        kinds = () if parse_json else tuple(json_kinds(dtype, mapping.to))
    return ColumnValue(name, mapping.to, parse_json, str(dtype), kinds, mapping.skip_null, path)


def _column_and_path(source: str, names: list[str]) -> tuple[str | None, tuple[str, ...]]:
    """The column ``source`` names and the path into it: the column itself when one has that exact name,
    else the longest column name it starts with (``address.geo.zip``: column ``address``, path geo, zip)."""
    if source in names:
        return source, ()
    parts = source.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:cut])
        if name in names:
            return name, tuple(parts[cut:])
    return None, ()


def _struct_path_type(column: pa.Field, path: tuple[str, ...], at: str) -> pa.DataType:
    """The type a path leads to in a struct column; MappingError when it leads nowhere."""
    dtype = column.type
    walked = column.name
    for part in path:
        if not pa.types.is_struct(dtype):
            raise MappingError(
                f"{at}: {walked!r} is {dtype}, which has no fields to read {part!r} from (a path reads into "
                "struct columns, and into JSON columns)"
            )
        if dtype.get_field_index(part) < 0:
            fields = ", ".join(dtype.field(i).name for i in range(dtype.num_fields))
            raise MappingError(f"{at}: {walked!r} has no field {part!r} (fields: {fields})")
        dtype = dtype.field(part).type
        walked = f"{walked}.{part}"
    return dtype


def _json_path(texts: pa.Array | pa.ChunkedArray, path: tuple[str, ...]) -> tuple[pa.Array, pa.Array]:
    """The JSON text of what ``path`` leads to in each JSON value (null where the value is null or has
    nothing there), and which values are not JSON at all. Parses each value: JSON columns have no
    columnar form to read into."""
    out: list[str | None] = []
    not_json: list[bool] = []
    for text in texts.to_pylist():
        value: Any = None
        bad = False
        if text is not None:
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                bad = True
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
        out.append(None if value is None else orjson.dumps(value).decode())
        not_json.append(bad)
    return pa.array(out, pa.string()), pa.array(not_json, pa.bool_())


def compile_static(mapping: StaticMapping, schema: pa.Schema, at: str) -> StaticValue:
    """A static mapping, its value cast to its declared type; MappingError names the mapping at fault."""
    _not_an_identifier(mapping.to, at, "a static value")
    return StaticValue(mapping.to, cast_static(mapping.static, mapping.type, at))


def compile_variable(mapping: VariableMapping, schema: pa.Schema, at: str, run: RunInfo | None) -> VariableValue:
    """A variable mapping; MappingError names the mapping at fault."""
    if run is None:
        raise MappingError(f"{at}: variable mappings are sent by runs of a sync, and this compiles none")
    _not_an_identifier(mapping.to, at, "a variable")
    return VariableValue(mapping.to, mapping.variable, run)


def compile_template_mapping(
    mapping: TemplateMapping, schema: pa.Schema, at: str, run: RunInfo | None
) -> TemplateValue:
    """A template mapping, parsed and checked against the model's columns and the run's variables."""
    _not_an_identifier(mapping.to, at, "a template")
    variables: tuple[str, ...] = typing.get_args(VariableName) if run is not None else ()
    return TemplateValue(mapping.to, compile_template(mapping.template, schema, variables, at), run)


def compile_object(mapping: ObjectMapping, schema: pa.Schema, at: str, run: RunInfo | None) -> ObjectValue:
    """An object mapping, its parts compiled as mappings of their own (``at.object[i]``)."""
    _not_an_identifier(mapping.to, at, "an object")
    parts = tuple(compile_kind(part, schema, f"{at}.object[{i}]", run) for i, part in enumerate(mapping.object))
    targets = [part.target for part in parts]
    duplicate = next((t for t in targets if targets.count(t) > 1), None)
    if duplicate is not None:
        raise MappingError(f"{at}: the object has the field {duplicate!r} twice")
    check_paths(targets, at)
    return ObjectValue(mapping.to, parts)


def compile_array(mapping: ArrayMapping, schema: pa.Schema, at: str, run: RunInfo | None) -> ArrayValue:
    """An array mapping, its elements compiled as mappings of their own (``at.array[i]``)."""
    _not_an_identifier(mapping.to, at, "an array")
    elements = tuple(compile_kind(element, schema, f"{at}.array[{i}]", run) for i, element in enumerate(mapping.array))
    return ArrayValue(mapping.to, elements)


def compile_kind(mapping: Any, schema: pa.Schema, at: str, run: RunInfo | None) -> FieldKind:
    """Any mapping of the project file, compiled by its kind's compiler; MappingError names ``at``."""
    compiler = COMPILERS.get(type(mapping))
    if compiler is None:
        raise MappingError(f"{at}: {type(mapping).__name__} mappings are not supported here")
    return compiler(mapping, schema, at, run)


def _not_an_identifier(target: str, at: str, what: str) -> None:
    if target in TOP_LEVEL_IDENTITY:
        raise MappingError(f"{at}: {target} identifies users and must come from a column, not {what}")


# config mapping class -> its compiler (mapping, the model's schema, its key path, the run)
COMPILERS: dict[type, Callable[[Any, pa.Schema, str, RunInfo | None], FieldKind]] = {
    ColumnMapping: lambda mapping, schema, at, run: compile_column(mapping, schema, at),
    StaticMapping: lambda mapping, schema, at, run: compile_static(mapping, schema, at),
    VariableMapping: compile_variable,
    TemplateMapping: compile_template_mapping,
    ObjectMapping: compile_object,
    ArrayMapping: compile_array,
}


def _is_text(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)
