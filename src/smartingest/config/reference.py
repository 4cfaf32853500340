"""The configuration reference, generated from the pydantic models (docs/configuration.md embeds it).

python -m smartingest.config.reference      # prints the generated tables
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from smartingest.config.models import (
    ArrayMapping,
    CatalogSync,
    ColumnMapping,
    DestinationConfig,
    EmailChangeSync,
    EventsSync,
    IdentifiedSync,
    ModelConfig,
    ObjectMapping,
    ProjectConfig,
    S3StateStoreConfig,
    Schedule,
    SourceConfig,
    StaticListSync,
    StaticMapping,
    SyncBase,
    TemplateMapping,
    UserDeletionSync,
    UsersSync,
    VariableMapping,
)
from smartingest.config.syncs import ListRef

BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m smartingest.config.reference) -->"
END = "<!-- END GENERATED REFERENCE -->"

# (title, model, the model whose keys are listed already: only the keys a type adds are listed again)
SECTIONS: list[tuple[str, type[BaseModel], type[BaseModel] | None]] = [
    ("Top level", ProjectConfig, None),
    ("`state_store` with `type: s3`", S3StateStoreConfig, None),
    ("`sources.NAME` (common keys; connector keys are in docs/sources.md)", SourceConfig, None),
    ("`models.NAME`", ModelConfig, None),
    ("`destinations.NAME`", DestinationConfig, None),
    ("`syncs.NAME`: keys of every sync type", SyncBase, None),
    ("`syncs.NAME`: keys of the types that match users (all but catalog)", IdentifiedSync, SyncBase),
    ("`syncs.NAME` with `type: users`", UsersSync, IdentifiedSync),
    ("`syncs.NAME` with `type: events`", EventsSync, IdentifiedSync),
    ("`syncs.NAME` with `type: catalog`", CatalogSync, SyncBase),
    ("`syncs.NAME` with `type: static_list`", StaticListSync, IdentifiedSync),
    ("`syncs.NAME.list` (static_list)", ListRef, None),
    ("`syncs.NAME` with `type: email_change`", EmailChangeSync, IdentifiedSync),
    ("`syncs.NAME` with `type: user_deletion`", UserDeletionSync, IdentifiedSync),
    ("`syncs.NAME.mappings[]`: column mapping", ColumnMapping, None),
    ("`syncs.NAME.mappings[]`: static mapping", StaticMapping, None),
    ("`syncs.NAME.mappings[]`: variable mapping", VariableMapping, None),
    ("`syncs.NAME.mappings[]`: template mapping", TemplateMapping, None),
    ("`syncs.NAME.mappings[]`: object mapping", ObjectMapping, None),
    ("`syncs.NAME.mappings[]`: array mapping", ArrayMapping, None),
    ("`syncs.NAME.schedule`", Schedule, None),
]


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:  # a constrained type (Name): its base type
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if origin is dict:
        return f"mapping of name to {_type_name(typing.get_args(annotation)[1])}"
    if origin is list:
        (item,) = typing.get_args(annotation)
        return "list of str" if item is str else "list of mappings"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    if getattr(annotation, "__name__", "") == "SecretStr":
        return "secret string (use ${ENV_VAR})"
    text = str(annotation)
    for noise in (
        "typing.",
        "pydantic.types.",
        "smartingest.config.models.",
        "smartingest.config.syncs.",
        "<class '",
        "'>",
    ):
        text = text.replace(noise, "")
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in typing.get_args(annotation)).replace("'", "")
    return text.replace("|", "\\|")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return "see meaning"
    if field.default is PydanticUndefined or field.default is None:
        return "none"
    return f"`{field.default}`"


def render() -> str:
    """Markdown tables of every key: name, type, default, meaning."""
    parts = [BEGIN]
    for title, model, listed in SECTIONS:
        parts.append(f"\n### {title}\n\n| key | type | default | meaning |\n|---|---|---|---|")
        for name, field in model.model_fields.items():
            if listed is not None and name in listed.model_fields:
                continue
            key = field.alias or name
            parts.append(
                f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {field.description or ''} |"
            )
    parts.append(END)
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(render(), end="")
