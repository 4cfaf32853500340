"""Progress on a terminal: rows read and sent, with the rate, drawn by rich; and a run's progress kept in
the ledger for a UI or another process to watch."""

from __future__ import annotations

import io
import time

from rich.console import Console

from smartingest import service
from smartingest.progress_display import TerminalProgress
from tests.conftest import create_customers


def test_terminal_progress_shows_rows_and_rate():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with TerminalProgress(console) as progress:
        progress.phase("reading")
        progress.advance(500)
        time.sleep(0.05)
        progress.phase("sending", 1000)
        progress.advance(400)
        time.sleep(0.05)
        progress.advance(600)
        progress._progress.refresh()
        text = buffer.getvalue()
    assert "sending" in text
    assert "1000/1000" in text
    assert "rows/s" in text


def test_disabled_progress_prints_nothing():
    buffer = io.StringIO()
    with TerminalProgress(Console(file=buffer), enabled=False) as progress:
        progress.phase("sending", 10)
        progress.advance(10)
    assert buffer.getvalue() == ""


class Phases:
    """A Progress that keeps what it was told, and what the ledger held for the run at each phase."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.seen: list[tuple[str, dict | None]] = []

    def phase(self, name: str, total: int | None = None) -> None:
        runs = self.ws.ledger.list_runs(limit=1)
        self.seen.append((name, runs[0].progress if runs else None))

    def advance(self, rows: int) -> None:
        pass


def test_a_run_keeps_its_progress_in_the_ledger_for_others_to_watch(pg, sandbox, workspace_factory):
    create_customers(pg, 30)
    ws = workspace_factory(sandbox.url, sql=f"select * from {pg.schema}.customers")
    watcher = Phases(ws)
    result = service.run(ws, "customers_to_users", progress=watcher)
    assert result.error is None, result.error
    assert [name for name, _ in watcher.seen] == ["reading", "sending"]
    assert watcher.seen[1][1] is not None and watcher.seen[1][1]["phase"] == "reading"  # reading, as recorded
    record = service.get_run(ws, result.run_id)
    assert record is not None and record.progress is not None
    assert (record.progress["phase"], record.progress["total"], record.progress["done"]) == ("sending", 30, 30)
    assert record.progress["phase_started_at"] <= record.progress["updated_at"]
