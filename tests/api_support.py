"""The REST API served for tests: uvicorn on a loopback port in a thread, over a workspace whose
definitions live in the metadata database, and a client holding a token."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from smartingest import service
from smartingest.server.app import create_app
from smartingest.server.listening import listening_socket


class Api:
    """The API served by uvicorn in a thread, and a client holding a token."""

    def __init__(self, home: Path, project: Path | None = None) -> None:
        self.home = home
        ws = service.open_workspace(project, home=home)
        self.token = service.create_token(ws, "tests")
        app = create_app(lambda: service.open_workspace(project, home=home), run_workers=2)
        self.sock = listening_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None


SOURCE = {"type": "postgres", "host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres"}


def define_sync(
    api: Api, sql: str, base_url: str, api_key: str, password: str | None = None, columns: tuple[str, ...] = ("plan",)
) -> None:
    """Through the API: source ``warehouse``, model ``customers`` (``sql``), destination ``iterable`` (a
    test project at ``base_url``) and a users sync ``people`` mapping email and ``columns``."""
    api.ok("PUT", "/api/v1/sources/warehouse", json={**SOURCE, **({"password": password} if password else {})})
    api.ok("PUT", "/api/v1/models/customers", json={"source": "warehouse", "sql": sql, "primary_key": "id"})
    destination = {"api_key": api_key, "base_url": base_url, "environment": "test", "rate_limit_scale": 100}
    api.ok("PUT", "/api/v1/destinations/iterable", json=destination)
    mappings = [{"from": "email", "to": "email"}, *({"from": c, "to": c} for c in columns)]
    sync = {"type": "users", "model": "customers", "destination": "iterable", "match_on": "email", "mappings": mappings}
    api.ok("PUT", "/api/v1/syncs/people", json=sync)
