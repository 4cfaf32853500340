"""Bar charts of a sync's runs, drawn as SVG on the server: no script, readable without one, each bar
titled with its numbers (a tooltip, and what a screen reader reads)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from smartingest.server.ui.render import duration, number
from smartingest.service import RunRecord

WIDTH, HEIGHT, GAP = 600, 120, 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # the CSS class that colours it
    title: str


@dataclass(frozen=True)
class Chart:
    title: str
    top: str  # the value at the top of the scale, as text
    bars: list[Bar]
    width: int = WIDTH
    height: int = HEIGHT


def rows_chart(runs: Sequence[RunRecord]) -> Chart:
    """Rows synced and rejected per run (oldest first), stacked."""
    peak = max((r.counts["synced"] + r.counts["rejected"] + r.counts["invalid"] for r in runs), default=0)
    bars: list[Bar] = []
    step = WIDTH / max(len(runs), 1)
    for i, run in enumerate(runs):
        base = float(HEIGHT)
        for kind in ("synced", "rejected", "invalid"):
            value = run.counts[kind]
            if not value or not peak:
                continue
            height = max(HEIGHT * value / peak, 1)
            base -= height
            title = f"run #{run.id}: {number(value)} {kind}"
            bars.append(Bar(i * step + GAP / 2, base, max(step - GAP, 1), height, kind, title))
    return Chart("Rows per run", number(peak), bars)


def duration_chart(runs: Sequence[RunRecord]) -> Chart:
    """How long each finished run took (oldest first)."""
    lengths = [_seconds(run) for run in runs]
    peak = max((s for s in lengths if s is not None), default=0.0)
    step = WIDTH / max(len(runs), 1)
    bars = [
        Bar(
            i * step + GAP / 2,
            HEIGHT - max(HEIGHT * seconds / peak, 1),
            max(step - GAP, 1),
            max(HEIGHT * seconds / peak, 1),
            "failed" if run.status == "failed" else "duration",
            f"run #{run.id}: {duration(seconds)}",
        )
        for i, (run, seconds) in enumerate(zip(runs, lengths, strict=True))
        if seconds is not None and peak
    ]
    return Chart("Duration per run", duration(peak), bars)


def _seconds(run: RunRecord) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return (run.finished_at - run.started_at).total_seconds()
