"""Fixtures: one real sandbox server per project type (module scope), reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from smartingest.sandbox import SandboxServer

from .helpers import api_client, start_server


def _server_fixture(project_type: str):
    @pytest.fixture(scope="module")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
        sandbox = start_server(tmp_path_factory.mktemp(f"sandbox-{project_type}"), project_type=project_type)
        yield sandbox
        sandbox.stop()

    return server


email_server = _server_fixture("email")
userid_server = _server_fixture("userid")
hybrid_server = _server_fixture("hybrid")


def _client_fixture(server_fixture: str):
    @pytest.fixture
    def client(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
        server: SandboxServer = request.getfixturevalue(server_fixture)
        with api_client(server) as http:
            http.post("/_sandbox/reset").raise_for_status()
            yield http

    return client


email_client = _client_fixture("email_server")
userid_client = _client_fixture("userid_server")
hybrid_client = _client_fixture("hybrid_server")
