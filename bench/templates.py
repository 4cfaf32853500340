"""Benchmark: rendering template mappings over a batch, against rendering the same template row by row.

    uv run python bench/templates.py               # 1M rows
    uv run python bench/templates.py --rows 100000

It builds an Arrow batch of users (first names from a list of 5,000, cities from 50, a unique id per row)
and renders, in this process, one after the other:

- **plain, one Arrow step**: ``Hi {{ first_name }} from {{ city }} (#{{ id }})``, which mapping/templates.py
  turns into one Arrow concatenation;
- **plain, row by row**: the same template rendered by python-liquid once per row, the baseline;
- **filters, cached**: ``{{ first_name | upcase }} ({{ city | downcase }})``, rendered by python-liquid once
  per distinct (first_name, city) in the batch, as the mapping does;
- **filters, row by row**: the same, once per row.

Prints seconds, rows/s and the ratio to the row-by-row baseline of the same template, measured in the same
run; never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import pyarrow as pa

from smartingest.mapping.templates import ENVIRONMENT, compile_template

PLAIN = "Hi {{ first_name }} from {{ city }} (#{{ id }})"
FILTERS = "{{ first_name | upcase }} ({{ city | downcase }})"


def users(rows: int) -> pa.RecordBatch:
    names = [f"Name{i}" for i in range(5_000)]
    cities = [f"City{i}" for i in range(50)]
    return pa.record_batch(
        {
            "id": pa.array(range(rows), pa.int64()),
            "first_name": pa.array([names[i * 7 % len(names)] for i in range(rows)]),
            "city": pa.array([cities[i * 13 % len(cities)] for i in range(rows)]),
        }
    )


def _timed(render: Any) -> tuple[float, pa.Array]:
    start = time.perf_counter()
    result = render()
    return time.perf_counter() - start, result


def _row_by_row(source: str, batch: pa.RecordBatch, columns: list[str]) -> pa.Array:
    template = ENVIRONMENT.from_string(source)
    return pa.array([template.render(**row) for row in batch.select(columns).to_pylist()], pa.string())


def _refuse(rows: pa.Array, message: str) -> None:
    raise RuntimeError(f"a benchmark row failed to render: {message}")


def measure(rows: int) -> dict[str, Any]:
    batch = users(rows)
    lines: dict[str, dict[str, Any]] = {}
    for name, source in (("plain", PLAIN), ("filters", FILTERS)):
        compiled = compile_template(source, batch.schema, (), "bench")
        fast, rendered = _timed(lambda compiled=compiled: compiled.render(batch, {}, _refuse))
        slow, baseline = _timed(
            lambda source=source, compiled=compiled: _row_by_row(source, batch, list(compiled.columns))
        )
        if rendered.to_pylist() != baseline.to_pylist():
            raise RuntimeError(f"the {name} template renders differently from python-liquid row by row")
        how = "one Arrow step" if compiled.concat is not None else "cached per distinct values"
        lines[f"{name}, {how}"] = {
            "seconds": round(fast, 3),
            "rows_per_s": round(rows / fast),
            "x_row_by_row": round(fast / slow, 3),
        }
        lines[f"{name}, row by row"] = {
            "seconds": round(slow, 3),
            "rows_per_s": round(rows / slow),
            "x_row_by_row": 1.0,
        }
    return {"rows": rows, "lines": lines}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    report = measure(args.rows)
    print(json.dumps(report, indent=2))
    print(f"\n{'':38}{'seconds':>10}{'rows/s':>12}{'x row by row':>14}")
    for label, line in report["lines"].items():
        print(f"{label:38}{line['seconds']:>10.2f}{line['rows_per_s']:>12,}{line['x_row_by_row']:>14.3f}")
    return report


if __name__ == "__main__":
    main()
