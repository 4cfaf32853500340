"""The connector registry: each optional driver is an installable extra, and a source whose extra is missing
fails with the exact command that installs it."""

from __future__ import annotations

import importlib.metadata
import re
import sys

import pytest

from smartingest.config.models import SourceConfig
from smartingest.errors import ConfigError, MissingDriverError
from smartingest.sources.registry import CONNECTORS, open_source, settings_model

WITH_EXTRA = sorted(name for name, (_, _, extra) in CONNECTORS.items() if extra)


def extra_modules(extra: str) -> set[str]:
    """The top-level modules the packages of one of smartingest's extras bring."""
    wanted = {
        re.split(r"[\[=<>; ]", req, maxsplit=1)[0].lower().replace("_", "-")
        for req in importlib.metadata.requires("smartingest") or []
        if f"extra == '{extra}'" in req
    }
    return {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if any(d.lower().replace("_", "-") in wanted for d in dists)
    }


@pytest.mark.parametrize("source_type", WITH_EXTRA)
def test_a_missing_driver_names_the_install_command(source_type: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, extra = CONNECTORS[source_type]
    assert extra in (importlib.metadata.metadata("smartingest").get_all("Provides-Extra") or [])
    blocked = extra_modules(str(extra))
    assert blocked, f"extra {extra!r} brings no package"
    for module in blocked:
        monkeypatch.setitem(sys.modules, module, None)  # what Python does with a package not installed
    for loaded in [m for m in sys.modules if m.startswith("smartingest.sources.")]:
        monkeypatch.delitem(sys.modules, loaded)  # imported afresh, as in a process that never read a row
    command = f"pip install 'smartingest[{extra}]'"
    with pytest.raises(MissingDriverError) as err:
        open_source("src", SourceConfig(type=source_type))
    assert command in str(err.value) and repr(source_type) in str(err.value)
    with pytest.raises(MissingDriverError, match=re.escape(command)):
        settings_model(source_type)


def test_a_type_that_is_gone_says_why_and_keeps_the_list_of_valid_types() -> None:
    with pytest.raises(ConfigError) as err:
        open_source("old", SourceConfig(type="rockset"))
    message = str(err.value)
    assert message.startswith(
        "sources.old.type: unknown source type 'rockset' (rockset: Rockset was shut down in 2024;"
    )
    assert f"valid: {', '.join(sorted(CONNECTORS))})" in message
    with pytest.raises(ConfigError, match=r"rockset: Rockset was shut down in 2024; .*valid: "):
        settings_model("rockset")
    with pytest.raises(ConfigError) as plain:
        open_source("x", SourceConfig(type="nosuchdb"))
    assert "shut down" not in str(plain.value) and "valid: " in str(plain.value)
