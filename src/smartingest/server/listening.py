"""The socket ``serve`` listens on, bound before uvicorn starts so the address can be printed once it
accepts connections."""

from __future__ import annotations

import socket

BACKLOG = 2048


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) and listening; port 0 picks a free port.

    Made from ``getaddrinfo`` so that its protocol is IPPROTO_TCP: asyncio sets TCP_NODELAY only on
    connections accepted from such a socket. A plain ``socket.socket()`` (protocol 0) leaves Nagle's
    algorithm on, and every response after the first on a kept-alive connection then waits about 40 ms for
    the client's delayed ACK (the headers and the body are two writes).
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)  # connections wait in the backlog from now on, not refused until uvicorn starts
    except OSError:
        sock.close()
        raise
    return sock
