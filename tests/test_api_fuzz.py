"""The REST API's OpenAPI document, exercised by a property-based fuzzer (schemathesis): whatever a client
sends to any operation, with a valid token, the answer is never a server error (5xx) and always the JSON
error or result its status promises. Real HTTP; definitions in the metadata database, with a sync defined
against the sandbox so that the operations reach real code."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from smartingest.repository.secrets import KEY_ENV
from tests.api_support import Api, define_sync
from tests.conftest import API_KEY


@pytest.fixture
def api(tmp_path, monkeypatch) -> Iterator[Api]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("SMARTINGEST_DATABASE_URL", raising=False)
    server = Api(tmp_path / "home")
    yield server
    server.stop()


def test_no_request_makes_a_server_error(pg, sandbox, api):
    pg.execute("CREATE TABLE people AS SELECT i AS id, 'u' || i || '@x.io' AS email FROM generate_series(1, 3) i")
    define_sync(api, f"select id, email from {pg.schema}.people", sandbox.url, API_KEY, columns=())

    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    headers = {"Authorization": f"Bearer {api.token}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=15, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(headers=headers, timeout=60)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")
            elif response.status_code >= 400:
                assert "error" in response.json(), response.text

        no_server_error()
    assert failures == []
