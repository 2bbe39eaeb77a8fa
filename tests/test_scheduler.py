"""The Ticker on a real event loop with APScheduler."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from watcher.scheduler import DAILY_AT_UTC, MINUTE_JOB_ID, Ticker


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


async def test_after_a_clock_step_the_cron_jobs_come_at_their_next_time_from_now() -> None:
    # After the wall clock went back an hour, APScheduler's minute job would wait that hour
    # (its next run was computed before the step); the ticker puts it at the next minute.
    async def nothing() -> None:
        return None

    ticker = Ticker(nothing, every_s=60, minutely=nothing, daily=nothing)
    ticker.start()
    try:
        job = ticker._scheduler.get_job(MINUTE_JOB_ID)
        assert job is not None
        job.modify(next_run_time=datetime.now(UTC) + timedelta(hours=1))  # as after a step
        ticker.clock_stepped()
        assert job.next_run_time <= datetime.now(UTC) + timedelta(minutes=1)
        daily_run = ticker.next_daily_run()
        assert daily_run is not None and daily_run <= datetime.now(UTC) + timedelta(days=1)
    finally:
        ticker.stop()


async def test_a_tick_that_fails_does_not_end_the_ticking(caplog: pytest.LogCaptureFixture) -> None:
    ticks = 0
    two = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 2:
            two.set()
        if ticks == 1:
            raise RuntimeError("the store hiccuped")

    ticker = Ticker(tick, every_s=0.01)
    ticker.start()
    try:
        await asyncio.wait_for(two.wait(), 10)
    finally:
        ticker.stop()
    assert any(r.getMessage() == "tick failed" for r in caplog.records)
