"""An Iterable-compatible HTTP server for demos, tests and benchmarks.

It serves Iterable's user, event, static-list and catalog endpoints (`/api/users/...`,
`/api/events/...`, `/api/lists...`, `/api/catalogs...`) as the contract in `iterable-api-docs.json`
describes them, enforces Iterable's rules (identity by project type, field types fixed by first
value, body size and rate limits, forgotten users, error codes), stores its data in SQLite, and can
inject faults. See docs/sandbox.md.

    from smartingest.sandbox import SandboxServer, SandboxSettings

    with SandboxServer(SandboxSettings(port=0, data_dir=tmp_path)) as sandbox:
        httpx.post(f"{sandbox.url}/api/users/update", headers={"Api-Key": sandbox.api_key}, json=...)
"""

from .app import create_app
from .server import SandboxServer, serve
from .settings import FaultSettings, ProjectType, SandboxSettings, StatusBurst
from .store import ProjectTypeMismatchError

__all__ = [
    "FaultSettings",
    "ProjectType",
    "ProjectTypeMismatchError",
    "SandboxServer",
    "SandboxSettings",
    "StatusBurst",
    "create_app",
    "serve",
]
