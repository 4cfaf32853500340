"""A fast Iterable-shaped HTTP sink for benchmarks: it takes a Users sync's requests and counts the users.

    python bench/sink.py --port 8766 --api-key KEY      # serve until interrupted
    python bench/sink.py --measure                      # start one, load it from this process, print users/s

It answers what a Users sync sends (``src/smartingest/iterable``):

- ``GET /api/users/getFields``: ``{"fields": {...}}``, the user fields it has seen, each typed by the first
  value it saw (only the first user of each request is looked at: this is a sink, not a project);
- ``POST /api/users/bulkUpdate``: the contract's ``UserBulkUpdateListResponse`` (``successCount``,
  ``failCount``, the deprecated ``invalidEmails``/``invalidUserIds``, ``failedUpdates`` with its ten lists,
  ``createdFields``, ``filteredOutFields``). A user without an email or a userId, or whose email has no
  ``@``, fails as Iterable fails it; every other user succeeds and is counted, and so is its identity
  (its email, lower-cased, or else its userId) among the distinct users.

Every ``/api`` request needs the ``Api-Key`` header (401 ``BadApiKey`` otherwise); a malformed body is 400
``BadJsonBody``, one over 4 MB 413 ``BatchTooLarge``, any other route 404 ``NotFound``, all in Iterable's
error envelope. ``GET /_sink/stats`` answers ``{"requests", "users", "distinct_users", "failed_users", ...}``
(bulkUpdate requests answered 200, the users they carried, the distinct ones among those that succeeded,
those that failed, ..., ``body_bytes``: the size of those requests' bodies); ``POST /_sink/reset`` forgets everything.

The server is a plain asyncio protocol speaking HTTP/1.1: persistent connections (``Connection: close``
and HTTP/1.0 honoured), pipelined requests answered in order, ``Content-Length`` or chunked bodies,
``Expect: 100-continue``. Past a certain speed the cost is parsing the JSON body, which any server has to
do; the rest was measured on the development machine (2 vCPUs, 1,000-user bodies, 4 in flight, the same
counting code behind each server): about 1.1 million users per CPU-second of the sink here, against 0.8
million with uvicorn and h11 and 0.85-0.9 million with uvicorn and httptools. Identities are counted when
stats are asked for, not per request (see ``Sink.reset``), and the garbage collector runs rarely (see
``serve``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hmac
import os
import signal
import subprocess
import sys
import time
from itertools import repeat
from operator import itemgetter
from typing import Any

import orjson

from smartingest.sandbox.fields import value_type
from smartingest.sandbox.project import FAILED_UPDATE_LISTS

MAX_BODY = 4 * 1024 * 1024  # bulkUpdate's documented request cap
MAX_HEAD = 64 * 1024
_EMAIL = itemgetter("email")
_ALL_SUCCEEDED: dict[str, Any] = {
    "failCount": 0,
    "invalidEmails": [],
    "invalidUserIds": [],
    "failedUpdates": {name: [] for name in FAILED_UPDATE_LISTS},
    "filteredOutFields": [],
}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


class Sink:
    """What the sink has received, and the answers it gives (no HTTP here)."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key.encode()
        self.reset()

    def reset(self) -> None:
        self.requests = 0  # bulkUpdate requests answered 200
        self.users = 0  # users those requests carried
        self.failed = 0  # of which failed (no identifier, a bad email)
        # Identities are kept as received and counted when stats are asked for (``distinct_users``), so a
        # request costs no set insertions: with a million users the set no longer fits the CPU's caches.
        self.pending: list[list[str]] = []  # emails of users that succeeded, one list per request
        self.emails: set[str] = set()  # lower-cased, as Iterable compares them
        self.user_ids: set[str] = set()  # users identified by userId alone
        self.fields: dict[str, str] = {}
        self.other_requests = 0  # getFields and any other /api request answered
        self.refused = 0  # /api requests answered 4xx
        self.body_bytes = 0  # bytes of the bulkUpdate bodies answered 200

    def stats(self) -> dict[str, int]:
        for emails in self.pending:
            self.emails.update(map(str.lower, emails))
        self.pending.clear()
        return {
            "requests": self.requests,
            "users": self.users,
            "distinct_users": len(self.emails) + len(self.user_ids),
            "failed_users": self.failed,
            "other_requests": self.other_requests,
            "refused_requests": self.refused,
            "body_bytes": self.body_bytes,
        }

    def authenticate(self, api_key: bytes | None) -> None:
        if not api_key:
            raise ApiError(401, "BadApiKey", "Missing API key: send it in the Api-Key header")
        if not hmac.compare_digest(api_key, self.api_key):
            raise ApiError(401, "BadApiKey", "Invalid API key")

    def get_fields(self) -> dict[str, Any]:
        self.other_requests += 1
        return {"fields": dict(self.fields)}

    def bulk_update(self, body: bytes | bytearray) -> dict[str, Any]:
        if len(body) > MAX_BODY:
            raise ApiError(413, "BatchTooLarge", f"Request body of {len(body)} bytes is over 4 MB")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "BadJsonBody", f"Malformed JSON body: {exc}") from exc
        users = payload.get("users") if type(payload) is dict else None
        if type(users) is not list:
            raise ApiError(400, "BadParams", "The body needs a 'users' array")
        created = self._learn_fields(users[0]) if users else []
        self.requests += 1
        self.body_bytes += len(body)
        try:
            # The common case, at C speed: every user is an object with an email that has an "@".
            emails = list(map(_EMAIL, users))
            if all(map(str.__contains__, emails, repeat("@"))):
                self.pending.append(emails)
                self.users += len(users)
                return {**_ALL_SUCCEEDED, "successCount": len(users), "createdFields": created}
        except (KeyError, TypeError):  # a user without an email, not an object, an email not a string
            pass
        invalid_emails: list[str] = []
        invalid_user_ids: list[str] = []
        succeeded = 0
        for user in users:
            email = user.get("email") if type(user) is dict else None
            user_id = user.get("userId") if type(user) is dict else None
            if type(email) is str and "@" in email:
                self.pending.append([email])
                succeeded += 1
            elif email is None and type(user_id) is str and user_id:
                self.user_ids.add(user_id)
                succeeded += 1
            else:  # no identifier, or an email Iterable refuses
                invalid_emails.append(email if type(email) is str else "")
                if type(user_id) is str:
                    invalid_user_ids.append(user_id)
        self.users += len(users)
        self.failed += len(users) - succeeded
        failed_updates: dict[str, list[str]] = {name: [] for name in FAILED_UPDATE_LISTS}
        failed_updates["invalidEmails"] = invalid_emails
        return {
            "successCount": succeeded,
            "failCount": len(users) - succeeded,
            "invalidEmails": invalid_emails,
            "invalidUserIds": invalid_user_ids,
            "failedUpdates": failed_updates,
            "createdFields": created,
            "filteredOutFields": [],
        }

    def _learn_fields(self, user: Any) -> list[str]:
        """Type the fields of one user not seen before (Iterable fixes a field's type by its first value)."""
        if type(user) is not dict:
            return []
        created = []
        for name in ("email", "userId"):
            if name in user and name not in self.fields:
                self.fields[name] = "string"
                created.append(name)
        data = user.get("dataFields")
        if type(data) is dict:
            for name, value in data.items():
                if name not in self.fields and value is not None:
                    self.fields[name] = value_type(value) or "string"
                    created.append(name)
        return created

    def handle(
        self, method: bytes, path: bytes, headers: dict[bytes, bytes], body: bytes | bytearray
    ) -> tuple[int, bytes]:
        """(status, JSON body) of one request."""
        try:
            if path.startswith(b"/api/"):
                return 200, orjson.dumps(self._api(method, path, headers, body))
            if path == b"/_sink/stats" and method == b"GET":
                return 200, orjson.dumps(self.stats())
            if path == b"/_sink/reset" and method == b"POST":
                self.reset()
                return 200, b'{"reset":true}'
            raise ApiError(404, "NotFound", f"No such endpoint in the sink: {method.decode()} {path.decode()}")
        except ApiError as error:
            if path.startswith(b"/api/"):
                self.refused += 1
            return error.status, orjson.dumps({"code": error.code, "msg": error.msg})

    def _api(self, method: bytes, path: bytes, headers: dict[bytes, bytes], body: bytes | bytearray) -> dict[str, Any]:
        self.authenticate(headers.get(b"api-key"))
        if method == b"POST" and path == b"/api/users/bulkUpdate":
            return self.bulk_update(body)
        if method == b"GET" and path == b"/api/users/getFields":
            return self.get_fields()
        raise ApiError(404, "NotFound", f"No such endpoint in the sink: {method.decode()} {path.decode()}")


