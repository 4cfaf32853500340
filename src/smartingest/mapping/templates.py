"""Liquid templates of template mappings, checked when the sync compiles and rendered a batch at a time.

A template reads the row's columns by name (``{{ first_name }}``, ``{{ address.city }}`` into a struct) and
the run's variables (``{{ run_id }}``; a column of the same name wins). Undefined names are errors: every
name a template reads must be a column or a variable when the sync compiles, so a typo stops the run
before any row is sent instead of filling a million profiles with empty strings; an unknown filter too.

Rendering takes the cheapest way a template allows. A template of literal text and plain outputs of text
or integer columns (``Hi {{ first_name }}!``) is one Arrow concatenation over the batch, as Liquid would
render it (null as empty text). Any other template is rendered by python-liquid, once per distinct
combination of the values it reads in the batch (plans and segments repeat values a lot), and a row whose
rendering fails is reported with Liquid's message instead of stopping the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from liquid import Environment, StrictUndefined
from liquid.builtin.content import ContentNode
from liquid.builtin.output import OutputNode
from liquid.exceptions import LiquidError

from smartingest.errors import MappingError

ENVIRONMENT = Environment(undefined=StrictUndefined)
# Columns whose text Arrow's cast writes exactly as Liquid renders their Python values.
_AS_TEXT = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer)


@dataclass(frozen=True)
class CompiledTemplate:
    """A checked template: the columns it reads, and how it renders a batch."""

    source: str
    columns: tuple[str, ...]  # the model columns it reads, in order of first use
    variables: tuple[str, ...]  # the run variables it reads
    concat: tuple[str | tuple[str], ...] | None  # the fast path: literal text, or (column,) to insert
    parsed: Any = field(default=None, compare=False, repr=False)  # python-liquid's template

    def render(
        self, batch: pa.RecordBatch, variables: Mapping[str, Any], fail: Callable[[pa.Array, str], None]
    ) -> pa.Array:
        """The rendered text of every row of ``batch``; ``fail(mask, message)`` reports rows whose
        rendering failed (their value is null)."""
        if self.concat is not None:
            parts = [
                piece if isinstance(piece, str) else pc.fill_null(pc.cast(batch.column(piece[0]), pa.string()), "")
                for piece in self.concat
            ]
            if not any(isinstance(part, pa.Array) for part in parts):  # literal text only
                return pa.repeat(pa.scalar("".join(p for p in parts if isinstance(p, str))), batch.num_rows)
            return pc.binary_join_element_wise(*parts, "")
        return self._render_rows(batch, variables, fail)

    def _render_rows(
        self, batch: pa.RecordBatch, variables: Mapping[str, Any], fail: Callable[[pa.Array, str], None]
    ) -> pa.Array:
        template = self.parsed
        rows = batch.select(list(self.columns)).to_pylist() if self.columns else [{}] * batch.num_rows
        rendered: dict[Any, str | LiquidError] = {}
        out: list[str | None] = []
        failures: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            key = _cache_key(row)
            result = rendered.get(key) if key is not None else None
            if result is None:
                try:
                    result = template.render(**{**variables, **row})  # a column wins over a variable
                except LiquidError as exc:
                    result = exc
                if key is not None:
                    rendered[key] = result
            if isinstance(result, LiquidError):
                failures.setdefault(_message(result), []).append(i)
                out.append(None)
            else:
                out.append(result)
        for message, indices in failures.items():
            flags = [False] * batch.num_rows
            for i in indices:
                flags[i] = True
            fail(pa.array(flags), message)
        return pa.array(out, pa.string())


def compile_template(source: str, schema: pa.Schema, variables: tuple[str, ...], at: str) -> CompiledTemplate:
    """Parse and check a template against the model's columns and the run's variables; MappingError names
    the mapping, the name it does not know and what it could read."""
    try:
        template = ENVIRONMENT.from_string(source)
        analysis = template.analyze()
    except LiquidError as exc:
        raise MappingError(f"{at}: the template does not parse: {_message(exc)}") from exc
    unknown_filters = sorted(name for name in analysis.filters if name not in ENVIRONMENT.filters)
    if unknown_filters:
        raise MappingError(f"{at}: the template uses the unknown filter {unknown_filters[0]!r}")
    names = schema.names
    columns: list[str] = []
    used: list[str] = []
    for name in analysis.globals:
        if name in names:
            columns.append(name)
        elif name in variables:
            used.append(name)
        else:
            raise MappingError(
                f"{at}: the template reads {name!r}, which is neither a column of the model "
                f"({', '.join(names)}) nor a variable ({', '.join(variables)})"
            )
    return CompiledTemplate(source, tuple(columns), tuple(used), _concatenation(template, schema), template)


def _concatenation(template: Any, schema: pa.Schema) -> tuple[str | tuple[str], ...] | None:
    """The template as literal text and columns to insert, when that is all it is (see the module
    docstring), else None."""
    pieces: list[str | tuple[str]] = []
    for node in template.nodes:
        if isinstance(node, ContentNode):
            pieces.append(node.text)
            continue
        if not isinstance(node, OutputNode):
            return None
        expression = node.expression
        left, filters = getattr(expression, "left", None), getattr(expression, "filters", None)
        path = getattr(left, "path", None)
        if filters or not isinstance(path, list) or len(path) != 1 or not isinstance(path[0], str):
            return None
        name = path[0]
        if name not in schema.names or not any(test(schema.field(name).type) for test in _AS_TEXT):
            return None
        pieces.append((name,))
    return tuple(pieces)


def _cache_key(row: dict[str, Any]) -> Any:
    """A key for the values a row gives the template, or None when they cannot be one (lists, objects).
    Floats keep their text too: 0.0 and -0.0 are equal but render differently."""
    try:
        key = tuple((value, repr(value)) if isinstance(value, float) else value for value in row.values())
        hash(key)
    except TypeError:
        return None
    return key


def _message(exc: LiquidError) -> str:
    """Liquid's message without its source excerpt (the first line)."""
    return str(exc).splitlines()[0]
