"""JSON objects and arrays built column-wise from encoded values: one Arrow join per object, whatever the
number of rows, with fields left out where their mapping skips nulls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from smartingest.errors import MappingError
from smartingest.mapping.encode import JSON_NULL


@dataclass(frozen=True)
class Leaf:
    """One field's encoded values in a tree of fields: a column's JSON text, or one constant JSON text."""

    values: pa.Array | str
    skip_null: bool  # a null leaves the field out of its row's object


def json_object(tree: dict[str, Any]) -> pa.Array | str:
    """JSON objects from a tree of field name -> leaf or subtree. A field is left out of a row's object
    where its leaf skips nulls and the row's value is null; a nested object left empty that way is null
    (its parent leaves it out: sending ``{}`` would clear what Iterable holds there)."""
    keys: list[str] = []
    values: list[pa.Array | str] = []
    for name, node in tree.items():
        keys.append(orjson.dumps(name).decode() + ":")
        if isinstance(node, dict):
            values.append(json_object(node))
        elif isinstance(node.values, pa.Array) and not node.skip_null:
            values.append(pc.fill_null(node.values, JSON_NULL))
        else:
            values.append(node.values)
    if not any(isinstance(v, pa.Array) and v.null_count for v in values):
        # Every field is present on every row: one join of keys, values and commas.
        parts: list[pa.Array | str] = ["{"]
        for i, (key, value) in enumerate(zip(keys, values, strict=True)):
            parts += [("," if i else "") + key, value]
        parts.append("}")
        if not any(isinstance(p, pa.Array) for p in parts):
            return "".join(p for p in parts if isinstance(p, str))
        return pc.binary_join_element_wise(*parts, "")
    # Some fields are left out of some rows: each field's pair, comma first, is empty there; the joined
    # pairs lose their first comma. (Arrow's join with null_handling="skip" drops the rows where every
    # piece is null, so it cannot serve.)
    pieces: list[pa.Array | str] = [
        pc.fill_null(pc.binary_join_element_wise("," + key, value, ""), "")
        if isinstance(value, pa.Array)
        else "," + key + value
        for key, value in zip(keys, values, strict=True)
    ]
    inner = pc.utf8_slice_codeunits(json_join(pieces, len(_first_array(values))), 1)
    body = pc.binary_join_element_wise("{", inner, "}", "")
    if all(isinstance(v, pa.Array) and v.null_count for v in values):  # every field may be left out
        body = pc.if_else(pc.equal(inner, ""), pa.scalar(None, pa.string()), body)
    return body


def _first_array(values: list[pa.Array | str]) -> pa.Array:
    return next(v for v in values if isinstance(v, pa.Array))


def json_array(elements: list[pa.Array | str], n: int) -> pa.Array | str:
    """JSON arrays from one encoded column (or constant) per element, null elements as ``null``."""
    parts: list[pa.Array | str] = ["["]
    for i, element in enumerate(elements):
        if i:
            parts.append(",")
        parts.append(pc.fill_null(element, JSON_NULL) if isinstance(element, pa.Array) else element)
    parts.append("]")
    if not any(isinstance(p, pa.Array) for p in parts):
        return "".join(p for p in parts if isinstance(p, str))
    return json_join(parts, n)


def fill_object(value: pa.Array | str) -> pa.Array | str:
    return pc.fill_null(value, "{}") if isinstance(value, pa.Array) else value


def json_join(pieces: list[pa.Array | str], n: int) -> pa.Array:
    """Concatenate JSON pieces row by row: arrays of text (no nulls) and constant text, into n strings."""
    # binary_join_element_wise broadcasts strings against arrays; it needs at least one array.
    if not any(isinstance(p, pa.Array) for p in pieces):
        pieces = [*pieces, pa.repeat("", n)]
    return pc.binary_join_element_wise(*pieces, "")


def check_paths(targets: list[str], where: str) -> None:
    leaves = set(targets)
    for target in targets:
        parts = target.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if parent in leaves:
                raise MappingError(f"{where}: {parent!r} is mapped as a value and also as the object of {target!r}")


def insert(tree: dict[str, Any], path: list[str], leaf: Leaf) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = leaf
