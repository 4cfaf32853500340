"""Project configuration: pydantic models and the YAML loader (config as code)."""

from smartingest.config.loader import load_project, parse_project
from smartingest.config.models import (
    ArrayMapping,
    ColumnMapping,
    DestinationConfig,
    FieldMapping,
    ModelConfig,
    ObjectMapping,
    ProjectConfig,
    Schedule,
    SourceConfig,
    StaticMapping,
    SyncConfig,
    TemplateMapping,
    VariableMapping,
)

__all__ = [
    "ArrayMapping",
    "ColumnMapping",
    "DestinationConfig",
    "FieldMapping",
    "ModelConfig",
    "ObjectMapping",
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
