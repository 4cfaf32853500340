"""What the static-list tests share: a members table, a project whose key is the identifier, and a view of
the sandbox's lists through its own read endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

from smartingest import service
from tests.conftest import API_KEY, PgSchema, write_project

SYNC = "customers_to_users"  # the sync write_project defines
LIST_MAPPINGS = [
    {"from": "email", "to": "email"},
    {"from": "first_name", "to": "firstName"},
    {"from": "plan", "to": "plan"},
]


def create_members(pg: PgSchema, n: int, start: int = 1) -> None:
    """A members table keyed by email (lower-case), with n rows numbered from start."""
    pg.execute("CREATE TABLE IF NOT EXISTS members (email text PRIMARY KEY, first_name text, plan text)")
    pg.execute(
        """INSERT INTO members
           SELECT 'member' || i || '@example.com', 'First' || i, (ARRAY['free','pro','team'])[1 + i %% 3]
           FROM generate_series(%s::int, %s::int) AS i""",
        (start, start + n - 1),
    )


def members_sql(pg: PgSchema) -> str:
    return f"select email, first_name, plan from {pg.schema}.members"


def list_workspace(
    tmp_path: Path,
    base_url: str,
    sql: str,
    sync: dict[str, Any] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    destination: dict[str, Any] | None = None,
    primary_key: str = "email",
) -> service.Workspace:
    """A project with one static_list sync (list 'VIPs' unless ``sync`` says otherwise) whose model is keyed
    by ``primary_key``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_project(
        tmp_path,
        base_url,
        sql=sql,
        mappings=mappings or LIST_MAPPINGS,
        destination=destination,
        sync={"type": "static_list", "list": {"name": "VIPs"}, **(sync or {})},
    )
    project = yaml.safe_load(path.read_text(encoding="utf-8"))
    project["models"]["customers"]["primary_key"] = primary_key
    path.write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    return service.open_workspace(path, home=tmp_path / "home")


class SandboxLists:
    """The sandbox's lists and users, read (and set up) through Iterable's own endpoints."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Api-Key": API_KEY}, timeout=30)

    def all(self) -> list[dict[str, Any]]:
        return self.http.get("/api/lists").json()["lists"]

    def id_of(self, name: str) -> int:
        (found,) = [item["id"] for item in self.all() if item["name"] == name]
        return found

    def create(self, name: str) -> int:
        answer = self.http.post("/api/lists", json={"name": name})
        answer.raise_for_status()
        return answer.json()["listId"]

    def members(self, list_id: int) -> set[str]:
        """Who is in the list, by the project's identifier."""
        answer = self.http.get("/api/lists/getUsers", params={"listId": list_id})
        answer.raise_for_status()
        return set(answer.text.splitlines())

    def user(self, email: str) -> dict[str, Any]:
        answer = self.http.get("/api/users/getByEmail", params={"email": email})
        answer.raise_for_status()
        return answer.json()["user"]

    def update_users(self, users: list[dict[str, Any]]) -> None:
        answer = self.http.post("/api/users/bulkUpdate", json={"users": users})
        answer.raise_for_status()
        assert answer.json()["failCount"] == 0, answer.json()

    def post(self, path: str, body: dict[str, Any]) -> None:
        self.http.post(path, json=body).raise_for_status()

    def delete(self, path: str) -> None:
        self.http.delete(path).raise_for_status()
