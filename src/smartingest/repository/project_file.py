"""Definitions in a project file: config as code. The file is the source of truth, edited by people and
kept in version control, so this repository reads it and refuses writes: rewriting it would lose its
comments, its ``${VAR}`` references and its layout."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from smartingest.config.loader import load_project
from smartingest.config.models import ProjectConfig
from smartingest.errors import ConfigError
from smartingest.repository.base import Kind, ProjectCheck

FILE_SOURCE_KEYS = ("path", "private_key_path")


class ProjectFileRepository:
    """A project's definitions in its project file (a ``Repository``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def location(self) -> str:
        return f"the project file {self.path}"

    @property
    def read_only(self) -> str | None:
        return (
            f"this project's definitions live in {self.location} (config as code): edit the file, or import it "
            f"into the metadata database with `smartingest apply {self.path}` and work without --project"
        )

    def load(self) -> ProjectConfig:
        config = load_project(self.path)
        _anchor_file_sources(config, self.path.resolve().parent)
        return config

    def save(
        self, kind: Kind, name: str, definition: Mapping[str, Any], check: ProjectCheck | None = None
    ) -> ProjectConfig:
        raise self._read_only()

    def delete(self, kind: Kind, name: str) -> ProjectConfig:
        raise self._read_only()

    def _read_only(self) -> ConfigError:
        return ConfigError(str(self.read_only))


def _anchor_file_sources(config: ProjectConfig, project_dir: Path) -> None:
    # A relative file path in a project file means relative to that file, wherever the CLI runs.
    for source in config.sources.values():
        extra = source.model_extra or {}
        for key in FILE_SOURCE_KEYS:
            value = extra.get(key)
            if isinstance(value, str) and not Path(value).expanduser().is_absolute():
                extra[key] = str(project_dir / value)
