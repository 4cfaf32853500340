"""What a run resends after the mappings changed: every row whole, or, when the mappings only added
fields and the destination merges fields into what it holds, only the added fields to the rows whose
values did not change (a smaller body for every row), and which of the two it is."""

from __future__ import annotations

from smartingest.cdc.base import ChangeSet
from smartingest.synctypes.base import SendsFieldsAlone, TypePlan


def resend_note(change_set: ChangeSet, plan: TypePlan) -> str | None:
    """The plan's and the run's note on rows sent again because the mappings changed (None when they did
    not). When only fields were added, narrows ``plan`` so that the unchanged rows carry only them."""
    added = change_set.added_parts
    if not added or not isinstance(plan, SendsFieldsAlone):
        return change_set.remapped
    plan.send_alone(added)
    same = change_set.same_before
    whole = change_set.counts.changed - same
    fields = ", ".join(repr(part) for part in added)
    note = (
        f"the mappings only added {_plural(len(added), 'field')} ({fields}) since the snapshot was written: "
        f"{_plural(same, 'row')} whose values did not change get only the added fields"
    )
    if whole:
        note += f"; {_plural(whole, 'changed row')} {'is' if whole == 1 else 'are'} sent whole"
    return note


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
