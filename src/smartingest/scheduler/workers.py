"""Runs executed by worker processes on any machine, through Celery (the ``workers`` extra): ``serve``'s
dispatcher hands each queued run to the broker, and a ``smartingest worker`` takes it and executes it.

A task carries a run's id only; the worker claims the run (``service.execute_run``), so a run handed twice
(two dispatchers, a redelivery) is executed once, and a run whose sync is busy stays queued: the
dispatcher hands it again after ``resend_after_seconds``. Tasks are acknowledged when they end
(``acks_late``): a worker killed mid-run leaves its run started and unfinished, which the sync's next run
marks failed (``interrupted``) and whose unacknowledged rows it sends again, as for any process that died.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from smartingest import service
from smartingest.errors import MissingDriverError, RunNotQueuedError, SyncLockedError, UnknownNameError

log = logging.getLogger(__name__)

TASK = "smartingest.execute_run"
PROJECT_ENV = "SMARTINGEST_PROJECT"


def celery_app(broker_url: str) -> Any:
    """The Celery application of ``broker_url``, its one task registered."""
    try:
        from celery import Celery
    except ImportError as exc:
        raise MissingDriverError("workers need celery: pip install 'smartingest[workers]'") from exc
    app = Celery("smartingest", broker=broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker takes a run when it can run it, not ahead
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.task(name=TASK)(execute)
    return app


def execute(run_id: int) -> None:
    """The task: claim and execute one run in the workspace this worker serves."""
    ws = service.open_workspace(os.environ.get(PROJECT_ENV) or None)
    try:
        service.execute_run(ws, run_id)
    except (SyncLockedError, RunNotQueuedError):
        pass  # its sync is busy (it stays queued and is handed again) or another worker took it
    except UnknownNameError as exc:
        log.warning("run #%s cannot run: %s", run_id, exc)


def hand_over(app: Any, run_id: int) -> None:
    """Give a queued run to the workers."""
    app.send_task(TASK, args=[run_id])
