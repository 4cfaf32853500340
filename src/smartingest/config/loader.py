"""Reading a project file: YAML, ``${VAR}`` secrets from the environment, validation with clear errors."""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from smartingest.config.models import ProjectConfig
from smartingest.config.rules import KeyPathError
from smartingest.config.syncs import SYNC_MODELS
from smartingest.errors import ConfigError, DefinitionInUseError, UnknownNameError

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MERGE_TAG = "tag:yaml.org,2002:merge"
# pydantic's names for the members of the mapping union: they follow a list index in a location, and are
# not keys of the file.
_UNION_TAGS = ("column", "static")


def load_project(path: str | Path, env: Mapping[str, str] | None = None) -> ProjectConfig:
    """Read and validate a project file.

    Raises ConfigError naming the file and the key at fault: missing file, YAML syntax, a key repeated in
    one mapping, an unset environment variable, an unknown key, a wrong type or a dangling reference.
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
        raw = yaml.load(text, Loader=ProjectLoader)  # a SafeLoader: builds plain data only
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from exc
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


SECTIONS = ("sources", "models", "destinations", "syncs")
# section -> (the section whose objects refer to its objects, the key they do it with)
REFERRED_BY = {"sources": ("models", "source"), "models": ("syncs", "model"), "destinations": ("syncs", "destination")}


def with_sync(config: ProjectConfig, name: str, definition: Mapping[str, Any]) -> ProjectConfig:
    """The project with the sync ``name`` added, or replaced, as ``definition`` says (a sync's keys as a
    project file holds them: what a sync editor has before it saves). Checked as a project file is;
    raises ConfigError naming the key at fault (``syncs.NAME.mappings[1].to: ...``)."""
    return with_definition(config, "syncs", name, definition)


def with_definition(
    config: ProjectConfig, section: str, name: str, definition: Mapping[str, Any], renamed_from: str | None = None
) -> ProjectConfig:
    """The project with one object of ``section`` added or replaced as ``definition`` says (its keys as a
    project file holds them), or renamed from ``renamed_from``, the objects that referred to it by that
    name following. Checked as a project file is; raises ConfigError naming the key at fault."""
    sections = _sections(config)
    objects = sections[section]
    if renamed_from is not None and renamed_from != name:
        objects.pop(renamed_from, None)
        referring, key = REFERRED_BY.get(section, ("", ""))
        for other, obj in sections.get(referring, {}).items():
            if getattr(obj, key) == renamed_from:
                sections[referring][other] = obj.model_copy(update={key: name})
    objects[name] = dict(definition)
    return _validated(config, sections)


def without_definition(config: ProjectConfig, section: str, name: str) -> ProjectConfig:
    """The project without one object of ``section``; ConfigError while others refer to it."""
    sections = _sections(config)
    if name not in sections[section]:
        raise UnknownNameError(f"no {section[:-1]} named {name!r}")
    referring, key = REFERRED_BY.get(section, ("", ""))
    users = sorted(other for other, obj in sections.get(referring, {}).items() if getattr(obj, key) == name)
    if users:
        raise DefinitionInUseError(
            f"{section}.{name} is used by {referring} {', '.join(users)}: change or delete them first"
        )
    del sections[section][name]
    return _validated(config, sections)


def _sections(config: ProjectConfig) -> dict[str, dict[str, Any]]:
    # Validated objects as they are (pydantic keeps instances): secrets stay secret, paths as anchored.
    return {section: dict(getattr(config, section)) for section in SECTIONS}


def _validated(config: ProjectConfig, sections: dict[str, dict[str, Any]]) -> ProjectConfig:
    others = config.model_dump(exclude=set(SECTIONS), exclude_unset=True)
    try:
        return ProjectConfig.model_validate({**others, **sections})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc


class ProjectLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key repeated in one mapping is an error.

    PyYAML keeps the last of two equal keys silently, so a second sync or source pasted under an existing
    name would replace the first without a word. Keys merged in with ``<<: *anchor`` may still be
    overridden: that is what merging is for.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._paths: dict[int, str] = {}

    def construct_document(self, node: yaml.Node) -> Any:
        self._paths = _node_paths(node)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping's dict; raises ConfigError naming a repeated key, its key path and both lines."""
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            first = seen.setdefault(key, key_node)
            if first is not key_node:
                path = _join(self._paths.get(id(node), ""), str(key))
                raise ConfigError(
                    f"duplicate key {key!r} at {path} ({_where_both(first, key_node)}): the second would replace "
                    "the first; rename or remove one"
                )
        return super().construct_mapping(node, deep=deep)


def _node_paths(root: yaml.Node) -> dict[int, str]:
    """The key path (``syncs.s.mappings[2]``) of every collection node, by node id (an alias keeps its first)."""
    paths: dict[int, str] = {}
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in paths:
            continue
        paths[id(node)] = path
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                stack.append((value_node, _join(path, key)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
    return paths


def _where_both(first: yaml.Node, second: yaml.Node) -> str:
    a, b = first.start_mark, second.start_mark
    if a.line == b.line:  # both in one flow mapping, {to: a, to: b}
        return f"line {a.line + 1}, columns {a.column + 1} and {b.column + 1}"
    return f"lines {a.line + 1} and {b.line + 1}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


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
        path = error["loc"]
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, KeyPathError):  # a model's validator named the key below it
            path = (*path, *cause.path)
        loc = _format_loc(path)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling in docs/configuration.md)"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # A sync whose type names no sync type: the key at fault is its type.
            loc = f"{loc}.type"
            found = (error.get("ctx") or {}).get("tag")
            message = (f"unknown sync type {found!r}" if found else "required key is missing") + (
                f" (one of: {', '.join(SYNC_MODELS)})"
            )
        lines.append(f"{loc}: {message}" if loc else message)
    return "; ".join(lines)


def _format_loc(loc: tuple[int | str, ...]) -> str:
    if len(loc) > 2 and loc[0] == "syncs" and loc[2] in SYNC_MODELS:
        loc = (*loc[:2], *loc[3:])  # pydantic's name of the sync type's union member, not a key
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif (isinstance(previous, int) and part in _UNION_TAGS) or "[" in str(part):
            pass  # pydantic's names of union members and validators, not keys
        else:
            out += f".{part}" if out else str(part)
        previous = part
    return out
