"""The sync quota: at most sync_quota syncs across the organization's production projects; test projects
do not count; a production sync deleted after it ran counts until its month ends. The clock is the
test's; real PostgreSQL and the sandbox; definitions in the metadata database."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from smartingest import service
from smartingest.errors import QuotaError
from smartingest.repository.secrets import KEY_ENV
from tests.conftest import API_KEY, create_customers, write_project

NOV = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
DEC = dt.datetime(2026, 12, 1, 0, 0, 1, tzinfo=dt.UTC)


@pytest.fixture
def ws(pg, sandbox, tmp_path, monkeypatch, metadata_database):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(KEY_ENV, raising=False)
    create_customers(pg, 2)
    ws = service.open_workspace(home=tmp_path / "home")
    source = {"type": "postgres", "host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres"}
    service.save_definition(ws, "source", "warehouse", source)
    sql = f"select id, email, plan from {pg.schema}.customers"
    service.save_definition(ws, "model", "customers", {"source": "warehouse", "sql": sql, "primary_key": "id"})
    for name, environment, organization in (
        ("live", "production", "default"),
        ("staging", "test", "default"),
        ("acme_live", "production", "acme"),
    ):
        destination = {
            "api_key": API_KEY,
            "base_url": sandbox.url,
            "environment": environment,
            "organization": organization,
            "rate_limit_scale": 100,
        }
        service.save_definition(ws, "destination", name, destination)
    return ws


def _sync(destination: str) -> dict:
    mappings = [{"from": "email", "to": "email"}, {"from": "plan", "to": "plan"}]
    return {"type": "users", "model": "customers", "destination": destination, "mappings": mappings}


def test_the_sixth_production_sync_is_refused_and_test_syncs_do_not_count(ws):
    for i in range(5):
        service.save_definition(ws, "sync", f"p{i}", _sync("live"), now=NOV)
    for i in range(3):
        service.save_definition(ws, "sync", f"t{i}", _sync("staging"), now=NOV)
    with pytest.raises(
        QuotaError, match=r"may hold 5 syncs \(sync_quota\), and this would make 6: p0, p1, p2, p3, p4, p5"
    ):
        service.save_definition(ws, "sync", "p5", _sync("live"), now=NOV)
    with pytest.raises(QuotaError):  # moving a test sync to production counts too
        service.save_definition(ws, "sync", "t0", _sync("live"), now=NOV)
    service.save_definition(ws, "sync", "p0", {**_sync("live"), "batch_size": 10}, now=NOV)  # an edit is fine
    assert sorted(service.open_workspace(home=ws.home).config.syncs) == ["p0", "p1", "p2", "p3", "p4", "t0", "t1", "t2"]


def test_a_deleted_sync_that_ran_counts_until_the_month_ends(ws):
    for i in range(5):
        service.save_definition(ws, "sync", f"p{i}", _sync("live"), now=NOV)
    service.run(ws, "p0")
    service.delete_definition(ws, "sync", "p0", now=NOV)  # it ran: it counts until November ends
    service.delete_definition(ws, "sync", "p1", now=NOV)  # it never ran: it does not
    service.save_definition(ws, "sync", "n1", _sync("live"), now=NOV)
    with pytest.raises(QuotaError, match=r"1 deleted this month after running \(p0\)"):
        service.save_definition(ws, "sync", "n2", _sync("live"), now=NOV)
    service.save_definition(ws, "sync", "n2", _sync("live"), now=DEC)  # a new month


def test_each_organization_has_its_own_quota_and_the_usage_says_what_counts(ws):
    for i in range(5):
        service.save_definition(ws, "sync", f"p{i}", _sync("live"), now=NOV)
        service.save_definition(ws, "sync", f"a{i}", _sync("acme_live"), now=NOV)  # acme's count apart
    service.save_definition(ws, "sync", "t0", _sync("staging"), now=NOV)
    with pytest.raises(QuotaError, match=r"^organization acme's production projects may hold 5 syncs .* a0, a1"):
        service.save_definition(ws, "sync", "a5", _sync("acme_live"), now=NOV)
    service.run(ws, "a0")
    service.delete_definition(ws, "sync", "a0", now=NOV)
    with pytest.raises(QuotaError, match=r"deleted this month after running \(a0\)"):
        service.save_definition(ws, "sync", "a5", _sync("acme_live"), now=NOV)
    usage = {org.organization: org.as_dict() for org in service.quota_usage(ws, now=NOV)}
    assert usage == {
        "acme": {
            "organization": "acme",
            "limit": 5,
            "production_syncs": ["a1", "a2", "a3", "a4"],
            "deleted_this_month": ["a0"],
            "used": 5,
            "remaining": 0,
        },
        "default": {
            "organization": "default",
            "limit": 5,
            "production_syncs": ["p0", "p1", "p2", "p3", "p4"],
            "deleted_this_month": [],
            "used": 5,
            "remaining": 0,
        },
    }
    assert service.quota_usage(ws, now=DEC)[0].as_dict()["remaining"] == 1  # a new month: a0 no longer counts
    # Moving a project to another organization moves its syncs: acme would hold 9.
    with pytest.raises(QuotaError, match=r"organization acme's .* would make 9"):
        service.save_definition(
            ws,
            "destination",
            "live",
            {"api_key": API_KEY, "base_url": "http://127.0.0.1:9", "organization": "acme"},
            now=DEC,
        )


def test_a_project_file_over_the_quota_is_refused(sandbox, tmp_path):
    project = write_project(tmp_path, sandbox.url, destination={"environment": "production"})
    doc = yaml.safe_load(project.read_text())
    for i in range(5):
        doc["syncs"][f"copy{i}"] = dict(doc["syncs"]["customers_to_users"])
    project.write_text(yaml.safe_dump(doc))
    with pytest.raises(QuotaError, match=r"may hold 5 syncs \(sync_quota\), and this would make 6"):
        service.open_workspace(project, home=tmp_path / "home")
    doc["sync_quota"] = None
    project.write_text(yaml.safe_dump(doc))
    assert len(service.open_workspace(project, home=tmp_path / "home").config.syncs) == 6
