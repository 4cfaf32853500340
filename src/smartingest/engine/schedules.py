"""When a schedule comes due: its slots, the moments a run is meant to start.

An interval's slots are the multiples of it since the Unix epoch (``every: 1h`` at each full hour UTC,
``every: 15m`` at :00, :15, :30, :45): every replica of the scheduler computes the same ones, whenever it
started. A cron expression's slots are its firing times in its time zone (daylight saving time included:
croniter's rules). ``latest_slot`` is the last slot at or before a moment: a scheduler that was down for
hours finds one slot to run, not one per slot it missed.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from croniter import croniter

from smartingest.config.syncs import Schedule

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def latest_slot(schedule: Schedule, now: dt.datetime) -> dt.datetime | None:
    """The schedule's last slot at or before ``now`` (UTC), or None for a manual schedule."""
    minutes = schedule.interval_minutes()
    if minutes is not None:
        step = dt.timedelta(minutes=minutes)
        return EPOCH + step * ((now - EPOCH) // step)
    if schedule.cron is not None:
        zone = ZoneInfo(schedule.timezone)
        moments = croniter(schedule.cron, now.astimezone(zone) + dt.timedelta(microseconds=1))
        return moments.get_prev(dt.datetime).astimezone(dt.UTC)
    return None


def next_slot(schedule: Schedule, now: dt.datetime) -> dt.datetime | None:
    """The schedule's first slot after ``now`` (UTC), or None for a manual schedule."""
    minutes = schedule.interval_minutes()
    if minutes is not None:
        step = dt.timedelta(minutes=minutes)
        return EPOCH + step * ((now - EPOCH) // step + 1)
    if schedule.cron is not None:
        zone = ZoneInfo(schedule.timezone)
        return croniter(schedule.cron, now.astimezone(zone)).get_next(dt.datetime).astimezone(dt.UTC)
    return None
