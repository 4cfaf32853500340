"""Sync types by name, imported when first used."""

from __future__ import annotations

import importlib

from smartingest.errors import ConfigError
from smartingest.synctypes.base import SyncType

# type name -> module that defines SYNC_TYPE
_MODULES = {
    "users": "smartingest.synctypes.users",
    "catalog": "smartingest.synctypes.catalog",
    "events": "smartingest.synctypes.events",
    "email_change": "smartingest.synctypes.email_change",
    "user_deletion": "smartingest.synctypes.user_deletion",
    "static_list": "smartingest.synctypes.static_list",
}


def sync_type(name: str) -> SyncType:
    """The sync type called ``name``; raises ConfigError listing the types this version runs."""
    module = _MODULES.get(name)
    if module is None:
        raise ConfigError(f"sync type {name!r} is not supported yet (supported: {', '.join(_MODULES)})")
    found: SyncType = importlib.import_module(module).SYNC_TYPE
    return found
