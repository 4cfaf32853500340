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
    with pytest.raises(ValueError, match="five fields"):
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
    with pytest.raises(ConfigError, match="'events' is not supported yet"):
        _project(stype="events")


def test_mapping_targets_are_checked():
    with pytest.raises(ConfigError, match="several mappings write the same field: a"):
        _project(mappings="{from: email, to: email}, {from: x, to: a}, {static: 1, to: a}")
    with pytest.raises(ConfigError, match="not a field name or dot path"):
        _project(mappings="{from: email, to: email}, {from: x, to: 'a..b'}")
