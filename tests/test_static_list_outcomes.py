"""Static lists: what each endpoint refuses or finds nothing to do for, read back to rows with reason codes
(subscribe and unsubscribe over real HTTP, against the sandbox's rules)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smartingest import service
from smartingest.config.models import DestinationConfig
from smartingest.errors import ConfigError
from smartingest.iterable.client import IterableClient
from smartingest.iterable.list_members import ListMembersWriter
from smartingest.iterable.outcomes import Rejected, Verdict
from smartingest.iterable.records import MappedRecord
from smartingest.sandbox import ProjectType, SandboxServer, SandboxSettings
from tests.conftest import API_KEY, SandboxAdmin
from tests.static_list_support import SYNC, SandboxLists, create_members, list_workspace, members_sql


def _codes(ws: service.Workspace, run_id: int, status: str) -> dict[str, str | None]:
    return {row.pk: row.code for row in service.run_rows(ws, run_id, status=status, limit=100)}


def test_subscribe_rejections_come_back_to_their_rows_with_reason_codes(pg, sandbox, tmp_path: Path):
    create_members(pg, 4)
    pg.execute("ALTER TABLE members ADD COLUMN score text")
    pg.execute(
        """INSERT INTO members (email, first_name, plan, score) VALUES
             ('not-an-email', 'Bad', 'free', NULL),
             ('Mixed@Example.com', 'Mixed', 'free', NULL),
             ('gone@example.com', 'Gone', 'free', NULL),
             ('', 'Blank', 'free', NULL),
             ('scored@example.com', 'Scored', 'free', 'high')"""
    )
    lists = SandboxLists(sandbox.url)
    # score is a number in the project already; gone@ was forgotten (GDPR).
    lists.update_users([{"email": "seed@example.com", "dataFields": {"score": 5}}, {"email": "gone@example.com"}])
    lists.post("/api/users/forget", {"email": "gone@example.com"})
    sql = f"select email, first_name, plan, score from {pg.schema}.members"
    mappings = [{"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}, {"from": "score", "to": "score"}]
    ws = list_workspace(tmp_path, sandbox.url, sql, mappings=mappings)

    first = service.run(ws, SYNC)
    assert first.status == "warning", first.error
    assert (first.counts["synced"], first.counts["rejected"]) == (4, 5)
    assert _codes(ws, first.run_id, "rejected") == {
        "not-an-email": "invalid_email",
        "Mixed@Example.com": "key_not_lower_case",
        "gone@example.com": "forgotten",
        "": "no_identifier",
        "scored@example.com": "type_mismatch",
    }
    reasons = {row.pk: row.reason or "" for row in service.run_rows(ws, first.run_id, status="rejected")}
    assert "InvalidEmailAddressError" in reasons["not-an-email"]
    assert "SELECT lower(email) AS email" in reasons["Mixed@Example.com"]
    assert "field 'score' is of type long" in reasons["scored@example.com"]
    assert first.warnings[0].startswith("field type conflict: field 'score' is of type long")
    assert lists.members(lists.id_of("VIPs")) == {f"member{i}@example.com" for i in range(1, 5)}

    # The rejected rows keep their old (absent) state: they, and only they, are sent again.
    second = service.run(ws, SYNC)
    assert (second.counts["added"], second.counts["unchanged"], second.counts["rejected"]) == (5, 4, 5)


def test_unsubscribing_a_user_iterable_no_longer_has_is_skipped_not_failed(pg, sandbox, tmp_path: Path):
    create_members(pg, 4)
    lists = SandboxLists(sandbox.url)
    ws = list_workspace(tmp_path, sandbox.url, members_sql(pg))
    assert service.run(ws, SYNC).counts["synced"] == 4
    lists.delete("/api/users/member2@example.com")
    lists.post("/api/users/forget", {"email": "member3@example.com"})
    pg.execute(
        "DELETE FROM members WHERE email IN ('member1@example.com', 'member2@example.com', 'member3@example.com')"
    )

    result = service.run(ws, SYNC)
    assert result.status == "succeeded", result.error
    assert (result.counts["removed"], result.counts["synced"], result.counts["skipped"]) == (3, 1, 2)
    assert _codes(ws, result.run_id, "skipped") == {
        "member2@example.com": "no_such_user",
        "member3@example.com": "forgotten",
    }
    assert lists.members(lists.id_of("VIPs")) == {"member4@example.com"}
    assert service.plan(ws, SYNC).counts.removed == 0  # skipped rows are committed: they left the snapshot


@pytest.fixture
def project_sandbox(tmp_path: Path) -> Iterator[Callable[[ProjectType], SandboxServer]]:
    servers: list[SandboxServer] = []

    def start(project_type: ProjectType) -> SandboxServer:
        settings = SandboxSettings(
            port=0, api_key=API_KEY, data_dir=tmp_path / project_type, project_type=project_type, rate_limits=False
        )
        servers.append(SandboxServer(settings).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize(
    ("project_type", "match_on", "known", "unknown"),
    [
        ("userid", "user_id", ["u-1", "u-2"], "u-3"),
        ("hybrid", "email", ["a@example.com", "b@example.com"], "c@example.com"),
    ],
)
def test_update_existing_users_only_skips_users_iterable_does_not_have(
    pg, project_sandbox, tmp_path: Path, project_type: ProjectType, match_on: str, known: list[str], unknown: str
):
    server = project_sandbox(project_type)
    lists = SandboxLists(server.url)
    identifier = "userId" if match_on == "user_id" else "email"
    lists.update_users([{identifier: value, "dataFields": {"plan": "old"}} for value in known])
    pg.execute("CREATE TABLE people (ident text PRIMARY KEY, plan text)")
    for value in [*known, unknown]:
        pg.execute("INSERT INTO people VALUES (%s, 'new')", (value,))
    ws = list_workspace(
        tmp_path,
        server.url,
        f"select ident, plan from {pg.schema}.people",
        sync={"match_on": match_on, "update_existing_users_only": True},
        mappings=[{"from": "ident", "to": identifier}, {"from": "plan", "to": "plan"}],
        destination={"project_type": project_type},
        primary_key="ident",
    )
    result = service.run(ws, SYNC)
    assert result.status == "succeeded", result.error
    assert (result.counts["synced"], result.counts["skipped"]) == (2, 1)
    (skipped,) = service.run_rows(ws, result.run_id, status="skipped")
    assert (skipped.pk, skipped.code) == (unknown, "no_such_user")
    assert "update_existing_users_only" in (skipped.reason or "")
    assert lists.members(lists.id_of("VIPs")) == set(known)
    assert len(SandboxAdmin(server).http.get("/_sandbox/users").json()["users"]) == 2  # nobody was created
    assert service.run(ws, SYNC).counts["unchanged"] == 3  # a skipped row is committed


def test_update_existing_users_only_is_refused_in_an_email_based_project(pg, sandbox, admin, tmp_path: Path):
    create_members(pg, 2)
    ws = list_workspace(tmp_path, sandbox.url, members_sql(pg), sync={"update_existing_users_only": True})
    failed = service.run(ws, SYNC)
    assert failed.status == "failed"
    assert f"syncs.{SYNC}.update_existing_users_only: Iterable respects it in userID-based and hybrid" in (
        failed.error or ""
    )
    with pytest.raises(ConfigError, match="update_existing_users_only"):
        service.plan(ws, SYNC)
    assert admin.requests("POST /api/lists/subscribe") == 0


def test_a_list_gone_mid_run_rejects_its_rows_without_splitting(sandbox, admin: SandboxAdmin):
    joining = [
        MappedRecord(str(i), "added", f"m{i}@example.com", None, f'{{"email":"m{i}@example.com"}}'.encode())
        for i in range(6)
    ]
    leaving = [MappedRecord(f"x{i}@example.com", "removed", f"x{i}@example.com", None, b"{}") for i in range(3)]
    destination = DestinationConfig(api_key=API_KEY, base_url=sandbox.url)

    async def deliver() -> list[Verdict]:
        async with IterableClient(destination) as client:
            writer = ListMembersWriter(client, list_id=4242, batch_size=3)
            verdicts = []
            for batch in writer.batches([*joining, *leaving]):
                verdicts += [verdict for _, verdict in await writer.deliver(batch)]
            return verdicts

    verdicts = asyncio.run(deliver())
    assert len(verdicts) == 9
    assert all(isinstance(v, Rejected) and v.code == "unknown_list" for v in verdicts)
    # One refused request per endpoint; the later batch to subscribe was refused without a request.
    assert admin.requests("POST /api/lists/subscribe") == 1
    assert admin.requests("POST /api/lists/unsubscribe") == 1
