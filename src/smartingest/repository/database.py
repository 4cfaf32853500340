"""Definitions kept in the metadata database: what the REST API and the web UI create and edit.

One row per object (``store.tables.Definition``): its kind, stable id and name as columns, its keys as
JSON sealed by ``SecretBox``. A write validates the whole project with the change applied
(``config.loader.with_definition``) before anything is written, in one transaction: a refused write
leaves the database as it was. An object created without an ``id`` takes its name as id (as in a project
file), or its name and a suffix when a renamed object holds that id already.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Engine, Row, delete, insert, select, update

from smartingest.config.loader import format_validation_error, with_definition, without_definition
from smartingest.config.models import ProjectConfig
from smartingest.errors import ConfigError
from smartingest.repository.base import (
    NOT_STORED_SETTINGS,
    SECTIONS,
    Kind,
    ProjectCheck,
    plain_definition,
    settings_definition,
)
from smartingest.repository.secrets import SecretBox
from smartingest.store.tables import Definition

SETTINGS_KIND = "settings"  # the row of the project's top-level settings
_ROWS = select(Definition.kind, Definition.id, Definition.name, Definition.body)
DefinitionRow = Row[str, str, str, str]  # kind, id, name, body


class DatabaseRepository:
    """A project's definitions in the metadata database (a ``Repository``)."""

    def __init__(self, engine: Engine, box: SecretBox, settings: Mapping[str, Any] | None = None) -> None:
        self.engine = engine
        self.box = box
        self.settings = dict(settings or {})  # the project's top-level keys (state_dir, retention...)

    @property
    def location(self) -> str:
        return f"the metadata database ({self.engine.url.render_as_string(hide_password=True)})"

    @property
    def read_only(self) -> str | None:
        return None

    def load(self) -> ProjectConfig:
        sections: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS.values()}
        settings = dict(self.settings)
        with self.engine.connect() as con:
            for row in con.execute(_ROWS.order_by(Definition.created_at, Definition.name)):
                body = self._open(row)
                if row.kind == SETTINGS_KIND:
                    settings.update(body)
                else:
                    sections[SECTIONS[row.kind]][row.name] = {**body, "id": row.id}
        try:
            return ProjectConfig.model_validate({**settings, **sections})
        except ValueError as exc:  # a definition an earlier version accepted: say which, do not lose it
            raise ConfigError(f"{self.location} holds definitions that no longer validate: {exc}") from exc

    def save(
        self, kind: Kind, name: str, definition: Mapping[str, Any], check: ProjectCheck | None = None
    ) -> ProjectConfig:
        section = SECTIONS[kind]
        current = self.load()
        given_id = definition.get("id")
        existing = self._row_by_id(kind, given_id) if given_id else None
        if existing is None:
            existing = self._row_by_name(kind, name)
            if existing is not None and given_id and given_id != existing.id:
                raise ConfigError(
                    f"{section}.{name}.id: {name!r} has id {existing.id!r}; an object's id never changes (to make "
                    "another object, give it another name)"
                )
        renamed_from = existing.name if existing is not None else None
        object_id = existing.id if existing is not None else given_id or self._free_id(kind, name)
        project = with_definition(current, section, name, {**definition, "id": object_id}, renamed_from)
        if check is not None:
            check(current, project)
        now = datetime.now(UTC)
        with self.engine.begin() as con:
            if renamed_from is not None and renamed_from != name:
                self._rewrite_referrers(con, kind, project)
            body = self._seal(plain_definition(getattr(project, section)[name]))
            if existing is None:
                con.execute(
                    insert(Definition).values(
                        kind=kind, id=object_id, name=name, body=body, created_at=now, updated_at=now
                    )
                )
            else:
                con.execute(
                    update(Definition)
                    .where(Definition.kind == kind, Definition.id == object_id)
                    .values(name=name, body=body, updated_at=now)
                )
        return project

    def stored_settings(self) -> dict[str, Any]:
        """The project's top-level settings as stored (empty: every one at its default)."""
        with self.engine.connect() as con:
            row = con.execute(_ROWS.where(Definition.kind == SETTINGS_KIND)).first()
        return self._open(row) if row is not None else {}

    def save_settings(self, settings: Mapping[str, Any]) -> ProjectConfig:
        """Replace the project's top-level settings (alerts, sync_quota, state_store...), checked with the
        definitions as a project file is; returns the project. ConfigError names the key at fault."""
        kept = {k: v for k, v in settings.items() if k not in NOT_STORED_SETTINGS}
        current = self.load()
        sections = {section: dict(getattr(current, section)) for section in SECTIONS.values()}
        try:
            project = ProjectConfig.model_validate({**kept, **sections})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc)) from exc
        body, now = self._seal(settings_definition(project)), datetime.now(UTC)
        with self.engine.begin() as con:
            con.execute(delete(Definition).where(Definition.kind == SETTINGS_KIND))
            con.execute(
                insert(Definition).values(
                    kind=SETTINGS_KIND, id=SETTINGS_KIND, name=SETTINGS_KIND, body=body, created_at=now, updated_at=now
                )
            )
        return project

    def delete(self, kind: Kind, name: str) -> ProjectConfig:
        project = without_definition(self.load(), SECTIONS[kind], name)
        with self.engine.begin() as con:
            con.execute(delete(Definition).where(Definition.kind == kind, Definition.name == name))
        return project

    def reseal(self) -> int:
        """Encrypt every definition again with the first key (after a new key was put first); returns how
        many. One transaction: an interruption leaves every row as it was."""
        with self.engine.begin() as con:
            rows = con.execute(_ROWS).all()
            for row in rows:
                body = self.box.reseal(row.body, f"{SECTIONS.get(row.kind, row.kind)}.{row.name}")
                con.execute(
                    update(Definition).where(Definition.kind == row.kind, Definition.id == row.id).values(body=body)
                )
        return len(rows)

    # -- helpers ------------------------------------------------------------------------------

    def _rewrite_referrers(self, con: Any, kind: Kind, project: ProjectConfig) -> None:
        """After a rename, the objects that referred to the old name hold the new one (``project`` has them
        so): write them back."""
        referring = {"source": "model", "model": "sync", "destination": "sync"}.get(kind)
        if referring is None:
            return
        objects = getattr(project, SECTIONS[referring])
        for row in con.execute(_ROWS.where(Definition.kind == referring)).all():
            if row.name in objects:
                body = self._seal(plain_definition(objects[row.name]))
                con.execute(
                    update(Definition).where(Definition.kind == referring, Definition.id == row.id).values(body=body)
                )

    def _row_by_id(self, kind: Kind, object_id: str) -> DefinitionRow | None:
        with self.engine.connect() as con:
            return con.execute(_ROWS.where(Definition.kind == kind, Definition.id == object_id)).first()

    def _row_by_name(self, kind: Kind, name: str) -> DefinitionRow | None:
        with self.engine.connect() as con:
            return con.execute(_ROWS.where(Definition.kind == kind, Definition.name == name)).first()

    def _free_id(self, kind: Kind, name: str) -> str:
        if self._row_by_id(kind, name) is None:
            return name
        return f"{name[:50]}-{uuid.uuid4().hex[:8]}"

    def _seal(self, body: dict[str, Any]) -> str:
        return self.box.seal(orjson.dumps(body))

    def _open(self, row: DefinitionRow) -> dict[str, Any]:
        opened: dict[str, Any] = orjson.loads(self.box.open(row.body, f"{SECTIONS.get(row.kind, row.kind)}.{row.name}"))
        return opened
