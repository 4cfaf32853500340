"""Request counts per /api endpoint and outcome, for the admin API."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any


class Stats:
    """Counts answered requests by route name (`POST /api/users/bulkUpdate`) and outcome.

    The outcome is the HTTP status as a string (`"200"`, `"429"`) or `"dropped"` for a connection
    dropped by fault injection. Only the event loop records, so no lock is needed.
    """

    def __init__(self) -> None:
        self.reset()

    def record(self, endpoint: str, outcome: str) -> None:
        """Count one request."""
        self._counts[endpoint][outcome] += 1

    def snapshot(self) -> dict[str, Any]:
        """`{"requests": {endpoint: {outcome: n}}, "total_requests": n, "since": epoch seconds}`."""
        requests = {endpoint: dict(outcomes) for endpoint, outcomes in sorted(self._counts.items())}
        total = sum(sum(outcomes.values()) for outcomes in requests.values())
        return {"requests": requests, "total_requests": total, "since": self._since}

    def reset(self) -> None:
        """Forget every count."""
        self._counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._since = time.time()
