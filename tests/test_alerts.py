"""Alerts: a sync that fails, rejects too many rows, and recovers is told once per change of state to a
signed webhook, a Slack webhook and an email. Real HTTP receivers and a real SMTP server (aiosmtpd) on
loopback; real PostgreSQL and the sandbox."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from smartingest import service
from tests.conftest import create_customers, write_project

SYNC = "customers_to_users"
SECRET = "webhook-signing-secret"


class Receiver:
    """An HTTP server keeping every POST it receives (path, headers, body)."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["path"] == path]


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def _project(tmp_path: Path, sandbox_url: str, sql: str, receiver: Receiver, smtp_port: int) -> Path:
    project = write_project(tmp_path, sandbox_url, sql=sql, mappings=[{"from": "email", "to": "email"}])
    doc = yaml.safe_load(project.read_text())
    doc["alerts"] = [
        {"type": "webhook", "url": f"{receiver.url}/hook", "secret": SECRET},
        {"type": "slack", "url": f"{receiver.url}/slack"},
        {"type": "webhook", "url": "http://127.0.0.1:9/down", "secret": SECRET},  # never answers
        {
            "type": "email",
            "to": ["ops@example.com"],
            "from": "smartingest@example.com",
            "host": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
        },
    ]
    project.write_text(yaml.safe_dump(doc, sort_keys=False))
    return project


@pytest.mark.usefixtures("metadata_database")
def test_one_alert_per_change_of_state_on_every_channel(pg, sandbox, tmp_path, receiver, mailbox):
    box, smtp_port = mailbox
    create_customers(pg, 10)
    home = tmp_path / "home"
    good = f"select id, email from {pg.schema}.customers"

    def run(sql: str) -> service.RunResult:
        project = _project(tmp_path, sandbox.url, sql, receiver, smtp_port)
        return service.run(service.open_workspace(project, home=home), SYNC)

    assert run(good).status == "succeeded"  # healthy from the start: nothing to say
    assert receiver.received == [] and box.messages == []

    assert run(f"select id, email from {pg.schema}.no_such_table").status == "failed"
    assert run(f"select id, email from {pg.schema}.no_such_table").status == "failed"  # still failing: quiet
    [hook] = receiver.at("/hook")
    alert = json.loads(hook["body"])
    assert (alert["sync"], alert["state"], alert["previous"]) == (SYNC, "failed", "ok")
    assert "no_such_table" in alert["message"]
    expected = hmac.new(SECRET.encode(), hook["body"], hashlib.sha256).hexdigest()
    assert hook["headers"]["X-Smartingest-Signature"] == f"sha256={expected}"
    [slack] = receiver.at("/slack")
    assert json.loads(slack["body"])["text"].startswith(f":red_circle: smartingest: sync '{SYNC}' failed")
    [mail] = box.messages
    assert mail["Subject"] == f"smartingest: sync {SYNC} is failed" and mail["To"] == "ops@example.com"

    assert run(good).status == "succeeded"
    assert [json.loads(h["body"])["state"] for h in receiver.at("/hook")] == ["failed", "ok"]
    assert "recovered" in json.loads(receiver.at("/hook")[1]["body"])["message"]

    pg.execute("UPDATE customers SET email = 'broken-' || id WHERE id <= 2")  # 2 of 2 changed rows: 100%
    assert run(good).status == "warning"
    rejecting = json.loads(receiver.at("/hook")[2]["body"])
    assert rejecting["state"] == "rejecting" and "2 of 2 rows rejected (100.0%" in rejecting["message"]
    assert len(box.messages) == 3 and len(receiver.at("/slack")) == 3
