"""Metrics observed by the real pipeline and delivery (a feed server and a fake Bot API on
127.0.0.1, a SQLite file), read back through the Prometheus text format."""

import asyncio
import io
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.telegram_api import FakeTelegram
from tests.poll_harness import Clock, poll_parts
from watcher import __version__
from watcher.delivery import Delivery
from watcher.loop_lag import LoopLagMonitor
from watcher.metrics import Metrics
from watcher.model import CONSOLE_CHAT, Alert, Entry, FeedDef, FeedSuccess, Hit, RuleDef
from watcher.pipeline import poll_feed, record_crash
from watcher.store import Store
from watcher.telegram.format import render_alert
from watcher.telegram.send import TelegramSender

TOKEN = "123456:TEST-token-for-the-fake-bot-api-server"
RULES = [
    RuleDef("peacekeepers", '"peacekeeping contingent" OR "Russian peacekeepers"', (-100,)),
    RuleDef("karabakh", "Karabakh", (-100, 42)),
]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    text = metrics.exposition().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def now() -> datetime:
    return datetime.now(UTC)


def rss(*items: tuple[int, str]) -> str:
    body = "".join(
        f"<item><title>{title}</title><guid>id-{n}</guid><link>https://news.example/{n}</link>"
        "</item>"
        for n, title in items
    )
    return f"<rss version='2.0'><channel><title>t</title>{body}</channel></rss>"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "w.db") as opened:
        yield opened


async def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics(version="9.9.9", process_metrics=False)
    first.observe_new_entries(3)
    assert value(scrape(first), "watcher_new_entries_total") == 3
    assert value(scrape(second), "watcher_new_entries_total") == 0
    assert value(scrape(first), "watcher_build_info", version=__version__, python=_python()) == 1
    assert ("watcher_build_info", frozenset({("version", "9.9.9"), ("python", _python())})) in (
        scrape(second)
    )
    assert "process_cpu_seconds_total" in {name for name, _ in scrape(first)}
    assert "process_cpu_seconds_total" not in {name for name, _ in scrape(second)}


def _python() -> str:
    import platform

    return platform.python_version()


async def test_every_fixed_label_is_there_from_the_start() -> None:
    samples = scrape(Metrics(process_metrics=False))
    for outcome in ("new_entries", "not_modified", "fetch_error", "gone", "crashed"):
        assert value(samples, "watcher_polls_total", outcome=outcome) == 0
    for outcome in ("sent", "rate_limited", "blocked", "migrated", "dead"):
        assert value(samples, "watcher_telegram_sends_total", outcome=outcome) == 0
    assert value(samples, "watcher_config_reloads_total", result="failure") == 0
    assert value(samples, "watcher_config_last_reload_successful") == 1