_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _CLOSED = range(6)


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 on one connection: requests parsed from the byte stream and answered in order.

    Bytes are parsed where they arrived (``pos`` into the received chunk); only an incomplete request's
    tail is kept in ``buffer`` until more comes, so a body that arrives whole is copied once.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.pos = 0
        self.state = _HEAD
        self.transport: asyncio.Transport | None = None
        self.http10 = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = _CLOSED

    # Flow control: a client that sends without reading its answers is not read until it does.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self.state != _CLOSED:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        buf: bytes | bytearray
        if self.buffer:
            self.buffer += data
            buf = self.buffer
        else:
            buf = data
        self.pos = 0
        try:
            while self.state != _CLOSED and self._step(buf):
                pass
        except _BadRequest as bad:
            self._respond(bad.status, orjson.dumps({"code": "BadParams", "msg": str(bad)}), False)
        if self.state == _CLOSED or self.pos == len(buf):
            self.buffer = bytearray()
        elif buf is self.buffer:
            del self.buffer[: self.pos]
        else:
            self.buffer = bytearray(buf[self.pos :])

    def _step(self, buf: bytes | bytearray) -> bool:
        """Parse from ``pos``; True when a part was consumed and more may follow."""
        pos = self.pos
        if self.state == _HEAD:
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                if len(buf) - pos > MAX_HEAD:
                    raise _BadRequest(431, "request head over 64 KiB")
                return False
            self._parse_head(bytes(buf[pos:end]))
            self.pos = end + 4
            waiting = len(buf) - self.pos
            if (self.state == _BODY and waiting < self.need) or (self.state == _CHUNK_SIZE and not waiting):
                self._continue()  # a client sending "Expect: 100-continue" waits for this
            return True
        if self.state == _BODY:
            end = pos + self.need
            if len(buf) < end:
                return False
            self.pos = end
            self._dispatch(buf[pos:end])
            return True
        if self.state == _CHUNK_SIZE:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if len(buf) - pos > MAX_HEAD:
                    raise _BadRequest(400, "chunk size line too long")
                return False
            try:
                size = int(bytes(buf[pos:end]).split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest(400, "bad chunk size") from None
            if size < 0:
                raise _BadRequest(400, "bad chunk size")
            self.pos = end + 2
            if size == 0:
                self.state = _TRAILER
            else:
                self.chunk_left = size
                self.state = _CHUNK_DATA
            return True
        if self.state == _CHUNK_DATA:
            end = pos + self.chunk_left
            if len(buf) < end + 2:
                return False
            if buf[end : end + 2] != b"\r\n":
                raise _BadRequest(400, "chunk data not followed by CRLF")
            self.chunks.append(bytes(buf[pos:end]))
            self.chunked_size += self.chunk_left
            self.pos = end + 2
            if self.chunked_size > MAX_BODY + MAX_HEAD:
                raise _BadRequest(413, "chunked body over 4 MB")
            self.state = _CHUNK_SIZE
            return True
        if self.state == _TRAILER:
            if buf[pos : pos + 2] == b"\r\n":
                self.pos = pos + 2
            else:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    return False
                self.pos = end + 4
            self._dispatch(b"".join(self.chunks))
            return True
        return False

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        while lines and not lines[0]:  # stray CRLFs before a request line are allowed
            lines.pop(0)
        try:
            method, target, version = lines[0].split(b" ")
        except (ValueError, IndexError):
            raise _BadRequest(400, "malformed request line") from None
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise _BadRequest(505, "only HTTP/1.1 and HTTP/1.0 are served")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(400, "malformed header line")
            headers[name.lower()] = value.strip()
        self.method = method
        self.path = target.split(b"?", 1)[0]
        self.headers = headers
        self.http10 = version == b"HTTP/1.0"
        tokens = {t.strip().lower() for t in headers.get(b"connection", b"").split(b",")}
        self.keep_alive = b"keep-alive" in tokens if self.http10 else b"close" not in tokens
        encoding = headers.get(b"transfer-encoding")
        if encoding is not None:
            if encoding.lower() != b"chunked":
                raise _BadRequest(501, "only the chunked transfer coding is served")
            self.chunks: list[bytes] = []
            self.chunked_size = 0
            self.state = _CHUNK_SIZE
            return
        length = headers.get(b"content-length", b"0")
        if not length.isdigit():
            raise _BadRequest(400, "bad Content-Length")
        self.need = int(length)
        if self.need > MAX_BODY + MAX_HEAD:
            raise _BadRequest(413, "body over 4 MB")
        self.state = _BODY

    def _continue(self) -> None:
        if self.headers.get(b"expect", b"").lower() == b"100-continue" and not self.http10 and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _dispatch(self, body: bytes | bytearray) -> None:
        self.state = _HEAD
        try:
            status, payload = self.sink.handle(self.method, self.path, self.headers, body)
        except Exception as exc:  # a bug of the sink: answer 500 and keep serving
            status, payload = 500, orjson.dumps({"code": "GenericError", "msg": repr(exc)})
        self._respond(status, payload, self.keep_alive)

    def _respond(self, status: int, payload: bytes, keep_alive: bool) -> None:
        if self.transport is None or self.state == _CLOSED:
            return
        if not keep_alive:
            connection = b"Connection: close\r\n"
        elif self.http10:
            connection = b"Connection: keep-alive\r\n"
        else:
            connection = b""
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (status, _REASONS.get(status, "").encode(), len(payload), connection, payload)
        )
        if not keep_alive:
            self.state = _CLOSED
            self.transport.close()


