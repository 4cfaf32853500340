"""Schedules: the 15-minute floor, cron in a time zone, each slot queued once (also by two schedulers at
once), one run after downtime rather than one per missed slot, disabled and manual syncs left alone.
The clock is the test's; real PostgreSQL, the sandbox, SQLite and PostgreSQL metadata databases."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest

from smartingest import service
from smartingest.errors import ConfigError
from tests.conftest import create_customers, fresh_pg_database, write_project

SYNC = "customers_to_users"
UTC = dt.UTC


def _at(hour: int, minute: int = 0, day: int = 7) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, monkeypatch) -> Iterator[None]:
    if request.param == "sqlite":
        monkeypatch.delenv("SMARTINGEST_DATABASE_URL", raising=False)
        yield
        return
    with fresh_pg_database() as url:
        monkeypatch.setenv("SMARTINGEST_DATABASE_URL", url)
        yield


def _workspace(pg, sandbox, tmp_path, schedule, **sync):
    create_customers(pg, 2)
    sql = f"select id, email, first_name, plan, ltv, city, signed_up_at from {pg.schema}.customers"
    project = write_project(tmp_path, sandbox.url, sql=sql, sync={"schedule": schedule, **sync})
    return service.open_workspace(project, home=tmp_path / "home")


def _queued(ws) -> list[int]:
    return service.queued_runs(ws)


def test_each_slot_is_queued_once_and_downtime_costs_one_run(pg, sandbox, tmp_path, database):
    ws = _workspace(pg, sandbox, tmp_path, {"every": "1h"})
    first = service.schedule_tick(ws, _at(4, 7))  # a newly scheduled sync runs for its latest slot (04:00)
    assert len(first) == 1 and _queued(ws) == first
    assert service.schedule_tick(ws, _at(4, 50)) == []  # same slot
    assert service.execute_run(ws, first[0]).status == "succeeded"

    second = service.schedule_tick(ws, _at(5, 0))
    assert len(second) == 1 and second != first
    service.execute_run(ws, second[0])
    # Down from 05:01 to 09:42: four slots missed, one run.
    assert len(service.schedule_tick(ws, _at(9, 42))) == 1
    assert service.schedule_tick(ws, _at(9, 43)) == []
    [record] = [r for r in service.list_runs(ws, SYNC) if r.status == "queued"]
    assert record.trigger == "schedule"


def test_a_slot_that_comes_while_a_run_waits_adds_no_second_queued_run(pg, sandbox, tmp_path, database):
    ws = _workspace(pg, sandbox, tmp_path, {"every": "15m"})
    [waiting] = service.schedule_tick(ws, _at(4, 1))
    assert service.schedule_tick(ws, _at(4, 16)) == [waiting]  # the run still waiting is the one
    assert _queued(ws) == [waiting]


def test_two_schedulers_at_once_queue_one_run(pg, sandbox, tmp_path, database):
    ws = _workspace(pg, sandbox, tmp_path, {"every": "30m"})
    replicas = [service.open_workspace(tmp_path / "smartingest.yaml", home=tmp_path / "home") for _ in range(4)]
    results: list[list[int]] = []
    barrier = threading.Barrier(len(replicas))

    def tick(replica) -> None:
        barrier.wait()
        results.append(service.schedule_tick(replica, _at(6, 31)))

    threads = [threading.Thread(target=tick, args=(replica,)) for replica in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert len(_queued(ws)) == 1


def test_cron_slots_are_in_their_time_zone(pg, sandbox, tmp_path):
    ws = _workspace(pg, sandbox, tmp_path, {"cron": "0 9 * * *", "timezone": "Europe/Paris"})
    [first] = service.schedule_tick(ws, _at(7, 59))  # latest slot: yesterday 09:00 Paris
    service.execute_run(ws, first)
    assert service.schedule_tick(ws, _at(7, 59, day=7)) == []
    assert len(service.schedule_tick(ws, _at(8, 0))) == 1  # 09:00 in Paris is 08:00 UTC in December
    [summary] = service.list_syncs(ws)
    assert summary.next_run is not None and summary.next_run.hour == 8 and summary.next_run.tzinfo is not None


@pytest.mark.parametrize("schedule", [{"every": "1h"}, "manual"], ids=["disabled", "manual"])
def test_disabled_and_manual_syncs_are_not_scheduled(pg, sandbox, tmp_path, schedule):
    enabled = schedule == "manual"
    ws = _workspace(pg, sandbox, tmp_path, schedule, enabled=enabled)
    assert service.schedule_tick(ws, _at(4, 7)) == []
    [summary] = service.list_syncs(ws)
    assert summary.next_run is None


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"every": "5m"}, "syncs.customers_to_users.schedule: every '5m' is too frequent"),
        ({"cron": "*/10 * * * *"}, "fires more often than every 15 minutes"),
        ({"cron": "0 9 * *"}, "is not a five-field cron expression"),
        ({"cron": "0 9 * * *", "timezone": "Europe/Atlantis"}, "timezone 'Europe/Atlantis' is not a time zone"),
    ],
    ids=["interval", "cron floor", "cron fields", "zone"],
)
def test_schedules_that_cannot_be_run_are_refused_with_the_reason(sandbox, tmp_path, schedule, message):
    project = write_project(tmp_path, sandbox.url, sync={"schedule": schedule})
    with pytest.raises(ConfigError, match=message):
        service.open_workspace(project, home=tmp_path / "home")
