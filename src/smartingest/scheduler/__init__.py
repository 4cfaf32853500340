"""Schedules: when each sync comes due, and the loop that queues its runs."""
