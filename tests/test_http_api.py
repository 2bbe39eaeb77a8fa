"""The /metrics and /healthz server on a real port of 127.0.0.1 (and ::1), with a real SQLite
file, a real lag monitor and real instrumentation behind it."""

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.telegram_api import FakeTelegram
from watcher.delivery import Delivery
from watcher.http_api import (
    DatabaseWritable,
    HealthCheck,
    HealthServer,
    loop_check,
    tick_check,
)
from watcher.loop_lag import LoopLagMonitor
from watcher.metrics import Metrics
from watcher.model import Alert, Entry, FeedDef, Hit
from watcher.store import Store
from watcher.telegram.format import render_alert
from watcher.telegram.send import TelegramSender

TOKEN = "123456:TEST-token-for-the-fake-bot-api-server"


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "w.db") as opened:
        await opened.sync_feeds([FeedDef("apa", "https://apa.az/rss", 600)], now())
        yield opened


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


def serve(
    checks: Mapping[str, HealthCheck], listen: tuple[str, int] = ("127.0.0.1", 0)
) -> HealthServer:
    return HealthServer(listen, metrics=Metrics(process_metrics=False), checks=checks)


async def healthy() -> None:
    return None


async def queue(store: Store, *chats: int) -> None:
    (feed,) = await store.feeds()
    async with store.write() as tx:
        n = await store.count_entries()
        entry = Entry(guid=f"g{n}", link=f"https://apa.az/{n}", title="Karabakh", summary="")
        (new,) = await tx.insert_entries(feed.id, [entry], now())
        text = render_alert(entry, "apa", [Hit("karabakh")])
        await tx.enqueue([Alert(new.id, chat, text, ("karabakh",)) for chat in chats], now())


async def test_metrics_endpoint_serves_what_delivery_observed_and_the_store_holds(
    store: Store, http: aiohttp.ClientSession
) -> None:
    metrics = Metrics()
    async with FakeTelegram(TOKEN) as fake:
        sender = TelegramSender(TOKEN, api_base_url=fake.base_url, timeout_s=3)
        try:
            fake.block_chat(7)
            await queue(store, 42, 7)
            await Delivery(store, sender, clock=now, metrics=metrics).drain()
        finally:
            await sender.close()
    await queue(store, 43)  # still pending when scraped

    async def refresh() -> None:
        await metrics.refresh(store, now=now(), failing_after=5)

    async with HealthServer(("127.0.0.1", 0), metrics=metrics, before_scrape=refresh) as server:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
        async with http.get(server.url + "/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
            text = await response.text()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("watcher_telegram_sends_total", (("outcome", "sent"),))] == 1
    assert samples[("watcher_telegram_sends_total", (("outcome", "blocked"),))] == 1
    assert samples[("watcher_outbox_messages", (("status", "pending"),))] == 1
    assert samples[("watcher_outbox_messages", (("status", "sent"),))] == 1
    assert samples[("watcher_outbox_messages", (("status", "dead"),))] == 1
    assert samples[("watcher_feeds", (("state", "new"),))] == 1
    assert samples[("process_resident_memory_bytes", ())] > 0


async def test_a_failed_refresh_still_serves_the_counters(http: aiohttp.ClientSession) -> None:
    metrics = Metrics(process_metrics=False)
    metrics.observe_new_entries(2)

    async def broken() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    server = HealthServer(("127.0.0.1", 0), metrics=metrics, before_scrape=broken)
    await server.start()
    try:
        async with http.get(server.url + "/metrics") as response:
            assert response.status == 200
            assert "watcher_new_entries_total 2.0" in await response.text()
    finally:
        await server.stop()


async def test_ipv6_loopback_with_a_chosen_free_port(http: aiohttp.ClientSession) -> None:
    async with serve({"nothing": healthy}, ("::1", 0)) as server:
        assert server.url == f"http://[::1]:{server.port}"
        status, body = await get_json(http, server.url + "/healthz")
    assert (status, body) == (200, {"status": "ok", "checks": {"nothing": "ok"}})


async def test_stop_closes_the_port(http: aiohttp.ClientSession) -> None:
    server = serve({})
    await server.start()
    url = server.url + "/healthz"
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await http.get(url)


