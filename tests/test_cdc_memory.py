"""The engines' memory limit is a real bound on their local staging, and running out of it is a clear error."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from smartingest.cdc.base import HashSpec, Identity
from smartingest.cdc.basic import BasicChangeDetector
from smartingest.cdc.lightning import LightningChangeDetector
from smartingest.config.models import ModelConfig, SourceConfig
from smartingest.errors import StateError
from smartingest.sources.registry import open_source

MODEL = ModelConfig(source="db", table="wide", primary_key="id")
# The payload is each row's identifier too: shared identifiers are looked for among a million rows.
SPEC = HashSpec("id", ("payload",), "fp", Identity("payload", "email", ignore_case=True))


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


def _detector(engine: str, source, state: Path, memory_limit: str):
    if engine == "basic":
        return BasicChangeDetector(state, memory_limit=memory_limit)
    return LightningChangeDetector(source, "duckdb", state, memory_limit=memory_limit)


@pytest.mark.parametrize("engine", ["basic", "lightning"])
def test_a_model_larger_than_the_memory_limit_is_diffed_by_spilling(wide_source, tmp_path, engine):
    detector = _detector(engine, wide_source, tmp_path / "state", "48MB")
    change_set = detector.plan("wide", wide_source, MODEL, SPEC)
    try:
        assert change_set.counts.added == 1_000_000
        assert sum(batch.num_rows for batch in change_set.changes(100_000)) == 1_000_000
    finally:
        change_set.close()


@pytest.mark.parametrize("engine", ["basic", "lightning"])
def test_too_little_memory_is_a_clear_error(wide_source, tmp_path, engine):
    detector = _detector(engine, wide_source, tmp_path / "state", "1MB")
    with pytest.raises(StateError, match="cdc_memory_limit"):
        detector.plan("wide", wide_source, MODEL, SPEC)
    assert list((tmp_path / "state" / "wide").glob("staging-*")) == []
