"""Trino fixtures: the fake coordinator of ``trino_http`` on loopback, FakeEngine in Trino's dialect behind it,
the contract's dataset in catalog ``memory``, schema ``sales``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from smartingest.sources.trino import TrinoSource

from .loopback import released

if TYPE_CHECKING:  # imported when used: the fake's engine reads the dataset from conftest, which imports this
    from .trino_http import TrinoCoordinator

TRINO_CATALOG, TRINO_SCHEMA, TRINO_USER = "memory", "sales", "reader"


def trino_coordinator_for(**options: Any) -> TrinoCoordinator:
    """A coordinator of its own (tests that change what it answers use one), over a fresh engine."""
    from .trino_http import TrinoCoordinator, TrinoEngine

    return TrinoCoordinator(TrinoEngine("trino", schema=TRINO_SCHEMA), TRINO_CATALOG, **options)


@pytest.fixture(scope="session")
def trino_coordinator() -> Iterator[TrinoCoordinator]:
    coordinator = trino_coordinator_for()
    try:
        yield coordinator
    finally:
        coordinator.close()


def trino_settings(coordinator: TrinoCoordinator, **overrides: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": coordinator.port,
        "user": TRINO_USER,
        "catalog": TRINO_CATALOG,
        "schema": TRINO_SCHEMA,
    } | overrides


def trino_released(coordinator: TrinoCoordinator, wait: float = 2.0) -> bool:
    """No query of the source's still running on the coordinator and none of its connections open."""
    return released(lambda: coordinator.running() or coordinator.open_connections(), wait)


TRINO_TYPES = {
    "id": pa.int64(),
    "name": pa.string(),  # varchar
    "balance": pa.decimal128(12, 2),
    "score": pa.float64(),
    "active": pa.bool_(),
    "born": pa.date32(),
    "updated_at": pa.timestamp("us", tz="UTC"),  # timestamp(6) with time zone
    "attrs": pa.string(),  # json, marked as JSON text
}


@pytest.fixture
def trino_case(trino_coordinator: TrinoCoordinator) -> Any:
    from .conftest import Case, _expected_rows

    settings = trino_settings(trino_coordinator)
    return Case(
        name="trino",
        source=TrinoSource(TrinoSource.Settings(**settings)),
        schema_name=TRINO_SCHEMA,
        types=TRINO_TYPES,
        rows=_expected_rows(decimal=True, native_dates=True),
        is_released=lambda wait=2.0: trino_released(trino_coordinator, wait),
        settings=settings,
        released_means=(
            "no query of the source's is running on the test coordinator (finished or cancelled with DELETE)"
            " and none of its HTTP connections is open"
        ),
    )
