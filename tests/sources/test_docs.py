"""docs/sources.md documents every connector setting, with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from smartingest.sources.registry import CONNECTORS

DOC = Path(__file__).resolve().parents[2] / "docs" / "sources.md"


def _settings(type_name: str) -> type[BaseModel]:
    module_name, class_name, _ = CONNECTORS[type_name]
    module = __import__(module_name, fromlist=[class_name])
    return getattr(module, class_name).Settings


@pytest.mark.parametrize("type_name", sorted(CONNECTORS))
def test_every_setting_is_documented_with_its_default(type_name: str) -> None:
    text = DOC.read_text()
    section = text.split(f"(`type: {type_name}`)", 1)[1].split("\n## ", 1)[0]
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `(\w+)` \|[^|]*\| ([^|]*) \|", section, re.M)}
    settings = _settings(type_name)
    assert set(rows) == set(settings.model_fields), f"docs/sources.md {type_name} table vs {settings.__name__}"
    for name, info in settings.model_fields.items():
        assert info.description, f"{settings.__name__}.{name} has no description"
        cell = rows[name].strip()
        if info.is_required():
            assert cell == "required", name
        elif info.default is not None:
            assert str(info.default) in cell, f"{name}: default {info.default!r} not in {cell!r}"
