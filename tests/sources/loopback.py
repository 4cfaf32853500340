"""What the sources' fakes and release probes share: an HTTP handler that counts its connections, and a
wait for a server to notice that a client let go."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any


def released(held: Callable[[], object], wait: float) -> bool:
    """Whether ``held()`` turns false within ``wait`` seconds: a server notices a closed connection, or the
    end of a query, a moment after the client acts."""
    deadline = time.monotonic() + wait
    while held() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not held()


class CountingHandler(BaseHTTPRequestHandler):
    """A fake's request handler on a loopback server: keep-alive (as the clients' pools expect), quiet, and
    each TCP connection reported to ``count`` when it opens (1) and closes (-1)."""

    protocol_version = "HTTP/1.1"
    # A response written in pieces (headers, then chunks) is sent at once: with Nagle's algorithm each
    # piece after the first waits for the client's delayed acknowledgement (40 ms on Linux).
    disable_nagle_algorithm = True

    def count(self, delta: int) -> None:
        """Note a connection opened or closed; the fake overrides this."""

    def setup(self) -> None:
        super().setup()
        self.count(1)

    def handle(self) -> None:
        # A client that resets a kept-alive connection it will not use again has left: nothing failed.
        with contextlib.suppress(ConnectionResetError):
            super().handle()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.count(-1)

    def log_message(self, format: str, *args: Any) -> None:  # pytest shows failures, not requests
        pass
