"""Project-file checks that need no connection: repeated keys, and mapping rules a run would enforce.

Each refusal is a ConfigError naming the key path, so `smartingest validate` catches it before any run.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from smartingest.config import parse_project
from smartingest.errors import ConfigError, MappingError
from smartingest.mapping.values import cast_static

PROJECT = """\
sources:
  s: {type: sqlite, path: x.db}
models:
  m: {source: s, table: users, primary_key: id}
destinations:
  d: {api_key: k}
syncs:
  x:
    model: m
    destination: d
    type: users
    mappings:
      - {from: email, to: email}
%s"""


def _mappings(*lines: str) -> str:
    return PROJECT % "".join(f"      - {line}\n" for line in lines)


def test_a_second_sync_with_the_same_name_is_refused_with_both_lines():
    text = PROJECT % "      - {from: a, to: a}\n" + (
        "  x:\n    model: m\n    destination: d\n    type: users\n    mappings: [{from: email, to: email}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_project(text, origin="p.yaml", env={})
    assert str(caught.value).startswith("p.yaml: duplicate key 'x' at syncs.x (lines 8 and 15)")


def test_a_second_source_with_the_same_name_is_refused():
    text = PROJECT.replace(
        "  s: {type: sqlite, path: x.db}\n", "  s: {type: sqlite, path: x.db}\n  s: {type: duckdb}\n"
    )
    with pytest.raises(ConfigError, match=r"duplicate key 's' at sources\.s \(lines 2 and 3\)"):
        parse_project(text % "", env={})


def test_a_key_repeated_inside_one_mapping_is_refused():
    with pytest.raises(
        ConfigError, match=r"duplicate key 'to' at syncs\.x\.mappings\[1\]\.to \(line 14, columns 19 and 26\)"
    ):
        parse_project(_mappings("{from: a, to: a, to: b}"), env={})
    block = PROJECT % "" + "    batch_size: 10\n    batch_size: 20\n"
    with pytest.raises(ConfigError, match=r"duplicate key 'batch_size' at syncs\.x\.batch_size \(lines 14 and 15\)"):
        parse_project(block, env={})


def test_merged_keys_may_still_be_overridden():
    text = PROJECT.replace("destinations:\n  d: {api_key: k}\n", "destinations:\n  d: &base {api_key: k}\n")
    text = text.replace("syncs:", "  e:\n    <<: *base\n    api_key: other\nsyncs:")
    project = parse_project(text % "", env={})
    assert project.destinations["e"].api_key.get_secret_value() == "other"


def test_a_field_cannot_be_both_a_value_and_an_object():
    with pytest.raises(ConfigError) as caught:
        parse_project(_mappings("{from: a, to: x}", "{from: b, to: y}", "{static: 1, to: x.z}"), env={})
    message = str(caught.value)
    assert message.startswith("<project>: syncs.x.mappings[3].to: 'x.z' makes 'x' an object")
    assert "mappings[1] maps a value to 'x'" in message


def test_paths_under_the_identifier_do_not_clash_with_it():
    # The identifier is sent beside dataFields, so dataFields.email.domain is a field of its own.
    project = parse_project(_mappings("{from: domain, to: email.domain}"), env={})
    assert [m.to for m in project.syncs["x"].mappings] == ["email", "email.domain"]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ("{static: abc, to: n, type: number}", "static value 'abc' is not a number"),
        ("{static: true, to: n, type: number}", "static value True is not a number"),
        ("{static: maybe, to: n, type: boolean}", "static value 'maybe' is not a boolean"),
        ("{static: '2024-13-01', to: n, type: date}", "static value '2024-13-01' is not a date"),
    ],
)
def test_a_static_value_that_does_not_cast_is_refused_at_load(mapping, message):
    with pytest.raises(ConfigError, match=r"syncs\.x\.mappings\[1\]\.static: " + message):
        parse_project(_mappings(mapping), env={})


def test_a_static_identifier_is_refused_at_load():
    with pytest.raises(ConfigError, match=r"syncs\.x\.mappings\[1\]\.to: userId identifies users"):
        parse_project(_mappings("{static: u1, to: userId}"), env={})


def test_the_mapping_compiler_casts_with_the_same_rule():
    assert cast_static("2024-01-31", "date", "m[0]") == "2024-01-31"
    assert cast_static("2024-01-31T13:45:00+02:00", "date", "m[0]") == "2024-01-31 11:45:00 +00:00"
    assert cast_static("42", "number", "m[0]") == 42
    with pytest.raises(MappingError, match=r"m\[0\]: static value 'abc' is not a number"):
        cast_static("abc", "number", "m[0]")


def test_validate_refuses_what_a_run_would_refuse(tmp_path):
    project = tmp_path / "p.yaml"
    project.write_text(_mappings("{from: a, to: x}", "{from: b, to: x.y}"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "smartingest", "--project", str(project), "validate"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SMARTINGEST_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 2, result.stderr
    assert "syncs.x.mappings[2].to: 'x.y' makes 'x' an object" in result.stderr
