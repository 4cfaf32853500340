"""`smartingest demo` (what `make demo` runs) end to end on a small sample: a Users and an Events sync run
twice each, money values arrive exactly."""

from __future__ import annotations

import io
import re
from decimal import Decimal

from rich.console import Console

from smartingest.cli import print_run_summary
from smartingest.demo import run_demo


def test_the_demo_runs_twice_and_money_arrives_exactly(tmp_path, monkeypatch):
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, color_system=None)
    monkeypatch.setattr("smartingest.cli.out", console)
    run_demo(tmp_path / "demo", 600, console, print_run_summary)
    text = buffer.getvalue()
    for run in ("#1 of customers_to_users", "#2 of signups_to_events", "#3 of customers_to_users"):
        assert f"Run {run}" in text
    assert "Run #4 of signups_to_events" in text and '"eventName": "signedUp"' in text
    assert "then open http://127.0.0.1:8080/ and sign in with it" in text  # it ends saying where the UI is
    money = re.findall(r"source (\d+\.\d\d), Iterable (\S+)", text)
    assert len(money) == 4
    # The double Iterable holds prints back as the source's decimal: no float noise on the way.
    assert all(Decimal(source) == Decimal(held) for source, held in money), money
