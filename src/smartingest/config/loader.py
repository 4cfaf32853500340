"""Reading a project file: YAML, ``${VAR}`` secrets from the environment, validation with clear errors."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from smartingest.config.models import ProjectConfig
from smartingest.errors import ConfigError

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_project(path: str | Path, env: Mapping[str, str] | None = None) -> ProjectConfig:
    """Read and validate a project file.

    Raises ConfigError naming the file and the key at fault: missing file, YAML syntax, an unset
    environment variable, an unknown key, a wrong type or a dangling reference.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"project file {path} not found (pass --project FILE)") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read project file {path}: {exc.strerror}") from exc
    return parse_project(text, origin=str(path), env=env)


def parse_project(text: str, origin: str = "<project>", env: Mapping[str, str] | None = None) -> ProjectConfig:
    """Validate a project file given as YAML text (see load_project)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{origin}: invalid YAML{where}: {problem}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping with sources, models, destinations, syncs")
    try:
        resolved = interpolate(raw, os.environ if env is None else env, path="")
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from exc
    try:
        return ProjectConfig.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: " + format_validation_error(exc)) from exc


def interpolate(value: Any, env: Mapping[str, str], path: str) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, default = match[1], match[2]
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: environment variable {name} is not set (export it, or write ${{{name}:-default}})")

    return _VAR.sub(substitute, value)


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the key path (syncs.x.mappings[2].to) and what is wrong."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = _format_loc(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling in docs/configuration.md)"
        elif error["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{loc}: {message}" if loc else message)
    return "; ".join(lines)


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("column", "static") or "[" in str(part):
            continue  # pydantic's names of union members and validators, not keys
        else:
            out += f".{part}" if out else str(part)
    return out
