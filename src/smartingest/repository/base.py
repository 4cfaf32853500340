"""The repository seam: the service reads a project's definitions (sources, models, destinations, syncs)
and writes them through one protocol, whether they live in a project file or in the metadata database.

Whatever the repository, definitions are validated as a project file is (``config.loader``): a write that
would leave a dangling reference or a bad key is refused with the key at fault, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, SecretStr

from smartingest.config.models import ProjectConfig

Kind = Literal["source", "model", "destination", "sync"]
# A rule a change must keep beyond validation (the sync quota): called with the project before and after
# the change, it raises to refuse it.
ProjectCheck = Callable[[ProjectConfig, ProjectConfig], None]
KINDS: tuple[Kind, ...] = ("source", "model", "destination", "sync")  # what refers to an object comes after it
# A kind -> its section in a project file (and in ProjectConfig).
SECTIONS: dict[str, str] = {"source": "sources", "model": "models", "destination": "destinations", "sync": "syncs"}


def plain_definition(obj: BaseModel) -> dict[str, Any]:
    """A validated object as the keys a project file holds for it (its secrets revealed), without its id."""
    data: dict[str, Any] = obj.model_dump(mode="python", by_alias=True, exclude_unset=True, exclude={"id"})
    return _reveal(data)


# Top-level keys not kept with the definitions: where the metadata database is cannot live inside it.
NOT_STORED_SETTINGS = ("database_url",)


def settings_of(config: ProjectConfig) -> dict[str, Any]:
    """The project's top-level settings (alerts, quota, state store...) as a project file holds them, its
    secrets still ``SecretStr``; without the definitions and what is not stored with them."""
    exclude = {*SECTIONS.values(), *NOT_STORED_SETTINGS}
    data: dict[str, Any] = config.model_dump(mode="python", by_alias=True, exclude_unset=True, exclude=exclude)
    return data


def settings_definition(config: ProjectConfig) -> dict[str, Any]:
    """``settings_of``, its secrets revealed (to be sealed)."""
    revealed: dict[str, Any] = _reveal(settings_of(config))
    return revealed


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value


class Repository(Protocol):
    """Where one project's definitions are read and written."""

    @property
    def location(self) -> str:
        """Where the definitions live, for messages ("project file ./smartingest.yaml")."""
        ...

    @property
    def read_only(self) -> str | None:
        """Why definitions cannot be written here (what to do instead), or None when they can."""
        ...

    def load(self) -> ProjectConfig:
        """Every definition, validated. Raises ConfigError naming the key at fault."""
        ...

    def save(
        self, kind: Kind, name: str, definition: Mapping[str, Any], check: ProjectCheck | None = None
    ) -> ProjectConfig:
        """Create or update one object from its keys as a project file holds them; an ``id`` naming an
        existing object of another name renames it (references to it follow). Returns the project as
        it now is. Raises ConfigError naming the key at fault, or what ``check(before, after)`` raises
        about the validated change (nothing is written then)."""
        ...

    def delete(self, kind: Kind, name: str) -> ProjectConfig:
        """Delete one object; refused (ConfigError) while another refers to it. Returns the project."""
        ...
