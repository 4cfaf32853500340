"""Catalog: each row becomes an item of one catalog (``POST /api/catalogs/{catalogName}/items``).

Keys (``config.syncs.CatalogSync``): ``catalog`` (created if missing), ``item_id`` (a column; default:
the primary key's text form), ``replace`` (whole items, or only the mapped fields), ``on_removed``
(``nothing``, or ``delete`` the item: ``DELETE /api/catalogs/{catalogName}/items``), ``field_types``,
``batch_size``. Mappings fill the item's fields; dot paths make nested objects.

Before sending, the run creates the catalog if it is missing, gives the fields of ``field_types`` that
have no type yet their type (``PUT .../fieldMappings``), and reads the catalog's field types, so rows
whose values cannot fit them are rejected without a request (as users do with ``getFields``). How rows
become items, and which are refused before sending, is ``catalog_items``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc

from smartingest.config.models import CatalogSync, SyncBase
from smartingest.errors import ConfigError, DestinationAuthError, DestinationError, MappingError
from smartingest.iterable.catalog_writer import CatalogWriter, documents_envelope
from smartingest.iterable.catalogs import create_catalog, read_field_types, set_field_types
from smartingest.iterable.client import IterableClient
from smartingest.iterable.fields import fits
from smartingest.iterable.outcomes import SYNCED
from smartingest.iterable.writer import Record, Writer
from smartingest.mapping.kinds import FieldKind, RunInfo
from smartingest.mapping.plan import TOP_LEVEL_IDENTITY, UserRecordPlan, compile_user_plan, digest
from smartingest.synctypes.base import OP_COLUMN, PK_COLUMN, Decided, Matching
from smartingest.synctypes.catalog_items import ItemBuilder
from smartingest.synctypes.common import TEXT_INTO_DATE, Describe, by_fields_sent, type_conflicts

log = logging.getLogger(__name__)


@dataclass
class CatalogPlan:
    """A catalog sync compiled for one run (a ``TypePlan``)."""

    sync: CatalogSync
    items: ItemBuilder
    alone: tuple[str, ...] = ()  # parts sent alone to rows whose values are unchanged

    @property
    def catalog(self) -> str:
        return self.sync.catalog

    @property
    def endpoint_name(self) -> str:
        return f"POST /api/catalogs/{self.catalog}/items"

    @property
    def source_columns(self) -> list[str]:
        columns = set(self.items.fields.source_columns)
        if self.items.item_id_column is not None:
            columns.add(self.items.item_id_column)
        return sorted(columns)

    @property
    def fingerprint(self) -> str:
        """The mapping's fingerprint, the catalog (names are case-insensitive), where ids come from and
        how items are written: changing any of them resends every row."""
        return digest({"mapping": self.items.fields.fingerprint, **self._settings()})

    def _settings(self) -> dict[str, object]:
        return {"catalog": self.catalog.lower(), "item_id": self.items.item_id_column, "replace": self.sync.replace}

    def field_parts(self) -> dict[str, str] | None:
        """Items whose uploaded fields only are replaced take fields alone; whole items do not."""
        if self.sync.replace:
            return None
        parts = self.items.fields.parts(1)  # replaceUploadedFieldsOnly replaces top-level fields whole
        return {**parts, "": digest([parts[""], self._settings()])}

    def send_alone(self, parts: Sequence[str]) -> None:
        self.alone = tuple(parts)

    @property
    def matching(self) -> Matching | None:
        """Ids from a column: two rows with one id would overwrite one item (ids are case-sensitive).
        Ids from the primary key are unique already."""
        column = self.items.item_id_column
        return Matching(column, "itemId", ignore_case=False, trim=False) if column is not None else None

    def map_changes(self, batch: pa.RecordBatch) -> tuple[list[Record], list[Decided]]:
        """Added and changed rows become documents; removed rows are deleted (on_removed: delete) or
        need no request (nothing)."""
        is_removed = pc.equal(batch.column(OP_COLUMN), "removed")
        removed = batch.filter(is_removed)
        records: list[Record] = []
        decided: list[Decided] = []
        if removed.num_rows:
            if self.sync.on_removed == "delete":
                deletes, decided = self.items.deletes(removed)
                records += deletes
            else:
                decided = [(pk, "removed", SYNCED) for pk in removed.column(PK_COLUMN).to_pylist()]
        upserts = batch.filter(pc.invert(is_removed)) if removed.num_rows else batch
        if upserts.num_rows:
            for rows, fields in by_fields_sent(upserts, self.items.fields, self.alone, 1):
                documents, refused = replace(self.items, fields=fields).documents(rows)
                records += documents
                decided += refused
        return records, decided

    def sample_body(self, records: Sequence[Record]) -> bytes:
        head, tail = documents_envelope(self.sync.replace)
        return head + b",".join(r.body for r in records) + tail

    async def inspect_destination(self, client: IterableClient) -> list[str]:
        """Read the catalog's field types; rows whose values cannot fit them will be rejected unsent.

        A missing catalog is a warning (the run creates it, with ``field_types``). If Iterable cannot
        answer, the plan goes on without the check. Raises DestinationAuthError.
        """
        try:
            types = await read_field_types(client, self.catalog)
        except DestinationAuthError:
            raise
        except DestinationError as exc:
            log.warning("catalog field types not checked: %s", exc)
            return []
        warnings: list[str] = []
        if types is None:
            warnings.append(f"catalog {self.catalog!r} does not exist yet: the run creates it")
            types = {}
        warnings += self._refuse_misfits({**with_parents(self._untyped(types)), **types})
        return warnings

    async def prepare_destination(self, client: IterableClient) -> list[str]:
        """Create the catalog if missing, type the ``field_types`` fields that have no type yet, then
        refuse the rows whose values cannot fit the catalog's types. Raises DestinationError when the
        catalog cannot be read, created or typed."""
        types = await read_field_types(client, self.catalog)
        if types is None:
            try:
                await create_catalog(client, self.catalog)
            except DestinationError:
                # Another writer may have created it since: only a catalog still missing is an error.
                if await read_field_types(client, self.catalog) is None:
                    raise
            types = {}
        missing = self._untyped(types)
        if missing:
            await set_field_types(client, self.catalog, missing)
            types = {**with_parents(missing), **types}
        return self._refuse_misfits(types)

    def writer(self, client: IterableClient) -> Writer:
        return CatalogWriter(client, self.catalog, self.sync.batch_size, self.sync.replace)

    def _untyped(self, types: dict[str, str]) -> dict[str, str]:
        """The ``field_types`` entries the catalog has no type for yet."""
        return {path: kind for path, kind in self.sync.field_types.items() if path not in types}

    def _refuse_misfits(self, types: dict[str, str]) -> list[str]:
        """Refuse rows whose values cannot fit the catalog's field types; warn of each such field, and of
        each ``field_types`` entry the catalog already has another type for (a type never changes)."""
        warnings = [
            f"field_types: field {path!r} of catalog {self.catalog!r} is already of type {types[path]}, not "
            f"{kind}: a catalog field's type never changes, so {types[path]} stays"
            for path, kind in sorted(self.sync.field_types.items())
            if types.get(path, kind) != kind
        ]
        conflicts = type_conflicts(self.items.fields, types, _describe_catalog_field(self.catalog))
        self.items = replace(self.items, fields=self.items.fields.refusing(conflicts))
        return warnings + [f"field type conflict: {misfit.reason}" for misfit in conflicts.values()]


def with_parents(types: Mapping[str, str]) -> dict[str, str]:
    """Dot paths and their types, with every parent of a nested path as ``object`` (unless listed)."""
    result: dict[str, str] = {}
    for path in types:
        parts = path.split(".")
        for depth in range(1, len(parts)):
            result.setdefault(".".join(parts[:depth]), "object")
    return {**result, **types}


def _describe_catalog_field(catalog: str) -> Describe:
    def describe(path: str, fixed: str, mapping: FieldKind, kind: str) -> str:
        if fits(fixed, kind) is None:
            field = f"field {path!r} of catalog {catalog!r}"
            return f"{field} is of type {fixed}, but {mapping.source} sends {kind} values: {TEXT_INTO_DATE}"
        return (
            f"field {path!r} of catalog {catalog!r} is of type {fixed}, but {mapping.source} sends {kind} "
            "values: a catalog field's type never changes, so change the column's type in the model or map it "
            "to another field (rows with a value there are not sent)"
        )

    return describe


class Catalog:
    """The catalog sync type."""

    name = "catalog"

    def compile(self, sync: SyncBase, schema: pa.Schema, where: str, run: RunInfo | None = None) -> CatalogPlan:
        """Compile the mappings (no identifier: items are not users), check the item id column and the
        ``field_types`` against the mapped columns; raises MappingError or ConfigError naming the key."""
        if not isinstance(sync, CatalogSync):
            raise ConfigError(f"{where}: not a catalog sync")
        fields = compile_user_plan(
            sync.mappings, schema, None, where=f"{where}.mappings", invalid_values=sync.invalid_values, run=run
        )
        _check_identity_paths(fields, f"{where}.mappings")
        if sync.item_id is not None:
            _check_item_id_column(sync.item_id, schema, f"{where}.item_id")
        _check_declared_types(fields, with_parents(sync.field_types), f"{where}.field_types")
        return CatalogPlan(sync, ItemBuilder(fields, sync.item_id))


def _check_identity_paths(fields: UserRecordPlan, where: str) -> None:
    """``email`` and ``userId`` are plain item fields here: a path under one of them would repeat it."""
    targets = [mapping.target for mapping in fields.fields]
    for name in TOP_LEVEL_IDENTITY:
        if name in targets:
            nested = next((t for t in targets if t.startswith(name + ".")), None)
            if nested is not None:
                raise MappingError(f"{where}: {name!r} is mapped as a value and also as the object of {nested!r}")


def _check_declared_types(fields: UserRecordPlan, declared: dict[str, str], where: str) -> None:
    """A ``field_types`` entry the mapped column's values cannot fit would refuse every row with a value."""
    for mapping in fields.fields:
        for path, kind in mapping.kinds:
            fixed = declared.get(path)
            if fixed is not None and fits(fixed, kind) is False:
                raise MappingError(
                    f"{where}: field {path!r} is declared {fixed}, but {mapping.source} sends {kind} values "
                    "there: declare another type or cast the column"
                )


def _check_item_id_column(column: str, schema: pa.Schema, where: str) -> None:
    """Item ids are text: a text or integer column (ids of other types are not letters, digits, dashes)."""
    if column not in schema.names:
        raise MappingError(f"{where}: the model has no column {column!r} (columns: {', '.join(schema.names)})")
    dtype = schema.field(column).type
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    text = pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)
    if not (text or pa.types.is_integer(dtype)):
        raise MappingError(
            f"{where}: column {column!r} is {dtype}; an item id is text of letters, digits and dashes: use a text "
            "or integer column (cast it in the model)"
        )


SYNC_TYPE = Catalog()
