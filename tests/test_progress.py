"""Progress on a terminal: rows read and sent, with the rate, drawn by rich."""

from __future__ import annotations

import io
import time

from rich.console import Console

from smartingest.progress_display import TerminalProgress


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
