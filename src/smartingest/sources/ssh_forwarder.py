"""The process an SSH tunnel runs in (see ``tunnel``): asyncssh logs into the bastion and forwards a local
port to the database until stdin closes.

Protocol: one JSON line on stdin, ``{"settings": {...SshTunnelSettings, secrets in clear}, "target":
[host, port]}``; one JSON line on stdout, ``{"port": N}`` when forwarding, else ``{"kind": "auth" |
"connection" | "error", "transient": bool, "message": ...}`` and the process ends.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncssh


class TunnelError(Exception):
    def __init__(self, kind: str, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.kind, self.message, self.transient = kind, message, transient


async def forward(settings: dict[str, Any], target: tuple[str, int]) -> None:
    bastion = f"SSH bastion {settings['ssh_host']}:{settings['ssh_port']}"
    timeout = float(settings["ssh_connect_timeout_seconds"])
    try:
        connection = await asyncio.wait_for(
            asyncssh.connect(
                settings["ssh_host"],
                settings["ssh_port"],
                username=settings["ssh_user"],
                client_keys=[_private_key(settings)],
                known_hosts=_known_hosts(settings),
                agent_path=None,
                config=None,
                password=None,
                kbdint_auth=False,
            ),
            timeout,
        )
    except TunnelError:
        raise
    except Exception as exc:
        raise _error(exc, settings, bastion, target) from exc
    try:
        try:
            # One forwarded connection first: a bastion that cannot reach the database says so here, rather
            # than the driver reporting its connection to 127.0.0.1 closed.
            _reader, writer = await asyncio.wait_for(connection.open_connection(*target), timeout)
            writer.close()
            listener = await connection.forward_local_port("127.0.0.1", 0, *target)
        except Exception as exc:
            raise _error(exc, settings, bastion, target) from exc
        _answer({"port": listener.get_port()})
        # Forward until the parent closes our stdin (or dies).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
        listener.close()
    finally:
        connection.close()
        await connection.wait_closed()


def _private_key(settings: dict[str, Any]) -> asyncssh.SSHKey:
    passphrase = settings.get("ssh_private_key_passphrase")
    if settings.get("ssh_private_key") is not None:
        text, where = settings["ssh_private_key"], "ssh_private_key"
    else:
        path = Path(settings["ssh_private_key_path"]).expanduser()
        where = f"ssh_private_key_path ({path})"
        try:
            text = path.read_text()
        except OSError as exc:
            raise TunnelError("auth", f"{where} cannot be read: {exc.strerror or exc}") from exc
    try:
        return asyncssh.import_private_key(text, passphrase)
    except asyncssh.KeyEncryptionError as exc:
        raise TunnelError("auth", f"{where} cannot be opened with ssh_private_key_passphrase: {exc}") from exc
    except asyncssh.KeyImportError as exc:
        raise TunnelError("auth", f"{where} is not a private key that can be read: {exc}") from exc


def _known_hosts(settings: dict[str, Any]) -> Any:
    """What the bastion's host key is checked against: the one key given, else nothing."""
    if not settings.get("ssh_host_key"):
        return None
    try:
        key = asyncssh.import_public_key(settings["ssh_host_key"].strip())
    except asyncssh.KeyImportError as exc:
        raise TunnelError("auth", f"ssh_host_key is not a public key ('ssh-ed25519 AAAA...'): {exc}") from exc
    return ([key], [], [])


def _error(exc: BaseException, settings: dict[str, Any], bastion: str, target: tuple[str, int]) -> TunnelError:
    detail = one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, asyncssh.PermissionDenied):
        return TunnelError(
            "auth",
            f"{bastion} refused user {settings['ssh_user']!r} with the key given: {detail}; add the key's public "
            "half to that user's ~/.ssh/authorized_keys on the bastion, or fix ssh_user / ssh_private_key",
        )
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return TunnelError(
            "auth",
            f"{bastion} presented a host key other than ssh_host_key: {detail}; check that ssh_host is the "
            "bastion you mean, then update ssh_host_key (ssh-keyscan prints it)",
        )
    if isinstance(exc, asyncssh.ChannelOpenError):
        return TunnelError(
            "connection", f"{bastion} cannot reach the database at {target[0]}:{target[1]}: {detail}", True
        )
    if isinstance(exc, TimeoutError):
        seconds = settings["ssh_connect_timeout_seconds"]
        return TunnelError(
            "connection", f"cannot reach {bastion}: no answer within ssh_connect_timeout_seconds ({seconds})", True
        )
    if isinstance(exc, OSError | asyncssh.DisconnectError):
        return TunnelError("connection", f"cannot reach {bastion}: {detail}", True)
    return TunnelError("error", f"{bastion} failed: {detail}")


def one_line(text: str) -> str:
    return " ".join(text.split())


def _answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    request = json.loads(sys.stdin.buffer.readline())
    try:
        host, port = request["target"]
        asyncio.run(forward(request["settings"], (str(host), int(port))))
    except TunnelError as error:
        _answer({"kind": error.kind, "message": error.message, "transient": error.transient})


if __name__ == "__main__":
    main()