async def test_health_turns_red_while_another_process_holds_the_write_lock(
    store: Store, http: aiohttp.ClientSession
) -> None:
    async with serve({"database": DatabaseWritable(store.path)}) as server:
        url = server.url + "/healthz"
        assert (await get_json(http, url))[0] == 200

        with closing(sqlite3.connect(store.path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE feeds SET etag = 'x'")
            started = time.monotonic()
            status, body = await get_json(http, url)
            elapsed = time.monotonic() - started
            assert status == 503 and elapsed < 2.5, elapsed
            assert body["status"] == "unhealthy"
            (reason,) = body["reasons"]
            assert reason.startswith("database: database is not writable") and "locked" in reason
            other.execute("COMMIT")

        assert await get_json(http, url) == (200, {"status": "ok", "checks": {"database": "ok"}})
        # The check rolled back: it never wrote, and the other writer's change stands.
        (state,) = await store.feeds()
        assert state.etag == "x"


async def test_the_daemons_own_write_is_no_lock_against_it_unless_it_lasts(
    store: Store,
) -> None:
    """The daemon's own transaction holds the lock: healthy while it is short, 503 when
    it has been open for longer than max_own_write_s (a hung write)."""
    since = [0.0]
    clock = [0.0]
    check = DatabaseWritable(
        store.path,
        own_write_since=lambda: since[0] if store.write_since is not None else None,
        max_own_write_s=30,
        clock=lambda: clock[0],
    )
    async with store.write() as tx:
        await tx.db.execute("UPDATE feeds SET etag = 'y'")
        assert store.write_since is not None
        clock[0] = 29.0
        assert await check() is None  # no probe: it would wait for our own lock
        clock[0] = 31.0
        reason = await check()
        assert reason is not None and "has been open for" in reason
    assert store.write_since is None
    assert await check() is None


async def test_probes_that_overlap_share_one_database_check(
    store: Store, http: aiohttp.ClientSession
) -> None:
    async with serve({"database": DatabaseWritable(store.path)}) as server:
        url = server.url + "/healthz"
        answers = await asyncio.gather(*(get_json(http, url) for _ in range(20)))
    assert {status for status, _ in answers} == {200}


async def test_a_client_that_sends_nothing_more_is_disconnected() -> None:
    server = HealthServer(("127.0.0.1", 0), metrics=Metrics(process_metrics=False), idle_s=0.2)
    async with server:
        idle = await asyncio.open_connection("127.0.0.1", server.port)
        half = await asyncio.open_connection("127.0.0.1", server.port)
        half[1].write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        # Generous bound: only a server that never closes them fails it.
        for reader, writer in (idle, half):
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()


async def test_a_missing_database_is_unhealthy_and_not_created(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    missing = tmp_path / "nowhere.db"
    async with serve({"database": DatabaseWritable(missing)}) as server:
        status, body = await get_json(http, server.url + "/healthz")
    assert status == 503 and body["reasons"][0].startswith("database: database is not writable")
    assert not missing.exists()


async def test_a_stale_scheduler_tick_is_unhealthy(http: aiohttp.ClientSession) -> None:
    last_tick: list[float | None] = [None]
    check = tick_check(lambda: last_tick[0], max_age_s=10)
    async with serve({"scheduler": check}) as server:
        url = server.url + "/healthz"
        assert await get_json(http, url) == (
            503,
            {
                "status": "unhealthy",
                "reasons": ["scheduler: scheduler has not ticked yet"],
                "checks": {"scheduler": "scheduler has not ticked yet"},
            },
        )
        last_tick[0] = time.monotonic()
        assert (await get_json(http, url))[0] == 200
        last_tick[0] = time.monotonic() - 60
        status, body = await get_json(http, url)
        assert status == 503
        assert body["reasons"][0].startswith("scheduler: scheduler last ticked 60.")


async def test_the_event_loop_check_follows_the_lag_monitor(http: aiohttp.ClientSession) -> None:
    monitor = LoopLagMonitor(period_s=0.01)
    check = loop_check(monitor, max_lag_s=0.1, max_beat_age_s=1.0)
    async with serve({"event_loop": check}) as server:
        url = server.url + "/healthz"
        status, body = await get_json(http, url)
        assert status == 503
        assert body["checks"]["event_loop"] == "event loop monitor has not run yet"
        monitor.start()
        try:
            await asyncio.sleep(0.05)
            assert (await get_json(http, url))[0] == 200
            time.sleep(0.2)  # noqa: ASYNC251 (block the loop: the next beat comes ~0.2 s late)
            for _ in range(10):  # a few turns of the loop, no time: the late beat lands
                if monitor.last_lag_s > 0.1:
                    break
                await asyncio.sleep(0)
            reason = await check()  # no await inside: the next beat cannot land first
            assert reason is not None and re.fullmatch(
                r"event loop lag [\d.]+s exceeds 0.1s", reason
            )
        finally:
            await monitor.stop()
        await asyncio.sleep(1.2)
        status, body = await get_json(http, url)
        assert status == 503 and "monitor silent for" in body["checks"]["event_loop"]


async def test_a_check_that_hangs_or_raises_is_a_failed_check(http: aiohttp.ClientSession) -> None:
    async def hangs() -> str | None:
        await asyncio.sleep(10)
        return None

    async def raises() -> str | None:
        raise RuntimeError("boom")

    checks = {"ok": healthy, "hangs": hangs, "raises": raises}
    server = HealthServer(
        ("127.0.0.1", 0),
        metrics=Metrics(process_metrics=False),
        checks=checks,
        check_timeout_s=0.2,
    )
    async with server:
        started = time.monotonic()
        status, body = await get_json(http, server.url + "/healthz")
    assert time.monotonic() - started < 5  # the hung check was given up, not waited for
    assert status == 503
    assert body["reasons"] == [
        "hangs: no answer within 0.2s",
        "raises: check failed: RuntimeError('boom')",
    ]
    assert body["checks"]["ok"] == "ok"


async def test_a_request_that_cannot_be_parsed_is_one_debug_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve({}) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        assert b" 400 " in await reader.readline()
        writer.close()
        async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as ok:
            assert ok.status == 200
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == []
    assert any(r.getMessage().startswith("http bad request") for r in caplog.records)
