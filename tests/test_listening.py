"""The socket ``serve`` listens on: responses on a kept-alive connection go out at once, and a port that
is taken is an error that says what to change."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

from smartingest.server.listening import listening_socket


def test_accepted_connections_have_nagle_off():
    # asyncio sets TCP_NODELAY only on sockets whose protocol is IPPROTO_TCP; without it, every response
    # after the first on a kept-alive connection waits for the client's delayed ACK.
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]

    async def accept_one() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            nodelay = await asyncio.wait_for(accepted, 10)
            writer.close()
        return nodelay

    assert asyncio.run(accept_one()) != 0


def test_serve_on_a_taken_port_names_the_option(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "SMARTINGEST_HOME": str(tmp_path / "home")}
        env.pop("SMARTINGEST_DATABASE_URL", None)
        result = subprocess.run(
            [sys.executable, "-m", "smartingest", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in output
    assert "--port" in output
