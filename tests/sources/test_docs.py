"""docs/sources.md documents every connector setting, with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from smartingest.sources.registry import CONNECTORS
from smartingest.sources.tunnel import SshTunnelSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "sources.md"


def _settings(type_name: str) -> type[BaseModel]:
    module_name, class_name, _ = CONNECTORS[type_name]
    module = __import__(module_name, fromlist=[class_name])
    return getattr(module, class_name).Settings


def _rows(section: str) -> dict[str, str]:
    return {m[1]: m[2] for m in re.finditer(r"^\| `(\w+)` \|[^|]*\| ([^|]*) \|", section, re.M)}


def _section(heading: str) -> str:
    return DOC.read_text().split(heading, 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("type_name", sorted(CONNECTORS))
def test_every_setting_is_documented_with_its_default(type_name: str) -> None:
    section = _section(f"(`type: {type_name}`)")
    settings = _settings(type_name)
    tunnel_keys = set(SshTunnelSettings.model_fields) if issubclass(settings, SshTunnelSettings) else set()
    if tunnel_keys:
        assert "[SSH tunnel](#through-an-ssh-tunnel)" in section, f"{type_name} does not point to the tunnel keys"
    _check_table(_rows(section), settings, set(settings.model_fields) - tunnel_keys, type_name)


def test_the_ssh_tunnel_keys_are_documented_once() -> None:
    rows = _rows(_section("## Through an SSH tunnel"))
    _check_table(rows, SshTunnelSettings, set(SshTunnelSettings.model_fields), "SSH tunnel")


def _check_table(rows: dict[str, str], settings: type[BaseModel], names: set[str], what: str) -> None:
    assert set(rows) == names, f"docs/sources.md {what} table vs {settings.__name__}"
    for name, info in settings.model_fields.items():
        if name not in names:
            continue
        assert info.description, f"{settings.__name__}.{name} has no description"
        cell = rows[name].strip()
        if info.is_required():
            assert cell == "required", name
        elif (default := info.get_default(call_default_factory=True)) not in (None, []):
            assert str(default) in cell, f"{name}: default {default!r} not in {cell!r}"
