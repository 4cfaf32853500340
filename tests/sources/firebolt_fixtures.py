"""Firebolt fixtures: the fake API, identity service and engines of ``firebolt_http`` on loopback, FakeEngine
(PostgreSQL's dialect) behind them holding the contract's dataset in schema ``public``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from smartingest.sources.firebolt import FireboltSource

from .loopback import released

if TYPE_CHECKING:  # imported when used: the fake's engine reads the dataset from conftest, which imports this
    from .firebolt_http import FireboltApi

FIREBOLT = {
    "client_id": "sa-smartingest",
    "client_secret": "s3cret-Firebolt",
    "account_name": "acme",
    "database": "analytics",
    "engine_name": "reader_engine",
}


def firebolt_api_for(**options: Any) -> FireboltApi:
    """An API of its own (tests that change what it answers use one), over a fresh engine."""
    from .firebolt_http import FireboltApi, FireboltEngine

    return FireboltApi(
        FireboltEngine("postgres", schema="public"),
        client_id=FIREBOLT["client_id"],
        client_secret=FIREBOLT["client_secret"],
        account=FIREBOLT["account_name"],
        database=FIREBOLT["database"],
        engine_name=FIREBOLT["engine_name"],
        **options,
    )


@pytest.fixture
def firebolt_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names under firebolt.test resolve to the fake (the SDK derives the identity host from the API's and
    speaks HTTPS to an engine's port 443), and the test CA is the one HTTPS trusts (httpx's SSL_CERT_FILE)."""
    from .firebolt_http import engine_tls, resolving_test_domain

    monkeypatch.setattr(socket, "getaddrinfo", resolving_test_domain)
    monkeypatch.setenv("SSL_CERT_FILE", engine_tls().ca_file)


@pytest.fixture(scope="session")
def firebolt_api() -> Iterator[FireboltApi]:
    api = firebolt_api_for(chunk_rows=900)
    try:
        yield api
    finally:
        api.close()


def firebolt_settings(api: FireboltApi, **overrides: Any) -> dict[str, Any]:
    return FIREBOLT | {"api_endpoint": api.api_endpoint} | overrides


def firebolt_released(api: FireboltApi, wait: float = 2.0) -> bool:
    """No statement of the source's running on the fake engine and none of its connections open."""
    return released(lambda: api.running() or api.open_connections(), wait)


@pytest.fixture
def firebolt_case(firebolt_api: FireboltApi, firebolt_network: None) -> Any:
    from .conftest import Case, _expected_rows

    settings = firebolt_settings(firebolt_api)
    return Case(
        name="firebolt",
        source=FireboltSource(FireboltSource.Settings(**settings)),
        schema_name="public",
        types={
            "id": pa.int64(),
            "name": pa.string(),
            "balance": pa.decimal128(12, 2),
            "score": pa.float64(),
            "active": pa.bool_(),
            "born": pa.date32(),
            "updated_at": pa.timestamp("us", tz="UTC"),  # timestamptz
            "attrs": pa.string(),  # Firebolt keeps JSON as text
        },
        rows=_expected_rows(decimal=True, native_dates=True),
        is_released=lambda wait=2.0: firebolt_released(firebolt_api, wait),
        settings=settings,
        released_means=(
            "no statement of the source's is running on the test engine and none of its HTTP connections (to the"
            " identity service, the API, the system engine or the engine) is open"
        ),
    )
