"""Running the sandbox: `serve()` in the foreground, `SandboxServer` in a background thread."""

from __future__ import annotations

import socket
import sys
import threading
import time
from types import TracebackType

import uvicorn

from .app import create_app
from .settings import SandboxSettings

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket bound to (host, port); port 0 picks a free port."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _uvicorn_server(settings: SandboxSettings) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


def serve(settings: SandboxSettings) -> None:
    """Run the sandbox in the foreground until interrupted (Ctrl-C / SIGTERM)."""
    sock = _bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    server = _uvicorn_server(settings)
    print(
        f"Sandbox listening on {_url(settings.host, port)} "
        f"(project type: {settings.project_type}) API key: {settings.api_key}",
        flush=True,
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class SandboxServer:
    """The sandbox running in a background thread, for tests and demos.

    `with SandboxServer(settings) as sandbox:` starts it and returns once the port accepts
    connections; `sandbox.url` (the real port when `port=0`) and `sandbox.api_key` tell how to reach it.
    Leaving the block stops it and closes the database.
    """

    def __init__(self, settings: SandboxSettings):
        self.settings = settings
        self.api_key: str = settings.api_key or ""
        self.port: int = settings.port
        self.url: str = _url(settings.host, settings.port)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None

    def start(self) -> SandboxServer:
        """Start serving; returns when the port accepts connections (raises if startup fails)."""
        if self._thread is not None:
            raise RuntimeError("this SandboxServer is already running")
        self._sock = _bind(self.settings.host, self.settings.port)
        self.port = self._sock.getsockname()[1]
        self.url = _url(self.settings.host, self.port)
        try:
            self._server = _uvicorn_server(self.settings)
        except BaseException:
            self._sock.close()
            raise
        self._thread = threading.Thread(target=self._run, name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        self._wait_started()
        return self

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start()
            self._error = exc

    def _wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        server, thread = self._server, self._thread
        assert server is not None and thread is not None
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox failed to start on {self.url}") from self._error
            time.sleep(0.01)
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host
        host = "::1" if host == "::" else host
        with socket.create_connection((host, self.port), timeout=START_TIMEOUT_S):
            pass

    def stop(self) -> None:
        """Stop serving and wait for the server thread to end (idempotent)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                print(f"warning: sandbox on {self.url} did not stop in time", file=sys.stderr)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
