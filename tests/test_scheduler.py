"""The Ticker on a real event loop with APScheduler."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from watcher.scheduler import DAILY_AT_UTC, Ticker


async def test_ticks_at_once_then_every_interval_and_plans_the_daily_upkeep() -> None:
    ticks: list[float] = []
    loop = asyncio.get_running_loop()
    two = asyncio.Event()

    async def tick() -> None:
        ticks.append(loop.time())
        if len(ticks) == 2:
            two.set()

    async def daily() -> None:
        raise AssertionError("the daily job ran during the test")

    ticker = Ticker(tick, every_s=1.0, daily=daily)
    assert ticker.next_daily_run() is None
    started = loop.time()
    ticker.start()
    try:
        await asyncio.wait_for(two.wait(), 10)
        next_daily = ticker.next_daily_run()
    finally:
        ticker.stop()
    assert ticks[0] - started < 0.9  # the first tick does not wait an interval
    assert ticks[1] - ticks[0] >= 0.9  # the next one does
    assert next_daily is not None
    now = datetime.now(UTC)
    assert (next_daily.hour, next_daily.minute) == DAILY_AT_UTC
    assert now < next_daily <= now + timedelta(days=1)


async def test_no_daily_job_unless_asked() -> None:
    async def tick() -> None:
        return None

    ticker = Ticker(tick, every_s=1)
    ticker.start()
    try:
        assert ticker.next_daily_run() is None
    finally:
        ticker.stop()
