"""``GET /metrics``: Prometheus's text format. This process's requests to Iterable (``telemetry``), and
runs by status and rows by outcome counted from the run ledger at each scrape, so every process sharing
the metadata database is counted, whichever one Prometheus asks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from smartingest import service


class LedgerCollector(Collector):
    """Runs by status and rows by outcome, read from the ledger when scraped."""

    def __init__(self, workspace: Callable[[], service.Workspace]) -> None:
        self.workspace = workspace

    def collect(self) -> Iterator[Metric]:
        runs, rows = service.run_totals(self.workspace())
        by_status = CounterMetricFamily("smartingest_runs", "Sync runs recorded, by status.", labels=["status"])
        for status, count in sorted(runs.items()):
            by_status.add_metric([status], count)
        yield by_status
        by_outcome = CounterMetricFamily(
            "smartingest_rows", "Rows of every run, by count (queried, added, synced, rejected...).", labels=["count"]
        )
        for name, count in rows.items():
            by_outcome.add_metric([name], count)
        yield by_outcome


def metrics_text(ledger_registry: CollectorRegistry) -> bytes:
    """This process's metrics and the ledger's, in Prometheus's text format."""
    return generate_latest(REGISTRY) + generate_latest(ledger_registry)


def ledger_registry(workspace: Callable[[], service.Workspace]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(LedgerCollector(workspace))
    return registry
