"""The one thread that owns the project's SQLite connection.

All storage work runs there, one call at a time: SQLite has one writer anyway, the connection is
never shared between threads, and the event loop stays free while a batch is written.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from .project import Project

P = ParamSpec("P")
T = TypeVar("T")


class StorageWorker:
    """Opens a `Project` on a dedicated thread and runs calls on it there."""

    def __init__(self, open_project: Callable[[], Project]):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-storage")
        try:
            # Opening in the worker thread makes the connection belong to it; errors surface here.
            self.project: Project = self._executor.submit(open_project).result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise
        self._closed = False

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` on the worker thread and wait for its result without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` on the worker thread and wait for it, blocking (for setup, not from the event loop)."""
        return self._executor.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        """Close the store and stop the thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._executor.submit(self.project.store.close).result()
        self._executor.shutdown(wait=True)
