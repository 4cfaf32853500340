"""Progress on a terminal for long runs: rows read, rows sent, and the rate."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class TerminalProgress:
    """A rich progress display implementing engine.progress.Progress; silent when disabled."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[progress.data.speed]{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> TerminalProgress:
        if self.enabled:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._progress.stop()

    def phase(self, name: str, total: int | None = None) -> None:
        if not self.enabled:
            return
        if self._task is not None:
            self._progress.update(self._task, visible=False)
        self._task = self._progress.add_task(name, total=total, rate="")

    def advance(self, rows: int) -> None:
        if not self.enabled or self._task is None:
            return
        self._progress.advance(self._task, rows)
        speed = next(task.speed for task in self._progress.tasks if task.id == self._task)
        self._progress.update(self._task, rate=f"{speed:,.0f} rows/s" if speed else "")
