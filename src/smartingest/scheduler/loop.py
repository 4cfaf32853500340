"""The scheduler and the dispatcher, as threads of a process that serves (``smartingest serve``).

- The **scheduler** queues each scheduled sync's run when its slot comes (``service.schedule_tick``,
  every ``TICK_SECONDS``). Several replicas may run: each slot is queued once.
- The **dispatcher** executes queued runs on this process's workers (a thread pool): it claims each run
  (``service.execute_run``), so two processes never execute one run, and a run whose sync is busy stays
  queued and is tried again on a later pass. Woken at once by ``nudge`` when a run is queued here.

Both read the definitions afresh on every pass (another process may have changed them), and neither
stops on an error: it is logged, and the next pass tries again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from smartingest import service
from smartingest.errors import RunNotQueuedError, SyncLockedError, UnknownNameError
from smartingest.scheduler.workers import celery_app, hand_over

log = logging.getLogger(__name__)

TICK_SECONDS = 30.0
DISPATCH_SECONDS = 2.0


class _Loop:
    """A daemon thread calling ``step`` every ``interval`` seconds until stopped (or woken early)."""

    def __init__(self, name: str, interval: float) -> None:
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def nudge(self) -> None:
        self._wake.set()

    def step(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # a pass that failed (the database away...): logged, tried again
                log.exception("%s: a pass failed", self._thread.name)
            self._wake.wait(self.interval)
            self._wake.clear()


class Scheduler(_Loop):
    """Queues scheduled runs when their slots come (see the module docstring)."""

    def __init__(
        self, workspace: Callable[[], service.Workspace], on_queued: Callable[[], None], interval: float = TICK_SECONDS
    ) -> None:
        super().__init__("scheduler", interval)
        self.workspace = workspace
        self.on_queued = on_queued

    def step(self) -> None:
        if service.schedule_tick(self.workspace()):
            self.on_queued()


class Dispatcher(_Loop):
    """Executes queued runs on a pool of workers (see the module docstring)."""

    def __init__(
        self, workspace: Callable[[], service.Workspace], workers: int = 2, interval: float = DISPATCH_SECONDS
    ) -> None:
        super().__init__("dispatcher", interval)
        self.workspace = workspace
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="run")
        self._busy: set[int] = set()  # runs a worker of this process has in hand
        self._lock = threading.Lock()
        self._celery: Any = None  # the Celery app when runs go to worker processes
        self._broker = ""
        self._handed: dict[int, float] = {}  # run id -> when it was last handed to the workers

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def step(self) -> None:
        ws = self.workspace()
        if ws.config.workers is not None:  # runs go to `smartingest worker` processes
            self._hand_over(ws)
            return
        for run_id in service.queued_runs(ws):
            with self._lock:
                if run_id in self._busy:
                    continue
                self._busy.add(run_id)
            self._pool.submit(self._execute, ws, run_id)

    def _hand_over(self, ws: service.Workspace) -> None:
        """Give each queued run to the workers, again when it is still queued ``resend_after_seconds`` later
        (its sync was busy when a worker took it)."""
        workers = ws.config.workers
        assert workers is not None
        if self._celery is None or self._broker != workers.broker_url:
            self._celery, self._broker = celery_app(workers.broker_url), workers.broker_url
        now = time.monotonic()
        queued = service.queued_runs(ws)
        self._handed = {run_id: at for run_id, at in self._handed.items() if run_id in queued}
        for run_id in queued:
            if now - self._handed.get(run_id, -math.inf) >= workers.resend_after_seconds:
                hand_over(self._celery, run_id)
                self._handed[run_id] = now

    def _execute(self, ws: service.Workspace, run_id: int) -> None:
        try:
            service.execute_run(ws, run_id)
        except (SyncLockedError, RunNotQueuedError):
            pass  # its sync is busy (it waits, queued) or another process took it
        except UnknownNameError as exc:
            log.warning("run #%s cannot run: %s", run_id, exc)
        except Exception:  # a run records its own failures: this is a bug, kept in the log
            log.exception("run #%s could not be executed", run_id)
        finally:
            with self._lock:
                self._busy.discard(run_id)


def fresh(ws: service.Workspace) -> Callable[[], service.Workspace]:
    """A callable giving ``ws`` with its definitions read again."""
    return lambda: replace(ws, config=ws.repository.load())
