"""Settling a run's verdicts: the ledger's row outcomes and the change set's acknowledged rows, in bulk.

Delivery answers a request at a time; the settler turns each answer into Arrow columns at once (a
request whose rows were all synced costs no step per row) and keeps them until ``flush_rows`` have
gathered, then writes them in one go: one outcome file part and one insert into the change set. Every
``checkpoint_rows`` settled rows or ``checkpoint_seconds`` it flushes and checkpoints the change set
(what was acknowledged since the previous checkpoint becomes durable), so a run killed midway resends
at most one checkpoint's worth; verdicts not yet flushed when a process dies are counted as sent again
by the next run, which is what happens to their rows.

The writing happens on a thread of its own, in order, off the event loop that sends: Parquet and DuckDB
do it without holding the interpreter, so requests keep flowing while the previous batch is accounted
for. At most ``MAX_BEHIND`` writes wait; past that, settling waits for the oldest (memory stays bounded).
``close`` waits for every write and raises the first that failed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from operator import attrgetter

import pyarrow as pa

from smartingest.cdc.base import OP, PK, ChangeSet, Column, as_arrow
from smartingest.codes import ReasonCode
from smartingest.engine.ledger import Ledger
from smartingest.engine.outcome_files import SCHEMA as OUTCOME_SCHEMA
from smartingest.engine.progress import Progress
from smartingest.iterable.outcomes import Retry, Verdict, code_of, commits, reason_of, status_of
from smartingest.iterable.records import RecordColumns
from smartingest.iterable.writer import Outcome, SameVerdict
from smartingest.synctypes.base import Decided

CHANGE_BATCH_ROWS = 10_000
MAX_BEHIND = 2
COMMITS = "commits"
_pk, _operation = attrgetter("pk"), attrgetter("operation")


def verdict_table(pks: Column[str | None], ops: Column[str], verdicts: Sequence[Verdict]) -> pa.Table:
    """Verdicts as the outcome files' columns plus COMMITS (whether the row enters the snapshot).

    A verdict is usually shared by many rows (SYNCED, one refusal for a whole request): each distinct
    verdict is described once and spread with ``take``.
    """
    n = len(verdicts)
    if n and verdicts.count(verdicts[0]) == n:  # one verdict for all (all synced, a whole request refused)
        describe: list[Verdict] = [verdicts[0]]
        spread = None
    else:
        index: dict[int, int] = {}
        describe = []
        positions = []
        for verdict in verdicts:
            at = index.get(id(verdict))
            if at is None:
                at = index[id(verdict)] = len(describe)
                describe.append(verdict)
            positions.append(at)
        spread = pa.array(positions, pa.int32())

    def column(values: list, type_: pa.DataType) -> pa.Array:
        distinct = pa.array(values, type_)
        return pa.repeat(distinct[0], n) if spread is None else distinct.take(spread)

    codes = [code_of(v) for v in describe]
    return pa.table(
        {
            "primary_key": as_arrow(pks, pa.string()),
            "operation": as_arrow(ops, pa.string()),
            "status": column([str(status_of(v)) for v in describe], pa.string()),
            "reason": column([reason_of(v) for v in describe], pa.string()),
            "reason_code": column([None if c is None else str(c) for c in codes], pa.string()),
            COMMITS: column([commits(v) for v in describe], pa.bool_()),
        }
    )


class Settler:
    """Writes a run's verdicts to the ledger and the change set, reports progress, and checkpoints (see the
    module docstring). Call ``flush`` when delivery ends, before the change set's final commit."""

    def __init__(
        self,
        change_set: ChangeSet,
        ledger: Ledger,
        run_id: int,
        progress: Progress,
        checkpoint_rows: int = 100_000,
        checkpoint_seconds: float = 60.0,
        flush_rows: int = 50_000,
        may_commit: Callable[[], bool] = lambda: True,
    ) -> None:
        self.change_set = change_set
        self.may_commit = may_commit  # False once the run lost its sync's lease: no checkpoint then
        self.ledger = ledger
        self.run_id = run_id
        self.progress = progress
        self.checkpoint_rows = checkpoint_rows
        self.checkpoint_seconds = checkpoint_seconds
        self.flush_rows = flush_rows
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._since_checkpoint = 0
        self._checkpointed_at = time.monotonic()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="settle")
        self._writes: deque[Future[object]] = deque()

    def settle(self, decided: Sequence[Decided]) -> None:
        """Settle rows decided without a request: (primary key, operation, verdict) each."""
        if decided:
            pks, ops, verdicts = zip(*decided, strict=True)
            self._add(verdict_table(pks, ops, verdicts))

    def settle_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Settle a writer's answer: (record, verdict) each."""
        if not outcomes:
            return
        if isinstance(outcomes, SameVerdict) and isinstance(outcomes.records, RecordColumns):
            records = outcomes.records  # the usual answer: records as columns, one verdict for all
            self._add(verdict_table(records.pks, records.ops, [outcomes.verdict] * len(records)))
            return
        pairs, verdicts = zip(*outcomes, strict=True)
        self._add(verdict_table(list(map(_pk, pairs)), list(map(_operation, pairs)), verdicts))

    def settle_unsent(self, reason: str) -> None:
        """Give every change still without a verdict the verdict retry (it is sent by the next run)."""
        self.flush()
        self.wait()  # unsettled() reads the verdicts the change set holds
        verdict = Retry(reason, ReasonCode.NOT_SENT)
        for batch in self.change_set.unsettled(CHANGE_BATCH_ROWS):
            self._add(verdict_table(batch.column(PK), batch.column(OP), [verdict] * batch.num_rows))
        self.flush()
        self.wait()

    def flush(self) -> None:
        """Write every verdict kept so far (on the writing thread)."""
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0

        def write() -> None:
            # The outcomes first: a row committed to the snapshot always has its outcome on record.
            self.ledger.record(self.run_id, table.select(OUTCOME_SCHEMA.names))
            self.change_set.settle(table.column("primary_key"), table.column("operation"), table.column(COMMITS))

        self._submit(write)

    def wait(self) -> None:
        """Wait for every write so far; raises the first that failed."""
        while self._writes:
            self._writes.popleft().result()

    def close(self) -> None:
        """Wait for every write (raising the first that failed) and stop the writing thread."""
        try:
            self.wait()
        finally:
            self._writer.shutdown(wait=True, cancel_futures=True)

    def _submit(self, work: Callable[[], object]) -> None:
        while self._writes and (self._writes[0].done() or len(self._writes) >= MAX_BEHIND):
            self._writes.popleft().result()
        self._writes.append(self._writer.submit(work))

    def _add(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.progress.advance(table.num_rows)
        self._since_checkpoint += table.num_rows
        due = time.monotonic() - self._checkpointed_at >= self.checkpoint_seconds
        if self._since_checkpoint >= self.checkpoint_rows or due:
            self.flush()
            if self.may_commit():
                self._submit(self.change_set.checkpoint)
            self._since_checkpoint, self._checkpointed_at = 0, time.monotonic()
        elif self._pending_rows >= self.flush_rows:
            self.flush()
