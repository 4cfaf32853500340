"""Encryption at rest of the definitions kept in the metadata database (they hold source passwords and
Iterable API keys): Fernet tokens (AES-128-CBC and HMAC-SHA256, from the ``cryptography`` package).

The key comes from ``SMARTINGEST_SECRET_KEY``: one Fernet key, or several separated by commas, the first
encrypting and any of them decrypting, which is how a key is rotated (``smartingest secrets rotate``
re-encrypts every definition with the first). Without it, a key is generated once into
``SMARTINGEST_HOME/secret.key``, readable by its owner only, so one machine needs nothing set up; a
deployment sets the variable (and keeps the key in its secret manager).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from smartingest.errors import ConfigError, StateError

KEY_ENV = "SMARTINGEST_SECRET_KEY"
KEY_FILE = "secret.key"


class SecretBox:
    """Seals and opens definitions with the project's keys (see the module docstring)."""

    def __init__(self, keys: list[bytes], origin: str) -> None:
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError as exc:
            raise ConfigError(
                f"{origin}: not a key (32 url-safe base64-encoded bytes, as `smartingest secrets key` prints): {exc}"
            ) from exc
        self.origin = origin

    def seal(self, data: bytes) -> str:
        return self._fernet.encrypt(data).decode("ascii")

    def open(self, token: str, what: str) -> bytes:
        try:
            return self._fernet.decrypt(token.encode("ascii"))
        except InvalidToken:
            raise StateError(
                f"{what} cannot be decrypted with the key of {self.origin}: it was encrypted with another key "
                f"(set {KEY_ENV} to the key it was encrypted with, first, or after the new one)"
            ) from None

    def reseal(self, token: str, what: str) -> str:
        """The token encrypted again with the first key (for key rotation)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            self.open(token, what)  # raises the message that says what to do
            raise


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


def secret_box(home: Path, env: Mapping[str, str] | None = None) -> SecretBox:
    """The box of ``SMARTINGEST_SECRET_KEY``, else of the key file in ``home`` (created on first use)."""
    environ = os.environ if env is None else env
    value = environ.get(KEY_ENV, "").strip()
    if value:
        keys = [key.strip().encode("ascii") for key in value.split(",") if key.strip()]
        return SecretBox(keys, KEY_ENV)
    path = home / KEY_FILE
    if not path.exists():
        # Written whole to a file of this process, readable by its owner only, then linked into place: a
        # link never replaces a file, so of two processes starting together one key wins, and no reader
        # ever sees the file half-written.
        tmp = home / f".{KEY_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(new_key() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return SecretBox([path.read_text().strip().encode("ascii")], str(path))