class _BadRequest(Exception):
    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status


# ---- serving


async def serve(host: str, port: int, api_key: str) -> None:
    # Each request makes two objects per user (parsed JSON, freed after the answer, in no cycle): collected
    # at the default threshold they cost a quarter of the sink's time.
    gc.freeze()
    gc.set_threshold(200_000, 50, 100)
    sink = Sink(api_key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(sink), host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"sink listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


class SinkProcess:
    """A sink in a process of its own (a context manager): ``url``, ``stats()``, ``reset()``."""

    def __init__(self, api_key: str, host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--host", host, "--port", "0", "--api-key", api_key],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("sink listening on "):
            self.proc.kill()
            raise RuntimeError(f"the sink did not start: {line!r}")
        self.url = line.split()[-1]

    def __enter__(self) -> SinkProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _call(self, method: str, path: str) -> dict[str, int]:
        status, body = asyncio.run(_request(self.url, method, path))
        if status != 200:
            raise RuntimeError(f"sink answered {status} to {method} {path}: {body!r}")
        result: dict[str, int] = orjson.loads(body)
        return result

    def stats(self) -> dict[str, int]:
        return self._call("GET", "/_sink/stats")

    def reset(self) -> None:
        self._call("POST", "/_sink/reset")


# ---- measuring: a load generator of raw keep-alive connections, so the client costs little

FIELDS_TEMPLATE = {
    "id": 123456789,
    "firstName": "First1234",
    "lastName": "Last5678",
    "city": "Osaka",
    "plan": "enterprise",
    "ltv": 517.21,
    "score": 87.28571428571429,
    "active": True,
    "signedUpAt": "2023-02-10 07:45:00 +00:00",
}
_MARK = b"MARK00000"  # 9 characters, replaced by each body's number so every body's users are new


def _body_template(batch: int) -> bytes:
    users = [{"email": f"load{_MARK.decode()}x{i}@example.com", "dataFields": FIELDS_TEMPLATE} for i in range(batch)]
    return orjson.dumps({"users": users})


async def _request(url: str, method: str, path: str, body: bytes = b"", api_key: str = "") -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        key = f"Api-Key: {api_key}\r\n".encode() if api_key else b""
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n".encode()
            + key
            + b"Connection: close\r\n\r\n"
            + body
        )
        return await _read_response(reader)
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    url: str, api_key: str, users: int = 500_000, batch: int = 1000, concurrency: int = 4, pid: int | None = None
) -> dict[str, Any]:
    """How fast the sink takes ``users`` new users in bodies of ``batch``, ``concurrency`` requests in flight on
    as many keep-alive connections; run it from another process than the sink's. ``users_per_s`` is by the
    clock; with the sink's ``pid``, ``users_per_cpu_s`` is by the sink's own CPU time, which a busy machine
    disturbs less."""
    template = _body_template(batch)
    host, port = url.removeprefix("http://").split(":")
    bodies = users // batch
    head = (
        f"POST /api/users/bulkUpdate HTTP/1.1\r\nHost: {host}\r\nApi-Key: {api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(template)}\r\n\r\n"
    ).encode()

    async def run() -> float:
        counter = iter(range(bodies))

        async def worker() -> None:
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                for n in counter:
                    writer.write(head + template.replace(_MARK, b"%09d" % n))
                    await writer.drain()
                    status, answer = await _read_response(reader)
                    if status != 200 or orjson.loads(answer)["successCount"] != batch:
                        raise RuntimeError(f"the sink answered {status}: {answer[:200]!r}")
            finally:
                writer.close()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start

    cpu_before = cpu_seconds(pid) if pid else 0.0
    seconds = asyncio.run(run())
    sent = bodies * batch
    result = {"users": sent, "seconds": round(seconds, 3), "users_per_s": round(sent / seconds)}
    if pid:
        cpu = cpu_seconds(pid) - cpu_before
        result["sink_cpu_seconds"] = round(cpu, 3)
        # CPU time comes in clock ticks (10 ms): too few of them say nothing.
        result["users_per_cpu_s"] = round(sent / cpu) if cpu >= 0.1 else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free one (printed on start)")
    parser.add_argument("--api-key", default=os.environ.get("SINK_API_KEY", "sink-key"))
    parser.add_argument("--measure", action="store_true", help="start a sink, load it, print users/s")
    parser.add_argument("--users", type=int, default=1_000_000, help="users sent by --measure")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight for --measure")
    args = parser.parse_args()
    if not args.measure:
        asyncio.run(serve(args.host, args.port, args.api_key))
        return
    with SinkProcess(args.api_key, args.host) as sink:
        result = measure(sink.url, args.api_key, args.users, concurrency=args.concurrency, pid=sink.proc.pid)
        stats = sink.stats()
    if stats["distinct_users"] != result["users"]:
        raise SystemExit(f"the sink counted {stats}, expected {result['users']} distinct users")
    per_cpu = f"{result['users_per_cpu_s']:,}" if result["users_per_cpu_s"] else "(too short to tell)"
    print(
        f"{result['users_per_s']:,} users/s, {per_cpu} users per CPU-second of the sink "
        f"({result['users']:,} users, 1,000 a request, {args.concurrency} in flight)"
    )


if __name__ == "__main__":
    main()
