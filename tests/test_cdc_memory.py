"""The Basic engine's memory limit is a real bound, and running out of it is a clear error."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from smartingest.cdc.base import HashSpec
from smartingest.cdc.basic import BasicChangeDetector
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.errors import StateError
from smartingest.sources.registry import open_source

MODEL = ModelConfig(source="db", table="wide", primary_key="id")
SPEC = HashSpec("id", ("payload",), "fp")


@pytest.fixture
def wide_source(tmp_path: Path):
    # ~130 MB of hard-to-compress rows: more than the detector below may hold in memory at once.
    path = tmp_path / "wide.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE wide AS SELECT i AS id, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) || md5((i + 2)::VARCHAR) "
            "|| md5((i + 3)::VARCHAR) AS payload "
            "FROM range(1000000) t(i)"
        )
    return open_source("db", SourceConfig.model_validate({"type": "duckdb", "path": str(path)}))


def test_a_model_larger_than_the_memory_limit_is_diffed_by_spilling(wide_source, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state", memory_limit="48MB")
    change_set = detector.plan("wide", wide_source, MODEL, SPEC)
    try:
        assert change_set.counts.added == 1_000_000
        assert sum(batch.num_rows for batch in change_set.changes(100_000)) == 1_000_000
    finally:
        change_set.close()


def test_too_little_memory_is_a_clear_error(wide_source, tmp_path):
    detector = BasicChangeDetector(tmp_path / "state", memory_limit="1MB")
    with pytest.raises(StateError, match="cdc_memory_limit"):
        detector.plan("wide", wide_source, MODEL, SPEC)
    assert list((tmp_path / "state" / "wide").glob("staging-*")) == []
