"""How a run reports progress (rows read, rows sent); the CLI draws it, other callers may ignore it."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from smartingest.engine.ledger import Ledger

log = logging.getLogger(__name__)


class Progress(Protocol):
    def phase(self, name: str, total: int | None = None) -> None:
        """A new phase started (querying, delivering...), with its row total when known."""
        ...

    def advance(self, rows: int) -> None:
        """``rows`` more rows were read or given a verdict in the current phase."""
        ...


class NoProgress:
    """Reports nothing."""

    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass


class RecordedProgress:
    """Reports to ``inner`` and keeps the run's progress in the ledger (``RunRecord.progress``), at most
    once per ``every`` seconds and at each new phase, so a UI or another process can watch it: the phase,
    its row total when known, the rows done, when the phase began and when this was written."""

    def __init__(self, ledger: Ledger, run_id: int, inner: Progress, every: float = 1.0) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.inner = inner
        self.every = every
        self.state: dict[str, Any] = {}
        self.written = 0.0

    def phase(self, name: str, total: int | None = None) -> None:
        self.inner.phase(name, total)
        self.state = {"phase": name, "total": total, "done": 0, "phase_started_at": _now()}
        self._write()

    def advance(self, rows: int) -> None:
        self.inner.advance(rows)
        if not self.state:
            return
        self.state["done"] += rows
        if time.monotonic() - self.written >= self.every:
            self._write()

    def flush(self) -> None:
        """Record the last rows done (the run ended between two writes)."""
        if self.state:
            self._write()

    def _write(self) -> None:
        self.written = time.monotonic()
        try:
            self.ledger.note_progress(self.run_id, {**self.state, "updated_at": _now()})
        except SQLAlchemyError as exc:  # watching is a convenience: a busy database must not fail the run
            log.debug("progress of run #%s not recorded: %s", self.run_id, exc)


def _now() -> str:
    return datetime.now(UTC).isoformat()
