"""What a page says after an action sent the browser back to it: a fixed message per code, so a link
cannot make a page say anything else."""

from __future__ import annotations

NOTICES = {
    "queued": "Run #{run} queued: it starts as soon as a worker is free.",
    "resync_queued": "Full resync #{run} queued: every row of the model will be sent.",
    "reset": "The CDC snapshot is forgotten: the next run sends every row.",
    "nothing_to_reset": "There was no CDC snapshot to forget.",
    "enabled": "The schedule is on.",
    "disabled": "The schedule is off: the sync runs only when asked.",
    "deleted": "The sync is deleted; its runs stay in the history.",
    "cancelling": "Run #{run} was asked to stop: what Iterable acknowledged is kept.",
    "ended": "Run #{run} had already ended.",
    "signed_out": "Signed out.",
    "saved": "Saved.",
    "deleted_definition": "Deleted.",
}


def notice(code: str | None, run: int | None = None) -> str | None:
    template = NOTICES.get(code or "")
    return template.format(run=run) if template else None