async def test_polls_are_counted_by_outcome_with_parse_time_hits_and_alerts(
    store: Store,
) -> None:
    metrics = Metrics(process_metrics=False)
    clock = Clock()
    async with poll_parts(store.path, RULES, clock=clock, store=store, metrics=metrics) as (
        server,
        context,
    ):
        feed = FeedDef("news", server.serve("/rss", rss((1, "Weather in Baku"))), 300)
        await store.sync_feeds([feed], clock())

        async def poll() -> None:
            state = await store.feed(feed.name)
            assert state is not None
            await poll_feed(feed, state, context)
            clock.now += timedelta(minutes=10)

        await poll()  # first poll: 1 new entry, recorded without alerting
        server.serve(
            "/rss",
            rss(
                (3, "Russian peacekeepers leave Karabakh"),
                (2, "Karabakh road reopens"),
                (1, "Weather in Baku"),
            ),
        )
        await poll()  # 2 new: hits peacekeepers 1, karabakh 2 → messages to -100 ×2, 42 ×2
        await poll()  # 304
        server.serve("/rss", rss((3, "Russian peacekeepers leave Karabakh")), validators=False)
        await poll()  # changed body, nothing new
        await poll()  # same body again, without validators: not parsed
        server.serve("/rss", "not a feed at all", content_type="text/plain")
        await poll()  # parse error
        server.serve("/rss", "", status=500)
        await poll()  # fetch error
        state = await store.feed(feed.name)
        assert state is not None
        await record_crash(feed, state, context, "internal error: KeyError()")
        server.serve("/rss", "", status=410)
        await poll()  # gone

    samples = scrape(metrics)
    polls = {
        outcome: value(samples, "watcher_polls_total", outcome=outcome)
        for outcome in (
            "new_entries",
            "no_new_entries",
            "unchanged",
            "not_modified",
            "fetch_error",
            "parse_error",
            "gone",
            "crashed",
        )
    }
    assert polls == {
        "new_entries": 2,
        "no_new_entries": 1,
        "unchanged": 1,
        "not_modified": 1,
        "fetch_error": 1,
        "parse_error": 1,
        "gone": 1,
        "crashed": 1,
    }
    # Every poll but the crash was timed; every body that was parsed (4) was timed.
    assert value(samples, "watcher_poll_duration_seconds_count") == 8
    assert value(samples, "watcher_parse_duration_seconds_count") == 4
    assert 0 < value(samples, "watcher_parse_duration_seconds_sum") < 4
    assert value(samples, "watcher_new_entries_total") == 3
    assert value(samples, "watcher_rule_hits_total", rule="karabakh") == 2
    assert value(samples, "watcher_rule_hits_total", rule="peacekeepers") == 1
    assert value(samples, "watcher_alerts_queued_total") == 4
    assert (await store.outbox_counts())["pending"] == 4


async def queue(store: Store, *chats: int) -> None:
    feeds = await store.feeds()
    if not feeds:
        await store.sync_feeds([FeedDef("apa", "https://apa.az/rss", 600)], now())
        feeds = await store.feeds()
    async with store.write() as tx:
        n = await store.count_entries()
        entry = Entry(guid=f"g{n}", link=f"https://apa.az/{n}", title="Karabakh", summary="")
        (new,) = await tx.insert_entries(feeds[0].id, [entry], now())
        text = render_alert(entry, "apa", [Hit("karabakh")])
        await tx.enqueue([Alert(new.id, chat, text, ("karabakh",)) for chat in chats], now())


async def test_sends_are_counted_by_outcome(store: Store) -> None:
    metrics = Metrics(process_metrics=False)
    async with FakeTelegram(TOKEN) as fake:
        sender = TelegramSender(TOKEN, api_base_url=fake.base_url, timeout_s=3)
        try:
            fake.block_chat(7)
            fake.migrate_chat(-100, -1009)
            fake.unknown_chats.add(13)
            fake.fail_next(1, 429, methods=["sendMessage"])
            await queue(store, 42)  # 429 first, then sent
            await queue(store, 7, -100, 13)
            delivery = Delivery(store, sender, clock=now, metrics=metrics)
            await delivery.drain()
            await asyncio.sleep(1.05)  # Telegram's retry_after of 1 s
            await delivery.drain()

            fake.start_downtime(502, methods=["sendMessage"])
            await queue(store, 43)
            await delivery.drain()  # a transient failure: retried later
            a_day_later = Delivery(
                store,
                sender,
                clock=lambda: now() + timedelta(hours=25),
                retry_for=timedelta(hours=24),
                metrics=metrics,
            )
            await a_day_later.drain()  # still down after retry_for: given up
        finally:
            await sender.close()
    await queue(store, CONSOLE_CHAT)
    console = Delivery(store, None, clock=now, console=io.StringIO(), metrics=metrics)
    assert await console.drain() == 1

    samples = scrape(metrics)
    sends = {
        outcome: value(samples, "watcher_telegram_sends_total", outcome=outcome)
        for outcome in (
            "sent",
            "rate_limited",
            "retry",
            "dead",
            "blocked",
            "rejected",
            "migrated",
            "bot_paused",
        )
    }
    assert sends == {
        "sent": 2,  # 42 after its 429, and -100 at its new id
        "rate_limited": 1,
        "retry": 1,
        "dead": 1,
        "blocked": 1,
        "rejected": 1,  # chat 13 not found
        "migrated": 1,
        "bot_paused": 0,
    }
    assert fake.count_429 == 1
    assert value(samples, "watcher_telegram_retry_after_seconds_total") == 1
    assert value(samples, "watcher_console_alerts_total") == 1


