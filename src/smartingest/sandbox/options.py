"""The sandbox's command-line options: one parser for `python -m smartingest.sandbox` and `smartingest sandbox`.

Both commands parse their arguments with `parse_settings`, so they take the same flags, with the
same defaults and checks. Each flag is named after a field of `SandboxSettings` or
`FaultSettings` (`rate_limit_scale` is `--rate-limit-scale`), takes its help text and default from
that field, and is validated by the model: a bad value is a usage error (exit status 2), not a
traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from .settings import FaultSettings, SandboxSettings

# (settings field, value type) of the flags that set one field each. A field typed by a Literal
# takes one of its values.
_SETTINGS_FLAGS: tuple[tuple[str, type], ...] = (
    ("host", str),
    ("port", int),
    ("api_key", str),
    ("project_type", str),
    ("data_dir", Path),
    ("rate_limit_scale", float),
    ("gdpr_daily_cap", int),
    ("record_requests", int),
    ("log_level", str),
)
_FAULT_FLAGS: tuple[tuple[str, type], ...] = (
    ("error_rate", float),
    ("latency_ms", float),
    ("drop_rate", float),
    ("seed", int),
)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _choices(model: type[BaseModel], name: str) -> tuple[str, ...]:
    """The values a Literal-typed field takes; empty for other fields."""
    annotation = model.model_fields[name].annotation
    return get_args(annotation) if get_origin(annotation) is Literal else ()


def _add_field_flag(parser: argparse.ArgumentParser, model: type[BaseModel], name: str, kind: type) -> None:
    info = model.model_fields[name]
    default = info.get_default(call_default_factory=True)
    text = info.description or ""
    if default is not None and name != "api_key":
        text += f" (default: {default})"
    choices = _choices(model, name)
    metavar = "{" + ",".join(choices) + "}" if choices else None
    # argparse keeps None for flags not given, so the model's own default applies to them.
    parser.add_argument(_flag(name), dest=name, type=kind, default=None, metavar=metavar, help=text)


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The argument parser of the sandbox command called `prog`."""
    parser = argparse.ArgumentParser(prog=prog, description="Run an Iterable-compatible sandbox server.")
    for name, kind in _SETTINGS_FLAGS:
        _add_field_flag(parser, SandboxSettings, name, kind)
    parser.add_argument("--no-rate-limits", action="store_true", help="Do not enforce Iterable's rate limits.")
    for name, kind in _FAULT_FLAGS:
        _add_field_flag(parser, FaultSettings, name, kind)
    return parser


def parse_settings(argv: Sequence[str] | None = None, prog: str = "python -m smartingest.sandbox") -> SandboxSettings:
    """`SandboxSettings` from command-line arguments (`sys.argv[1:]` when None).

    Exits with status 2 and a usage message when an argument or a resulting setting is invalid.
    """
    parser = build_parser(prog)
    args = vars(parser.parse_args(argv))
    for model, flags in ((SandboxSettings, _SETTINGS_FLAGS), (FaultSettings, _FAULT_FLAGS)):
        for name, _ in flags:
            choices = _choices(model, name)
            if choices and args[name] is not None and args[name] not in choices:
                allowed = f"{', '.join(choices[:-1])} or {choices[-1]}"
                parser.error(f"{_flag(name)} must be {allowed}, not {args[name]!r}")
    given = {name: args[name] for name, _ in _SETTINGS_FLAGS if args[name] is not None}
    faults = {name: args[name] for name, _ in _FAULT_FLAGS if args[name] is not None}
    try:
        return SandboxSettings(**given, rate_limits=not args["no_rate_limits"], faults=FaultSettings(**faults))
    except ValidationError as exc:
        parser.error(_describe(exc))


def _describe(exc: ValidationError) -> str:
    """One line per invalid setting, named by its flag."""
    return "; ".join(
        f"{_flag(str(error['loc'][-1]))}: {error['msg']}" if error["loc"] else error["msg"]
        for error in exc.errors(include_url=False)
    )
