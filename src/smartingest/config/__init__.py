"""Project configuration: pydantic models and the YAML loader (config as code)."""

from smartingest.config.loader import load_project, parse_project
from smartingest.config.models import (
    ColumnMapping,
    DestinationConfig,
    FieldMapping,
    ModelConfig,
    ProjectConfig,
    Schedule,
    SourceConfig,
    StaticMapping,
    SyncConfig,
    TemplateMapping,
    VariableMapping,
)

__all__ = [
    "ColumnMapping",
    "DestinationConfig",
    "FieldMapping",
    "ModelConfig",
    "ProjectConfig",
    "Schedule",
    "SourceConfig",
    "StaticMapping",
    "SyncConfig",
    "TemplateMapping",
    "VariableMapping",
    "load_project",
    "parse_project",
]
