"""APScheduler wiring. The schedule itself lives in SQLite (each feed's next_check_at); the
scheduler only runs a short tick that asks the store which feeds are due, so a restart
resumes exactly where the last run stopped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

TICK_JOB_ID = "tick"
MINUTE_JOB_ID = "minute"
DAILY_JOB_ID = "daily"
# Upkeep (retention, PRAGMA optimize) runs when news is usually quiet in the region.
DAILY_AT_UTC = (0, 30)  # 04:30 in Baku and Yerevan, 03:30 in Moscow


class Ticker:
    """Calls `tick` every `every_s` seconds, `minutely` at the start of every minute
    (digests) and `daily` once a day (upkeep), on the running event loop."""

    def __init__(
        self,
        tick: Callable[[], Awaitable[None]],
        *,
        every_s: float,
        minutely: Callable[[], Awaitable[None]] | None = None,
        daily: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        if daily is not None:
            hour, minute = DAILY_AT_UTC
            self._scheduler.add_job(
                daily,
                "cron",
                hour=hour,
                minute=minute,
                id=DAILY_JOB_ID,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=6 * 3600,  # a daemon busy or paused at 00:30 still runs it
            )
        if minutely is not None:
            self._scheduler.add_job(
                minutely,
                "cron",
                second=0,
                id=MINUTE_JOB_ID,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=50,  # a late minute still runs, a skipped one once
            )
        self._scheduler.add_job(
            tick,
            "interval",
            seconds=every_s,
            id=TICK_JOB_ID,
            next_run_time=datetime.now(UTC),  # first tick at once, not after one interval
            coalesce=True,  # a late tick runs once, not once per missed interval
            max_instances=1,
            misfire_grace_time=60,
        )

    def next_daily_run(self) -> datetime | None:
        """When the daily upkeep runs next (None without one, or before `start()`)."""
        job = self._scheduler.get_job(DAILY_JOB_ID)
        return getattr(job, "next_run_time", None) if job is not None else None

    def start(self) -> None:
        """Needs a running event loop."""
        self._scheduler.start()

    def stop(self) -> None:
        # shutdown(wait=True) would not wait for coroutine jobs anyway: the caller drains
        # its own in-flight polls.
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
