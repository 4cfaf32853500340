"""``sync plan``: what the next run of a sync would do, computed without sending anything or changing state."""

from __future__ import annotations

import asyncio
from itertools import islice
from pathlib import Path

import orjson
from sqlalchemy import Engine

from smartingest.engine.destination import CHECK_POLICY, check_destination
from smartingest.engine.lease import sync_lease
from smartingest.engine.lock import sync_lock
from smartingest.engine.pipeline import PlanResult, SyncTarget, detector_for, key_warnings, prepare
from smartingest.engine.resend import resend_note
from smartingest.iterable.client import IterableClient
from smartingest.iterable.outcomes import Rejected, reason_of
from smartingest.iterable.writer import Record
from smartingest.synctypes.base import Decided, TypePlan


def plan_sync(target: SyncTarget, state_dir: Path, engine: Engine, samples: int = 3) -> PlanResult:
    """Compute the change set the next run would send, with a sample request body; sends nothing.

    Says whether the destination answered, and warns of what would change what is sent (field type
    conflicts, a new baseline, a floating-point key). Raises the same sync-level errors a run would
    report (bad SQL, missing column, bad mapping).
    """
    with sync_lease(engine, target.id, target.name, "plan"), sync_lock(state_dir, target.id):
        source, plan, spec = prepare(target)
        warnings = key_warnings(source.schema(target.model), target.model)
        check = check_destination(target.destination)
        if check.ok:
            warnings += asyncio.run(_inspect(target, plan))
        detector = detector_for(
            target.source, state_dir, target.cdc_memory_limit, target.state_store, target.source_name
        )
        change_set = detector.plan(target.id, source, target.model, spec)
        warnings += [m for m in (change_set.new_baseline, resend_note(change_set, plan)) if m]
        try:
            records: list[Record] = []
            decided: list[Decided] = []
            for batch in change_set.sample(samples * 10).to_batches():
                batch_records, batch_decided = plan.map_changes(batch)
                records += batch_records
                decided += batch_decided
            bodies = [orjson.loads(plan.sample_body(records[:samples]))] if records else []
            invalid = [{"primary_key": r.pk, "reason": r.reason} for r in islice(change_set.invalid_rows(), samples)]
            rejected = [{"primary_key": pk, "reason": reason_of(v)} for pk, _, v in decided if isinstance(v, Rejected)]
            return PlanResult(
                target.name,
                change_set.counts,
                bodies,
                invalid,
                rejected[:samples],
                warnings,
                check.message,
                check.ok,
                plan.endpoint_name,
            )
        finally:
            change_set.close()


async def _inspect(target: SyncTarget, plan: TypePlan) -> list[str]:
    async with IterableClient(target.destination, policy=CHECK_POLICY) as client:
        return await plan.inspect_destination(client)