async def test_refresh_reads_outbox_and_feed_states_from_the_store(store: Store) -> None:
    metrics = Metrics(process_metrics=False)
    started = now()
    feeds = [FeedDef(name, f"https://{name}.example/rss", 600) for name in "abcd"]
    await store.sync_feeds(feeds, started)
    ids = {state.name: state.id for state in await store.feeds()}
    success = FeedSuccess(started, 200, None, None, None, started, None)
    async with store.write() as tx:
        await tx.feed_succeeded(ids["a"], success)
        await tx.feed_succeeded(ids["b"], success)
        await tx.feed_failed(ids["b"], now=started, status=500, error="x", next_check_at=started)
        await tx.feed_failed(ids["c"], now=started, status=500, error="x", next_check_at=started)
        await tx.feed_disabled(ids["d"], now=started, status=410, reason="gone")
    await queue(store, 1, 2)
    await queue(store, 3)
    first = (await store.due_outbox(now()))[0]
    await store.mark_sent(first.id, 1, now())

    await metrics.refresh(store, now=started + timedelta(minutes=5), failing_after=1)
    samples = scrape(metrics)
    assert value(samples, "watcher_outbox_messages", status="pending") == 2
    assert value(samples, "watcher_outbox_messages", status="sent") == 1
    assert value(samples, "watcher_outbox_messages", status="dead") == 0
    age = value(samples, "watcher_outbox_oldest_pending_age_seconds")
    assert 299 <= age <= 301
    states = {s: value(samples, "watcher_feeds", state=s) for s in ("ok", "new", "failing")}
    assert states == {"ok": 1, "new": 0, "failing": 2}
    assert value(samples, "watcher_feeds", state="disabled") == 1

    for item in await store.due_outbox(now()):
        await store.mark_sent(item.id, 1, now())
    await metrics.refresh(store, now=now(), failing_after=5)
    samples = scrape(metrics)
    assert value(samples, "watcher_outbox_oldest_pending_age_seconds") == 0
    assert value(samples, "watcher_feeds", state="failing") == 0  # below the new threshold


async def test_loop_lag_is_measured_when_the_loop_is_blocked() -> None:
    metrics = Metrics(process_metrics=False)
    monitor = LoopLagMonitor(period_s=0.01, on_lag=metrics.observe_loop_lag)
    monitor.start()
    try:
        await asyncio.sleep(0.05)
        assert monitor.last_beat is not None
        time.sleep(0.2)  # noqa: ASYNC251 (blocking the loop is what the monitor catches)
        await asyncio.sleep(0.03)
    finally:
        await monitor.stop()
    samples = scrape(metrics)
    assert value(samples, "watcher_event_loop_lag_seconds_count") >= 3
    assert value(samples, "watcher_event_loop_lag_seconds_bucket", le="0.1") < value(
        samples, "watcher_event_loop_lag_seconds_count"
    )
    assert value(samples, "watcher_event_loop_lag_seconds_sum") >= 0.18
    assert monitor.last_lag_s < 0.1  # the beats after the block were on time again
    assert value(samples, "watcher_event_loop_last_lag_seconds") == monitor.last_lag_s


async def test_config_reloads_by_result() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.observe_reload(applied=True)
    metrics.observe_reload(applied=False)
    samples = scrape(metrics)
    assert value(samples, "watcher_config_reloads_total", result="success") == 1
    assert value(samples, "watcher_config_reloads_total", result="failure") == 1
    assert value(samples, "watcher_config_last_reload_successful") == 0
