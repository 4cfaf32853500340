"""How a run reports progress (rows read, rows sent); the CLI draws it, other callers may ignore it."""

from __future__ import annotations

from typing import Protocol


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
