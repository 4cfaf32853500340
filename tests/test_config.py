"""Project file models: regions, schedules, identifiers, references (pure validation, no I/O)."""

from __future__ import annotations

import pytest

from smartingest.config import parse_project
from smartingest.config.models import DestinationConfig, Schedule
from smartingest.errors import ConfigError

BASE = """
sources:
  s: {type: sqlite, path: x.db}
models:
  m: {source: s, table: users, primary_key: id}
destinations:
  d: {api_key: k, project_type: %(ptype)s}
syncs:
  x:
    model: m
    destination: d
    type: %(stype)s
    match_on: %(match)s
    mappings: [%(mappings)s]
"""


def _project(ptype="email", stype="users", match="email", mappings="{from: email, to: email}"):
    return parse_project(BASE % {"ptype": ptype, "stype": stype, "match": match, "mappings": mappings}, env={})


def test_regions_and_base_url():
    assert DestinationConfig(api_key="k").url == "https://api.iterable.com"
    assert DestinationConfig(api_key="k", region="eu").url == "https://api.eu.iterable.com"
    assert DestinationConfig(api_key="k", base_url="http://127.0.0.1:8765/").url == "http://127.0.0.1:8765"
    with pytest.raises(ValueError, match="http"):
        DestinationConfig(api_key="k", base_url="ftp://x")
    with pytest.raises(ValueError, match="empty"):
        DestinationConfig(api_key="  ")


def test_schedules():
    assert Schedule(every="15m").interval_minutes() == 15
    assert Schedule(every="2h").interval_minutes() == 120
    assert Schedule().manual
    with pytest.raises(ValueError, match="at most every 15 minutes"):
        Schedule(every="10m")
    with pytest.raises(ValueError, match="not a five-field cron expression"):
        Schedule(cron="* * *")
    with pytest.raises(ValueError, match="not both"):
        Schedule(every="1h", cron="0 * * * *")


def test_identifier_rules_by_project_type():
    assert _project().syncs["x"].identifier_field == "email"
    with pytest.raises(ConfigError, match="userID-based project matches users on user_id"):
        _project(ptype="userid")
    with pytest.raises(ConfigError, match="map a column to 'userId'"):
        _project(ptype="hybrid", match="user_id")
    assert _project(ptype="userid", match="user_id", mappings="{from: id, to: userId}").syncs["x"].match_on == "user_id"


def test_unsupported_sync_types_are_named():
    with pytest.raises(ConfigError, match=r"syncs\.x: set exactly one of 'event_name' or 'event_name_column'"):
        _project(stype="events")


def _sync(body: str, ptype: str = "email"):
    head = BASE.split("syncs:")[0] % {"ptype": ptype}
    return parse_project(head + "syncs:\n  x:\n    model: m\n    destination: d\n" + body, env={})


def test_each_sync_type_takes_only_its_own_keys():
    forget = "    type: user_deletion\n    action: forget\n    mappings: [{from: email, to: email}]\n"
    with pytest.raises(ConfigError, match=r"syncs\.x\.prefer_user_id: unknown key"):
        _sync(forget + "    prefer_user_id: true\n")
    assert _sync(forget).syncs["x"].action == "forget"
    with pytest.raises(ConfigError, match=r"syncs\.x\.catalog: required key is missing"):
        _sync("    type: catalog\n    mappings: [{from: name, to: name}]\n")
    with pytest.raises(ConfigError, match=r"syncs\.x\.type: email_change works in email-based projects only"):
        _sync(
            "    type: email_change\n    new_email: e\n    mappings: [{from: id, to: userId}]\n    match_on: user_id\n",
            "hybrid",
        )
    with pytest.raises(ConfigError, match=r"syncs\.x\.type: unknown sync type 'sms' \(one of: users, events, catalog"):
        _sync("    type: sms\n    mappings: [{from: email, to: email}]\n")


def test_mapping_targets_are_checked():
    with pytest.raises(ConfigError, match="several mappings write the same field: a"):
        _project(mappings="{from: email, to: email}, {from: x, to: a}, {static: 1, to: a}")
    with pytest.raises(ConfigError, match="not a field name or dot path"):
        _project(mappings="{from: email, to: email}, {from: x, to: 'a..b'}")


_FIELDS = {"ptype": "email", "stype": "users", "match": "email", "mappings": "{from: email, to: email}"}


def test_workers_on_a_redis_broker_share_their_pacing_through_it_unless_told_otherwise():
    def pacing(extra: str) -> dict:
        return parse_project((BASE % _FIELDS) + extra, env={}).pacing.model_dump()

    assert pacing("") == {"type": "local"}
    assert pacing("workers: {broker_url: 'redis://10.0.0.5:6379/1'}\n") == {
        "type": "redis",
        "url": "redis://10.0.0.5:6379/1",
    }
    assert pacing("workers: {broker_url: 'amqp://guest:guest@10.0.0.5:5672//'}\n") == {"type": "local"}
    chosen = "workers: {broker_url: 'redis://10.0.0.5:6379/1'}\nrate_limiter: {type: local}\n"
    assert pacing(chosen) == {"type": "local"}
