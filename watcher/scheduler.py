"""The daemon's clockwork. The schedule itself lives in SQLite (each feed's next_check_at);
a short tick asks the store which feeds are due, so a restart resumes exactly where the
last run stopped. The tick runs on the event loop's monotonic clock: an interval job of
APScheduler counts in wall time, and a clock stepped back (NTP, a restored VM) stopped it
for as long as the step. APScheduler keeps what is meant by the wall clock: the minute job
(digests) and the daily upkeep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)

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
        self._tick = tick
        self._every_s = every_s
        self._ticking: asyncio.Task[None] | None = None
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

    def next_daily_run(self) -> datetime | None:
        """When the daily upkeep runs next (None without one, or before `start()`)."""
        job = self._scheduler.get_job(DAILY_JOB_ID)
        return getattr(job, "next_run_time", None) if job is not None else None

    def clock_stepped(self) -> None:
        """The wall clock stepped (back): the minute and daily jobs wait in wall time, so
        each is due again at its next time from now, not from before the step."""
        now = datetime.now(UTC)
        for job in self._scheduler.get_jobs():
            job.modify(next_run_time=job.trigger.get_next_fire_time(None, now))
        self._scheduler.wakeup()

    def start(self) -> None:
        """Needs a running event loop. The first tick comes at once."""
        self._scheduler.start()
        self._ticking = asyncio.get_running_loop().create_task(self._ticks(), name="tick")

    async def _ticks(self) -> None:
        """One tick at a time, each `every_s` after the last began: one that ran long is
        followed at once, never by a burst of the ones it missed."""
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await self._tick()
            except Exception:
                log.exception("tick failed")
            await asyncio.sleep(max(0.0, self._every_s - (loop.time() - began)))

    def stop(self) -> None:
        # The caller drains its own in-flight polls; a tick only reads and starts them.
        if self._ticking is not None:
            self._ticking.cancel()
            self._ticking = None
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
