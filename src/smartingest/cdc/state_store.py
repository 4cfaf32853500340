"""Where the Basic engine's CDC state lives: a local directory (the default), or an S3-compatible object
store, so that a sync's run can execute on any worker.

The engine always works on files in a local directory (DuckDB reads and writes them there); a store keeps
that directory's snapshot files (``snapshot.parquet``, ``checkpoint-NNNNNN.parquet``) where they last:

- ``pull`` before a plan makes the local files those of the store (downloading only what changed, by
  ETag; deleting local files the store no longer has);
- ``push`` after a file was written whole and made durable locally uploads it (an object PUT is atomic:
  readers see the old object or the new one);
- ``delete`` removes files the engine tidied away (checkpoints folded into a new base file), always after
  the file that makes them unnecessary was pushed, so a crash in between leaves only files readers ignore.

One run per sync at a time holds across machines through the sync's lease (engine/lease.py), so no two
processes write one sync's state at once. The object store is reached with boto3 (the ``s3`` extra), its
credentials from boto3's usual chain (``AWS_ACCESS_KEY_ID``..., an instance role).
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from smartingest.config.models import S3StateStoreConfig
from smartingest.errors import MissingDriverError, StateError

_STATE_FILES = ("snapshot.parquet", "checkpoint-")  # what a store keeps of a sync's directory
_ETAGS = ".remote-etags.json"
_MARKER = "engine.json"  # which engine holds the snapshot (cdc/switch.py)


class StateStore(Protocol):
    """Keeps the snapshot files of each sync's local state directory (see the module docstring)."""

    def pull(self, sync_key: str, directory: Path) -> None:
        """Make the snapshot files in ``directory`` those the store holds for the sync."""
        ...

    def push(self, sync_key: str, path: Path) -> None:
        """Store one snapshot file, written whole and durable in the sync's local directory."""
        ...

    def delete(self, sync_key: str, names: list[str]) -> None:
        """Remove snapshot files the sync no longer needs."""
        ...

    def delete_all(self, sync_key: str) -> None:
        """Forget every snapshot file of the sync."""
        ...


class LocalStateStore:
    """The local directory is the store: nothing to copy."""

    def pull(self, sync_key: str, directory: Path) -> None:
        return None

    def push(self, sync_key: str, path: Path) -> None:
        return None

    def delete(self, sync_key: str, names: list[str]) -> None:
        return None

    def delete_all(self, sync_key: str) -> None:
        return None


class S3StateStore:
    """Snapshot files as objects ``<prefix>/<sync key>/<file>`` in one bucket of an S3-compatible store."""

    def __init__(self, config: S3StateStoreConfig) -> None:
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError as exc:
            raise MissingDriverError("state_store type s3 needs boto3: pip install 'smartingest[s3]'") from exc
        self.bucket = config.bucket
        self.prefix = config.prefix.strip("/")
        self.where = f"s3://{self.bucket}/{self.prefix}"
        options = Config(
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=config.timeout_seconds,
            read_timeout=config.timeout_seconds,
            s3={"addressing_style": "path" if config.endpoint_url else "auto"},
        )
        self.client = boto3.client("s3", endpoint_url=config.endpoint_url, region_name=config.region, config=options)
        self._errors: tuple[type[BaseException], ...] = (BotoCoreError, ClientError, OSError)

    def pull(self, sync_key: str, directory: Path) -> None:
        remote = self._list(sync_key)
        etags_path = directory / _ETAGS
        known = json.loads(etags_path.read_text()) if etags_path.exists() else {}
        for name, etag in remote.items():
            local = directory / name
            if local.exists() and known.get(name) == etag:
                continue
            tmp = local.with_name(local.name + ".download")
            key = self._key(sync_key, name)
            self._call("download", sync_key, name, partial(self.client.download_file, self.bucket, key, str(tmp)))
            os.replace(tmp, local)
        for local in directory.iterdir():
            ours = local.name == _MARKER or (local.name.startswith(_STATE_FILES) and local.suffix == ".parquet")
            if ours and local.name not in remote:
                local.unlink()
        etags_path.write_text(json.dumps(remote))

    def push(self, sync_key: str, path: Path) -> None:
        key = self._key(sync_key, path.name)
        self._call("upload", sync_key, path.name, lambda: self.client.upload_file(str(path), self.bucket, key))
        head = self._call(
            "read back", sync_key, path.name, lambda: self.client.head_object(Bucket=self.bucket, Key=key)
        )
        etags_path = path.parent / _ETAGS
        known = json.loads(etags_path.read_text()) if etags_path.exists() else {}
        known[path.name] = head["ETag"]
        etags_path.write_text(json.dumps(known))

    def delete(self, sync_key: str, names: list[str]) -> None:
        for name in names:
            key = self._key(sync_key, name)
            self._call("delete", sync_key, name, lambda key=key: self.client.delete_object(Bucket=self.bucket, Key=key))

    def delete_all(self, sync_key: str) -> None:
        self.delete(sync_key, list(self._list(sync_key)))

    def _list(self, sync_key: str) -> dict[str, str]:
        """The sync's snapshot files in the store: name -> ETag."""
        prefix = self._key(sync_key, "")
        found: dict[str, str] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call("list", sync_key, "", lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=prefix)))
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix) :]
                if "/" not in name and name.startswith(_STATE_FILES):
                    found[name] = item["ETag"]
        return found

    def _key(self, sync_key: str, name: str) -> str:
        return f"{self.prefix}/{sync_key}/{name}" if self.prefix else f"{sync_key}/{name}"

    def _call(self, action: str, sync_key: str, name: str, call: Any) -> Any:
        try:
            return call()
        except self._errors as exc:
            raise StateError(
                f"the CDC state store {self.where} failed to {action} {sync_key}/{name}: {exc} (check state_store "
                "and the store's credentials and permissions)"
            ) from exc
