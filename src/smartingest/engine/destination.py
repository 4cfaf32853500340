"""What the destination says before anything is sent: does it answer, and do the mapped fields fit the
types its fields already have.

A field's type in Iterable is fixed by its first value, so a column whose values no longer fit (a number
field now fed text) would fail every request it is in. The run reads the project's field types once and
refuses the rows that would fail, without a request, each with a reason naming the field.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from smartingest.config.models import DestinationConfig
from smartingest.errors import DestinationError
from smartingest.iterable.client import IterableClient
from smartingest.iterable.fields import fits, read_field_types
from smartingest.iterable.retry import RetryPolicy
from smartingest.mapping.plan import UserRecordPlan

# A check is a question, not a delivery: a short retry budget answers it in seconds, not minutes.
CHECK_POLICY = RetryPolicy(max_attempts=2, base_seconds=0.2, max_seconds=1.0)


@dataclass(frozen=True)
class DestinationCheck:
    """Whether the destination answered with the API key, and its user fields when it did."""

    url: str
    ok: bool
    message: str
    field_types: dict[str, str] | None = None


def check_destination(destination: DestinationConfig) -> DestinationCheck:
    """Ask Iterable for the project's user fields with the destination's API key; never raises for an
    answer Iterable gives (a refused key, an outage, an unreachable host are a failed check)."""

    async def ask() -> DestinationCheck:
        async with IterableClient(destination, policy=CHECK_POLICY) as client:
            types = await read_field_types(client)
        return DestinationCheck(
            destination.url, True, f"Iterable at {destination.url} answered: {len(types)} user fields", types
        )

    try:
        return asyncio.run(ask())
    except DestinationError as exc:
        return DestinationCheck(destination.url, False, str(exc))


def type_conflicts(plan: UserRecordPlan, field_types: dict[str, str]) -> dict[str, str]:
    """Mapped fields whose values cannot go into the type their destination field already has:
    target -> the reason given to each row that has a value there."""
    conflicts: dict[str, str] = {}
    for column in plan.column_targets:
        for path, kind in column.kinds:
            fixed = field_types.get(path)
            if fixed is None or fits(fixed, kind) is not False:
                continue
            conflicts.setdefault(
                column.target,
                f"field {path!r} is of type {fixed} in Iterable, but column {column.column!r} "
                f"({column.column_type}) sends {kind} values: change the column's type in the model, "
                "map it to another field, or change the field in Iterable (rows with a value there are not sent)",
            )
    return conflicts
