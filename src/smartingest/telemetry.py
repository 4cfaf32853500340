"""Metrics of this process, for Prometheus (``GET /metrics`` of ``smartingest serve``): what every layer
may record without knowing who reads it.

Requests to Iterable are measured where they are made (``iterable/client.py``): their latency and their
outcome per endpoint, 429s included. Runs and rows are counted from the run ledger when Prometheus asks
(``server/metrics.py``), so they cover every process that shares the metadata database.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ITERABLE_REQUESTS = Counter(
    "smartingest_iterable_requests",
    "Requests sent to Iterable, by endpoint and outcome (the HTTP status, or 'no_response').",
    ["endpoint", "outcome"],
)
ITERABLE_LATENCY = Histogram(
    "smartingest_iterable_request_seconds",
    "Time from sending a request to Iterable to its answer, by endpoint.",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def iterable_request(endpoint: str, status: int | None, seconds: float) -> None:
    """Record one request to Iterable (``status`` None: no answer came)."""
    ITERABLE_REQUESTS.labels(endpoint, str(status) if status is not None else "no_response").inc()
    if status is not None:
        ITERABLE_LATENCY.labels(endpoint).observe(seconds)
