"""The docs stay true: the configuration reference matches the models, and every count is defined."""

from __future__ import annotations

from pathlib import Path

from smartingest.config.reference import render
from smartingest.store.tables import COUNT_NAMES

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_configuration_reference_is_generated_from_the_models():
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert render() in text, "docs/configuration.md is stale: regenerate it with python -m smartingest.config.reference"


def test_every_count_is_defined_in_runs_doc():
    text = (DOCS / "runs.md").read_text(encoding="utf-8")
    for name in COUNT_NAMES:
        assert f"`{name}`" in text, f"docs/runs.md does not define the count {name}"


def test_examples_are_valid_project_files():
    from smartingest.config import load_project

    for path in (DOCS.parent / "examples").glob("*.yaml"):
        project = load_project(path, env={"ITERABLE_API_KEY": "k"})
        assert project.syncs, path
