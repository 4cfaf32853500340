"""SSH tunnels to databases in private networks: a bastion host, logged into with a key, forwards a local
port to the database for the length of one connector call.

A connector whose settings include ``SshTunnelSettings`` opens its connections to ``tunnel_to(...)``'s
endpoint instead of the database's: the database's own address when no ``ssh_host`` is set, else a port on
127.0.0.1 that the bastion forwards to it. The settings are flat keys (``ssh_host``, ``ssh_private_key``...)
so that secrets among them are kept and shown like any connector secret.

The forwarding runs in a child process (``ssh_forwarder``: asyncssh on an event loop), not in a thread:
a driver that holds the GIL while it connects (connectorx does) would otherwise stall the thread that
forwards its bytes, and time out. The child gets its settings on stdin, answers with the local port or an
error on stdout, and forwards until its stdin closes: it ends with the call, and with this process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import select
import subprocess
import sys
from collections.abc import Iterator
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic.json_schema import JsonDict

from smartingest.config.models import Strict
from smartingest.errors import MissingDriverError, SourceAuthError, SourceConnectionError, SourceError
from smartingest.sources._common import source_error

_LOOPBACK = "127.0.0.1"
_GROUP: JsonDict = {"group": "Through an SSH tunnel"}  # the web form folds these keys together
_ERRORS: dict[str, type[SourceError]] = {"auth": SourceAuthError, "connection": SourceConnectionError}


class SshTunnelSettings(Strict):
    """The keys of a source reached through an SSH bastion host (all unset: the database is reached directly)."""

    ssh_host: str | None = Field(
        None, description="Bastion host to tunnel through (unset: connect directly).", json_schema_extra=_GROUP
    )
    ssh_port: int = Field(22, ge=1, le=65535, description="The bastion's SSH port.", json_schema_extra=_GROUP)
    ssh_user: str | None = Field(
        None, description="User to log into the bastion as (its key in authorized_keys).", json_schema_extra=_GROUP
    )
    ssh_private_key: SecretStr | None = Field(
        None, description="The user's private key (OpenSSH or PEM text), e.g. ${BASTION_KEY}.", json_schema_extra=_GROUP
    )
    ssh_private_key_path: str | None = Field(
        None, description="File holding the private key, instead of the text.", json_schema_extra=_GROUP
    )
    ssh_private_key_passphrase: SecretStr | None = Field(
        None, description="Passphrase of an encrypted private key.", json_schema_extra=_GROUP
    )
    ssh_host_key: str | None = Field(
        None,
        description="The bastion's public host key, as ssh-keyscan prints it without the host name "
        "('ssh-ed25519 AAAA...'); a bastion that presents another key is refused. Unset: any key is accepted.",
        json_schema_extra=_GROUP,
    )
    ssh_connect_timeout_seconds: float = Field(
        10, gt=0, le=300, description="Seconds to wait for the bastion.", json_schema_extra=_GROUP
    )

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> Self:
        # A key at its default says nothing (a form posts every default); any other says a tunnel was meant.
        given = {
            name
            for name, info in type(self).model_fields.items()
            if name.startswith("ssh_") and name in self.model_fields_set and getattr(self, name) != info.default
        }
        if self.ssh_host is None:
            if given:
                raise ValueError(f"{', '.join(sorted(given))} given without ssh_host: set ssh_host to tunnel")
            return self
        if not self.ssh_user:
            raise ValueError("ssh_user is needed to log into the bastion ssh_host")
        if (self.ssh_private_key is None) == (self.ssh_private_key_path is None):
            raise ValueError("give the bastion's login key as exactly one of ssh_private_key, ssh_private_key_path")
        return self

    @property
    def tunnelled(self) -> bool:
        return self.ssh_host is not None


@contextlib.contextmanager
def tunnel_to(settings: SshTunnelSettings, host: str, port: int) -> Iterator[tuple[str, int]]:
    """The endpoint to connect to for the database at ``host:port``: itself, or a local port the bastion
    forwards to it until the block ends."""
    if not settings.tunnelled:
        yield host, port
        return
    forwarder = _start_forwarder(settings, host, port)
    try:
        yield _LOOPBACK, _local_port(forwarder, settings)
    finally:
        _stop(forwarder)


def _start_forwarder(settings: SshTunnelSettings, host: str, port: int) -> subprocess.Popen[bytes]:
    try:
        installed = importlib.util.find_spec("asyncssh") is not None
    except ValueError:  # known to the import system as absent
        installed = False
    if not installed:
        raise MissingDriverError("ssh_host needs the Python package asyncssh: pip install 'smartingest[ssh]'")
    request = {
        "settings": settings.model_dump(mode="json", include=set(SshTunnelSettings.model_fields))
        | {k: getattr(settings, k).get_secret_value() for k in _SECRETS if getattr(settings, k) is not None},
        "target": [host, port],
    }
    forwarder = subprocess.Popen(
        [sys.executable, "-m", "smartingest.sources.ssh_forwarder"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert forwarder.stdin is not None
    forwarder.stdin.write(json.dumps(request).encode() + b"\n")
    forwarder.stdin.flush()
    return forwarder


_SECRETS = ("ssh_private_key", "ssh_private_key_passphrase")


def _local_port(forwarder: subprocess.Popen[bytes], settings: SshTunnelSettings) -> int:
    """The forwarder's answer: its local port, or its error raised here."""
    assert forwarder.stdout is not None
    bastion = f"SSH bastion {settings.ssh_host}:{settings.ssh_port}"
    # Its own timeouts answer first; this one only stops a forwarder that hangs.
    ready, _, _ = select.select([forwarder.stdout], [], [], settings.ssh_connect_timeout_seconds * 2 + 10)
    line = forwarder.stdout.readline() if ready else b""
    try:
        answer = json.loads(line)
    except ValueError as exc:
        ended = f"{bastion}: the tunnel's process ended without an answer"
        raise source_error(SourceError, ended, transient=True) from exc
    if "port" in answer:
        return int(answer["port"])
    error = _ERRORS.get(answer.get("kind"), SourceError)
    raise source_error(error, answer["message"], transient=answer.get("transient"))


def _stop(forwarder: subprocess.Popen[bytes]) -> None:
    """Close the forwarder's stdin (it logs out and ends), or end it after a grace period."""
    with contextlib.suppress(OSError):
        if forwarder.stdin is not None:
            forwarder.stdin.close()
    try:
        forwarder.wait(5)
    except subprocess.TimeoutExpired:
        forwarder.kill()
        forwarder.wait()
    if forwarder.stdout is not None:
        forwarder.stdout.close()


__all__ = ["SshTunnelSettings", "tunnel_to"]
