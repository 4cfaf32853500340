"""Looking at sources and models without running a sync: settings checks, connection tests, previews.

The service reaches sources only through the engine, which keeps the house's imports running downwards.
"""

from __future__ import annotations

import pyarrow as pa

from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.sources.base import PREVIEW_ROWS
from smartingest.sources.registry import open_source

__all__ = ["PREVIEW_ROWS", "check_connection", "check_settings", "model_schema", "preview_model"]


def check_settings(name: str, source: SourceConfig) -> None:
    """Validate a source's connector settings without connecting; raises ConfigError naming the key."""
    open_source(name, source)


def check_connection(name: str, source: SourceConfig) -> None:
    """Connect and run a trivial query; raises a SourceError saying what is wrong."""
    open_source(name, source).test_connection()


def preview_model(name: str, source: SourceConfig, model: ModelConfig, limit: int = PREVIEW_ROWS) -> pa.Table:
    """The first ``limit`` rows of a model on the named source."""
    return open_source(name, source).preview(model, limit)


def model_schema(name: str, source: SourceConfig, model: ModelConfig) -> pa.Schema:
    """Column names and types of a model on the named source."""
    return open_source(name, source).schema(model)
