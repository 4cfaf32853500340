"""CDC state in an S3-compatible object store: a run on one machine (here: one SMARTINGEST_HOME) leaves the
snapshot where a run on another finds it. Against moto's S3 server, started on loopback, real PostgreSQL
and the sandbox over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from smartingest import service
from smartingest.errors import StateError
from tests.conftest import create_customers, write_project

SYNC = "customers_to_users"
BUCKET = "cdc-state"


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._server.server_port}"  # type: ignore[union-attr]
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_url, monkeypatch) -> Iterator[object]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", endpoint_url=s3_url)
    s3.create_bucket(Bucket=BUCKET)
    yield s3
    for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    s3.delete_bucket(Bucket=BUCKET)


def _project(tmp_path: Path, sandbox_url: str, sql: str, store: dict) -> Path:
    project = write_project(tmp_path, sandbox_url, sql=sql)
    doc = yaml.safe_load(project.read_text())
    doc["state_store"] = store
    project.write_text(yaml.safe_dump(doc, sort_keys=False))
    return project


def _keys(s3) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_a_snapshot_in_the_object_store_serves_every_machine(pg, sandbox, admin, tmp_path, s3_url, bucket):
    create_customers(pg, 50)
    sql = f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"
    project = _project(tmp_path, sandbox.url, sql, {"type": "s3", "bucket": BUCKET, "endpoint_url": s3_url})
    one = service.open_workspace(project, home=tmp_path / "machine-1")
    other = service.open_workspace(project, home=tmp_path / "machine-2")

    assert service.run(one, SYNC).counts["added"] == 50
    assert _keys(bucket) == [f"smartingest/{SYNC}/snapshot.parquet"]
    assert service.plan(other, SYNC).counts.unchanged == 50  # the other machine found the snapshot

    pg.execute("UPDATE customers SET plan = 'enterprise' WHERE id = 2")
    run = service.run(other, SYNC)
    assert (run.counts["changed"], run.counts["synced"]) == (1, 1)
    assert _keys(bucket) == [  # the base file and the run's checkpoint
        f"smartingest/{SYNC}/checkpoint-000001.parquet",
        f"smartingest/{SYNC}/snapshot.parquet",
    ]
    assert service.plan(one, SYNC).counts.changed == 0  # ...which the first machine reads back
    assert [s.snapshot_rows for s in service.list_syncs(one)] == [50]

    # A larger change folds the checkpoints into a new base file: gone from the store too.
    pg.execute("UPDATE customers SET plan = 'ultimate' WHERE id <= 20")
    assert service.run(one, SYNC).counts["synced"] == 20
    assert _keys(bucket) == [f"smartingest/{SYNC}/snapshot.parquet"]
    assert service.plan(other, SYNC).counts.changed == 0

    assert service.reset(other, SYNC) is True
    assert _keys(bucket) == []
    assert service.plan(one, SYNC).counts.added == 50


def test_a_store_that_cannot_be_reached_fails_the_run_naming_it(pg, sandbox, tmp_path, bucket):
    create_customers(pg, 2)
    sql = f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"
    store = {"type": "s3", "bucket": BUCKET, "endpoint_url": "http://127.0.0.1:9", "timeout_seconds": 1}
    ws = service.open_workspace(_project(tmp_path, sandbox.url, sql, store), home=tmp_path / "home")
    run = service.run(ws, SYNC)
    assert run.status == "failed"
    assert run.error is not None and "the CDC state store s3://cdc-state/smartingest failed to list" in run.error
    with pytest.raises(StateError, match="check state_store"):
        service.plan(ws, SYNC)
