"""Connector registry: type name -> connector, imported lazily so a missing driver fails helpfully."""

from __future__ import annotations

import importlib

from pydantic import ValidationError

from smartingest.config.loader import format_validation_error
from smartingest.config.models import SourceConfig
from smartingest.errors import ConfigError, MissingDriverError
from smartingest.sources.base import Source

# type name -> (module, class, pip extra that brings its driver)
CONNECTORS: dict[str, tuple[str, str, str | None]] = {
    "postgres": ("smartingest.sources.postgres", "PostgresSource", None),
    "sqlite": ("smartingest.sources.sqlite", "SqliteSource", None),
    "duckdb": ("smartingest.sources.duckdb", "DuckDBSource", None),
}


def open_source(name: str, config: SourceConfig) -> Source:
    """Build the connector for a configured source (this does not connect).

    Raises ConfigError for an unknown type or bad connector settings (naming ``sources.NAME.key``),
    MissingDriverError when the connector's optional dependency is not installed.
    """
    if config.type not in CONNECTORS:
        raise ConfigError(
            f"sources.{name}.type: unknown source type {config.type!r} (valid: {', '.join(sorted(CONNECTORS))})"
        )
    module_name, class_name, extra = CONNECTORS[config.type]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'smartingest[{extra}]'" if extra else "reinstall smartingest"
        raise MissingDriverError(f"source type {config.type!r} needs {exc.name}: {hint}") from exc
    connector = getattr(module, class_name)
    try:
        settings = connector.Settings.model_validate(config.connector_settings())
    except ValidationError as exc:
        raise ConfigError(f"sources.{name}: " + format_validation_error(exc)) from exc
    return connector(settings)


__all__ = ["CONNECTORS", "open_source"]
