"""A real OpenSSH server on loopback for the SSH tunnel tests: its own host key, one user (the one running
the tests) logging in with a generated key, TCP forwarding allowed. Debian's openssh-server provides
/usr/sbin/sshd (``make test`` installs it when missing)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass(frozen=True)
class Bastion:
    host: str
    port: int
    user: str
    key_path: Path  # the user's private key (OpenSSH format, no passphrase)
    host_key: str  # the server's public host key, "ssh-ed25519 AAAA..."
    other_key_path: Path  # a key the server does not know


def _keygen(path: Path, passphrase: str = "") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)], check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_sshd(home: Path) -> Iterator[Bastion]:
    """Start sshd on a free loopback port with everything in ``home``; stopped on exit."""
    for name in ("host_key", "user_key", "other_key"):
        _keygen(home / name)
    (home / "authorized_keys").write_text((home / "user_key.pub").read_text())
    os.chmod(home / "authorized_keys", 0o600)
    port = _free_port()
    config = home / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {home / 'host_key'}",
                f"AuthorizedKeysFile {home / 'authorized_keys'}",
                f"PidFile {home / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "AllowTcpForwarding yes",
                "UsePAM no",
                "StrictModes no",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sshd did not start: {process.stderr.read() if process.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        host_key = " ".join((home / "host_key.pub").read_text().split()[:2])
        yield Bastion("127.0.0.1", port, getpass.getuser(), home / "user_key", host_key, home / "other_key")
    finally:
        process.terminate()
        process.wait(10)
