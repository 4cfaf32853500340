"""Does the destination answer: a read of the project's user fields with its API key, for
``destination test`` and ``sync plan``. What a sync type reads or creates before sending is the sync
type's own (``TypePlan.inspect_destination``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from smartingest.config.models import DestinationConfig
from smartingest.errors import DestinationError
from smartingest.iterable.client import IterableClient
from smartingest.iterable.fields import read_field_types
from smartingest.iterable.retry import RetryPolicy

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
