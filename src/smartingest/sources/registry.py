"""Connector registry: type name -> connector, imported lazily so a missing driver fails helpfully."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ValidationError

from smartingest.config.loader import format_validation_error
from smartingest.config.models import SourceConfig
from smartingest.errors import ConfigError, MissingDriverError
from smartingest.sources.base import Source

# type name -> (module, class, pip extra that brings its driver)
CONNECTORS: dict[str, tuple[str, str, str | None]] = {
    "postgres": ("smartingest.sources.postgres", "PostgresSource", None),
    "sqlite": ("smartingest.sources.sqlite", "SqliteSource", None),
    "duckdb": ("smartingest.sources.duckdb", "DuckDBSource", None),
    "mysql": ("smartingest.sources.mysql", "MySQLSource", "mysql"),
    "planetscale": ("smartingest.sources.mysql", "PlanetScaleSource", "mysql"),
    "singlestore": ("smartingest.sources.mysql", "SingleStoreSource", "mysql"),
    "clickhouse": ("smartingest.sources.clickhouse", "ClickHouseSource", "clickhouse"),
    "redshift": ("smartingest.sources.redshift", "RedshiftSource", "redshift"),
    "snowflake": ("smartingest.sources.snowflake", "SnowflakeSource", "snowflake"),
    "trino": ("smartingest.sources.trino", "TrinoSource", "trino"),
    "firebolt": ("smartingest.sources.firebolt", "FireboltSource", "firebolt"),
    "sqlserver": ("smartingest.sources.sqlserver", "SqlServerSource", "sqlserver"),
    "synapse": ("smartingest.sources.sqlserver", "SynapseSource", "sqlserver"),
    "oracle": ("smartingest.sources.oracle", "OracleSource", "oracle"),
    "teradata": ("smartingest.sources.teradata", "TeradataSource", "teradata"),
    "databricks": ("smartingest.sources.databricks", "DatabricksSource", None),
    "athena": ("smartingest.sources.athena", "AthenaSource", "athena"),
    "bigquery": ("smartingest.sources.bigquery", "BigQuerySource", "bigquery"),
}

# Types that once were sources and cannot be any more: why, said with the unknown-type error.
GONE: dict[str, str] = {
    "rockset": "Rockset was shut down in 2024; its service ended in September 2024 after its acquisition by "
    "OpenAI, so there is no connector (read the data from where it now lives)",
}


def unknown_type(source_type: str) -> str:
    """The unknown-type message: why, for a type that is gone, and the valid types."""
    why = f"{source_type}: {GONE[source_type]}; " if source_type in GONE else ""
    return f"unknown source type {source_type!r} ({why}valid: {', '.join(sorted(CONNECTORS))})"


def open_source(name: str, config: SourceConfig) -> Source:
    """Build the connector for a configured source (this does not connect).

    Raises ConfigError for an unknown type or bad connector settings (naming ``sources.NAME.key``),
    MissingDriverError when the connector's optional dependency is not installed.
    """
    if config.type not in CONNECTORS:
        raise ConfigError(f"sources.{name}.type: {unknown_type(config.type)}")
    connector = _connector_class(config.type)
    try:
        settings = connector.Settings.model_validate(config.connector_settings())
    except ValidationError as exc:
        raise ConfigError(f"sources.{name}: " + format_validation_error(exc)) from exc
    return connector(settings)


def settings_model(source_type: str) -> type[BaseModel]:
    """The pydantic model of a connector's settings (what a form for that source type asks). Raises
    ConfigError for an unknown type, MissingDriverError when its driver is not installed."""
    if source_type not in CONNECTORS:
        raise ConfigError(unknown_type(source_type))
    settings: type[BaseModel] = _connector_class(source_type).Settings
    return settings


def _connector_class(source_type: str) -> Any:
    """The connector class of a known type, imported now; MissingDriverError, with the command that installs
    its driver, when the driver is not installed."""
    module_name, class_name, extra = CONNECTORS[source_type]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'smartingest[{extra}]'" if extra else "reinstall smartingest"
        raise MissingDriverError(f"source type {source_type!r} needs the Python package {exc.name}: {hint}") from exc
    return getattr(module, class_name)


def secret_keys(config: SourceConfig) -> frozenset[str]:
    """The connector settings of a source that are secrets (a password...): typed ``SecretStr`` by its
    connector. Empty for a type this version does not know (open_source says why)."""
    if config.type not in CONNECTORS:
        return frozenset()
    module_name, class_name, _extra = CONNECTORS[config.type]
    try:
        connector = getattr(importlib.import_module(module_name), class_name)
    except ImportError:
        return frozenset()
    return frozenset(
        name for name, field in connector.Settings.model_fields.items() if "SecretStr" in str(field.annotation)
    )


__all__ = ["CONNECTORS", "open_source", "secret_keys", "settings_model"]
