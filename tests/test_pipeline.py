"""poll_feed() on real parts: a feed server on 127.0.0.1, a SQLite file, the real matcher."""

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.fakes.feed_server import FeedServer
from tests.poll_harness import Clock, poll_parts
from watcher.model import CONSOLE_CHAT, FeedDef, FeedState, RuleDef
from watcher.pipeline import PollContext, poll_feed, record_crash

RULES = [
    RuleDef("peacekeepers", '"peacekeeping contingent" OR @russian_peacekeepers', (-100,)),
    RuleDef("karabakh", "Karabakh", (-100, 42)),
]
ACTORS = {"russian_peacekeepers": ["Russian peacekeepers", "Russian peacekeeping contingent"]}


def item(n: int, title: str, summary: str = "", link: str | None = None) -> str:
    return (
        f"<item><title>{title}</title><guid>id-{n}</guid>"
        f"<link>{link or f'https://news.example/{n}'}</link>"
        f"<description>{summary}</description></item>"
    )


def rss(*items: str) -> str:
    return f"<rss version='2.0'><channel><title>t</title>{''.join(items)}</channel></rss>"


Parts = tuple[FeedServer, PollContext, "Clock"]


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    clock = Clock()
    async with poll_parts(tmp_path / "w.db", RULES, ACTORS, clock=clock) as (server, context):
        yield server, context, clock


async def state_of(context: PollContext, feed: FeedDef) -> FeedState:
    state = await context.store.feed(feed.name)
    assert state is not None
    return state


async def setup_feed(context: PollContext, server: FeedServer, body: str) -> FeedDef:
    feed = FeedDef("news", server.serve("/rss", body), 300)
    await context.store.sync_feeds([feed], context.clock())
    return feed


async def test_first_poll_records_without_alerting_then_new_entries_alert(parts: Parts) -> None:
    server, context, clock = parts
    feed = await setup_feed(context, server, rss(item(1, "Russian peacekeepers in Karabakh")))

    first = await poll_feed(feed, await state_of(context, feed), context)
    assert (first.status, first.new, first.primed, first.alerts) == (200, 1, True, 0)
    assert await context.store.outbox_counts() == {}

    server.serve(
        "/rss",
        rss(
            item(2, "Russian peacekeeping contingent leaves Karabakh", "Tripartite &amp; more"),
            item(3, "Weather in Baku"),
            item(1, "Russian peacekeepers in Karabakh"),
        ),
    )
    clock.now += timedelta(minutes=10)
    second = await poll_feed(feed, await state_of(context, feed), context)
    assert (second.new, second.hits, second.alerts, second.primed) == (2, 2, 2, False)
    due = await context.store.due_outbox(clock.now)
    # One message per entry per chat, naming every rule that sent it there.
    assert sorted(i.chat_id for i in due) == [-100, 42]
    to_group = next(i for i in due if i.chat_id == -100)
    assert "#peacekeepers #karabakh" in to_group.text
    assert "Russian peacekeeping contingent leaves Karabakh" in to_group.text
    to_private = next(i for i in due if i.chat_id == 42)
    assert "#karabakh" in to_private.text and "#peacekeepers" not in to_private.text


async def test_a_feed_is_fetched_with_its_own_user_agent_when_it_has_one(parts: Parts) -> None:
    server, context, _ = parts
    feed = replace(await setup_feed(context, server, rss(item(1, "Karabakh"))), user_agent="UA/1")
    report = await poll_feed(feed, await state_of(context, feed), context)
    assert report.status == 200 and server.requests[-1].headers["User-Agent"] == "UA/1"


async def test_unchanged_feed_costs_no_parse_and_no_alerts(parts: Parts) -> None:
    server, context, clock = parts
    feed = await setup_feed(context, server, rss(item(1, "Karabakh")))
    await poll_feed(feed, await state_of(context, feed), context)

    clock.now += timedelta(minutes=10)
    conditional = await poll_feed(feed, await state_of(context, feed), context)
    assert (conditional.status, conditional.parsed) == (304, False)
    assert server.requests[-1].headers.get("If-None-Match")

    server.serve("/rss", rss(item(1, "Karabakh")), validators=False)
    same_body = await poll_feed(feed, await state_of(context, feed), context)
    assert (same_body.status, same_body.parsed, same_body.new) == (200, False, 0)
    state = await state_of(context, feed)
    assert state.next_check_at is not None and state.next_check_at > clock.now


async def test_console_mode_sends_every_hit_to_the_console(parts: Parts) -> None:
    server, context, _clock = parts
    context.console = True
    feed = await setup_feed(context, server, rss(item(1, "old")))
    await poll_feed(feed, await state_of(context, feed), context)
    server.serve("/rss", rss(item(2, "Karabakh news"), item(1, "old")))
    report = await poll_feed(feed, await state_of(context, feed), context)
    assert report.alerts == 1
    (queued,) = await context.store.due_outbox(context.clock())
    assert queued.chat_id == CONSOLE_CHAT


async def test_republished_link_under_new_guid_is_not_alerted(parts: Parts) -> None:
    server, context, _clock = parts
    feed = await setup_feed(context, server, rss(item(1, "old")))
    await poll_feed(feed, await state_of(context, feed), context)
    server.serve("/rss", rss(item(2, "Karabakh", link="https://news.example/k"), item(1, "old")))
    assert (await poll_feed(feed, await state_of(context, feed), context)).alerts == 2
    server.serve("/rss", rss(item(3, "Karabakh (updated)", link="https://news.example/k/")))
    again = await poll_feed(feed, await state_of(context, feed), context)
    assert (again.new, again.updated, again.alerts) == (0, 1, 0)  # its headline changed


async def test_failures_are_recorded_and_backed_off(parts: Parts) -> None:
    server, context, clock = parts
    feed = await setup_feed(context, server, "")
    server.serve("/rss", "", status=503, headers={"Retry-After": "900"})
    report = await poll_feed(feed, await state_of(context, feed), context)
    assert report.status == 503 and report.error
    state = await state_of(context, feed)
    assert state.consecutive_errors == 1 and state.last_status == 503
    assert state.next_check_at is not None
    assert state.next_check_at - clock.now >= timedelta(seconds=900)

    server.serve("/rss", "<html><body>maintenance</body></html>", content_type="text/html")
    report = await poll_feed(feed, await state_of(context, feed), context)
    assert report.error is not None and "not a feed" in report.error
    assert (await state_of(context, feed)).consecutive_errors == 2

    server.serve("/rss", rss(item(1, "back")))
    report = await poll_feed(feed, await state_of(context, feed), context)
    assert report.error is None and report.primed
    assert (await state_of(context, feed)).consecutive_errors == 0


async def test_permanent_redirect_moves_the_feed(parts: Parts) -> None:
    server, context, clock = parts
    feed = await setup_feed(context, server, "")
    target = server.serve("/new.xml", rss(item(1, "x")))
    server.serve("/rss", "", redirect_to=target, redirect_status=301)
    report = await poll_feed(feed, await state_of(context, feed), context)
    assert report.moved_to == target
    state = await state_of(context, feed)
    assert (state.url, state.config_url) == (target, feed.url)
    clock.now += timedelta(minutes=10)
    await poll_feed(feed, state, context)
    assert server.requests[-1].path == "/new.xml"  # asks the new URL directly

    # An edited config URL wins over the redirect.
    edited = FeedDef("news", server.serve("/edited.xml", rss(item(1, "x"))), 300)
    await context.store.sync_feeds([edited], clock.now)
    assert (await state_of(context, edited)).url == edited.url


async def test_temporary_redirect_does_not_move_the_feed(parts: Parts) -> None:
    server, context, _clock = parts
    feed = await setup_feed(context, server, "")
    target = server.serve("/new.xml", rss(item(1, "x")))
    server.serve("/rss", "", redirect_to=target, redirect_status=302)
    report = await poll_feed(feed, await state_of(context, feed), context)
    assert report.moved_to is None and report.error is None
    assert (await state_of(context, feed)).url == feed.url


async def test_410_gone_disables_the_feed_until_its_url_changes(parts: Parts) -> None:
    server, context, clock = parts
    feed = await setup_feed(context, server, "")
    server.serve("/rss", "", status=410)
    report = await poll_feed(feed, await state_of(context, feed), context)
    assert report.disabled
    assert [s.name for s in await context.store.due_feeds(clock.now + timedelta(days=30))] == []
    moved = FeedDef("news", server.serve("/v2.xml", rss(item(1, "x"))), 300)
    await context.store.sync_feeds([moved], clock.now)
    assert [s.name for s in await context.store.due_feeds(clock.now)] == ["news"]


def dated(n: int, title: str, at: datetime) -> str:
    """An item with a publication date."""
    return item(n, title).replace("</item>", f"<pubDate>{format_datetime(at)}</pubDate></item>")


async def test_a_feed_given_a_new_url_alerts_only_what_is_newer_than_the_old_urls_last_news(
    parts: Parts,
) -> None:
    # The new URL's backlog is history, not a flood of alerts; but what was published
    # since the old URL last answered (it broke: the reason for the edit) is news.
    server, context, clock = parts
    feed = await setup_feed(context, server, rss(item(1, "Russian peacekeepers in Karabakh")))
    assert (await poll_feed(feed, await state_of(context, feed), context)).primed
    last_news = clock.now
    clock.now += timedelta(days=2)  # the old URL failed meanwhile
    backlog = [
        dated(n, f"Russian peacekeepers in Karabakh, day {n}", last_news - timedelta(days=n))
        for n in range(2, 6)
    ]
    since = dated(9, "Russian peacekeepers leave Karabakh", last_news + timedelta(days=1))
    undated = item(10, "Russian peacekeepers: an undated item")
    # The old URL's item, worded the new URL's way: updated, but no news either.
    reworded = item(1, "Russian peacekeepers in Karabakh", "Karabakh: the full story")
    moved = FeedDef("news", server.serve("/v2.xml", rss(since, undated, reworded, *backlog)), 300)
    await context.store.sync_feeds([moved], clock.now)
    report = await poll_feed(moved, await state_of(context, moved), context)
    assert (report.new, report.updated, report.alerts) == (6, 1, 2)  # item 9, two chats
    assert all(
        "leave Karabakh" in alert.text for alert in await context.store.due_outbox(clock.now)
    )
    # From then on the feed is as any other: its next new item alerts.
    server.serve(
        "/v2.xml", rss(item(11, "Karabakh road reopens"), since, undated, reworded, *backlog)
    )
    clock.now += timedelta(minutes=10)
    after = await poll_feed(moved, await state_of(context, moved), context)
    assert (after.new, after.alerts) == (1, 2)


async def test_failing_is_reported_once_and_recovery_once(parts: Parts) -> None:
    server, context, clock = parts
    context.failing_after = 3
    feed = await setup_feed(context, server, "")
    server.serve("/rss", "", status=500)
    reports = []
    for _ in range(5):
        reports.append(await poll_feed(feed, await state_of(context, feed), context))
        clock.now += timedelta(hours=7)
    assert [r.became_failing for r in reports] == [False, False, True, False, False]
    assert not any(r.recovered for r in reports)

    server.serve("/rss", rss(item(1, "back")))
    back = await poll_feed(feed, await state_of(context, feed), context)
    assert back.recovered and not back.became_failing
    again = await poll_feed(feed, await state_of(context, feed), context)
    assert not again.recovered


async def test_publisher_freshness_hints_delay_the_next_check(parts: Parts) -> None:
    server, context, clock = parts
    feed = await setup_feed(context, server, "")
    server.serve("/rss", rss(item(1, "x")), headers={"Cache-Control": "max-age=1200"})
    await poll_feed(feed, await state_of(context, feed), context)
    state = await state_of(context, feed)
    assert state.next_check_at is not None
    assert timedelta(seconds=1200) <= state.next_check_at - clock.now <= timedelta(seconds=1320)

    ttl_feed = rss(item(1, "x")).replace("<title>t</title>", "<title>t</title><ttl>45</ttl>")
    server.serve("/rss", ttl_feed, validators=True)
    clock.now += timedelta(hours=1)
    await poll_feed(feed, await state_of(context, feed), context)
    state = await state_of(context, feed)
    assert state.ttl_s == 2700
    assert state.next_check_at is not None
    assert timedelta(seconds=2700) <= state.next_check_at - clock.now <= timedelta(seconds=2990)

    # A 304 remembers the ttl; a hint beyond max_interval is capped.
    clock.now += timedelta(hours=1)
    context.max_interval_s = 1800
    report = await poll_feed(feed, await state_of(context, feed), context)
    assert report.status == 304
    state = await state_of(context, feed)
    assert state.next_check_at is not None
    assert timedelta(seconds=1800) <= state.next_check_at - clock.now <= timedelta(seconds=1980)


async def test_auto_interval_follows_publishing(parts: Parts) -> None:
    server, context, clock = parts
    context.min_interval_s, context.max_interval_s = 60, 7200
    feed = FeedDef("news", server.serve("/rss", rss(item(0, "x"))), 600, auto_interval=True)
    await context.store.sync_feeds([feed], clock.now)
    await poll_feed(feed, await state_of(context, feed), context)  # 1 entry this week
    state = await state_of(context, feed)
    assert state.next_check_at is not None
    assert timedelta(seconds=7200) <= state.next_check_at - clock.now  # quiet: the maximum

    server.serve("/rss", rss(*(item(n, f"story {n}") for n in range(60))))
    clock.now += timedelta(hours=2)
    await poll_feed(feed, await state_of(context, feed), context)  # 60 entries this week
    state = await state_of(context, feed)
    assert state.next_check_at is not None
    expected = 7 * 24 * 3600 // (2 * 60)
    assert timedelta(seconds=expected) <= state.next_check_at - clock.now
    assert state.next_check_at - clock.now <= timedelta(seconds=expected + 120)


async def test_followers_get_alerts_and_muted_ones_get_them_held(parts: Parts) -> None:
    server, context, clock = parts
    store = context.store
    for chat in (7, 8, 9):
        await store.follow(chat, "karabakh", clock.now)
    await store.follow(9, "peacekeepers", clock.now)
    await store.follow(-100, "karabakh", clock.now)  # a rule chat that also follows
    await store.set_muted_until(8, clock.now + timedelta(hours=2))
    await store.add_subscriber(10, clock.now)
    await store.set_digest(10, "daily", "08:00")
    await store.follow(10, "karabakh", clock.now)
    await store.record_chat_migration(42, 4242, clock.now)  # the rule's chat 42 moved

    feed = await setup_feed(context, server, rss(item(1, "old")))
    await poll_feed(feed, await state_of(context, feed), context)
    server.serve("/rss", rss(item(2, "Russian peacekeepers in Karabakh"), item(1, "old")))
    report = await poll_feed(feed, await state_of(context, feed), context)

    due = await store.due_outbox(clock.now)
    by_chat = {i.chat_id: i for i in due}
    assert sorted(by_chat) == [-100, 7, 9, 4242]
    assert "#peacekeepers #karabakh" in by_chat[9].text  # one message, both rules
    assert "#peacekeepers" not in by_chat[7].text
    assert report.alerts == 4 and report.held == 2
    assert [h.chat_id for h in await store.held_alerts(8)] == [8]
    assert [h.rules for h in await store.held_alerts(10)] == [("karabakh",)]


async def test_with_an_allow_list_only_the_chats_it_names_get_alerts(parts: Parts) -> None:
    # Chat 7 followed while the bot was open; 8 is on the list; 9 was, before it migrated.
    server, context, clock = parts
    store = context.store
    for chat in (7, 8, 9):
        await store.follow(chat, "karabakh", clock.now)
    await store.record_chat_migration(9, 99, clock.now)
    ruleset = replace(context.rules(), may_subscribe=frozenset({8, 9}))
    context.rules = lambda: ruleset

    feed = await setup_feed(context, server, rss(item(1, "old")))
    await poll_feed(feed, await state_of(context, feed), context)
    server.serve("/rss", rss(item(2, "Karabakh road reopens"), item(1, "old")))
    await poll_feed(feed, await state_of(context, feed), context)

    chats = sorted(i.chat_id for i in await store.due_outbox(clock.now))
    assert chats == [-100, 8, 42, 99]  # the rule's own chats come from the config


async def test_alerts_show_the_published_time_in_the_operators_zone(parts: Parts) -> None:
    from zoneinfo import ZoneInfo

    server, context, _clock = parts
    context.timezone = ZoneInfo("Asia/Baku")
    feed = await setup_feed(context, server, rss(item(1, "old")))
    await poll_feed(feed, await state_of(context, feed), context)
    dated = item(2, "Karabakh").replace(
        "</item>", "<pubDate>Wed, 08 Mar 2023 10:00:00 +0000</pubDate></item>"
    )
    server.serve("/rss", rss(dated, item(1, "old")))
    await poll_feed(feed, await state_of(context, feed), context)
    (queued, *_) = await context.store.due_outbox(context.clock())
    assert "— news · 8 Mar 2023 14:00" in queued.text


async def test_a_crashed_poll_is_recorded_as_a_failure(parts: Parts) -> None:
    server, context, clock = parts
    feed = await setup_feed(context, server, rss(item(1, "x")))
    report = await record_crash(feed, await state_of(context, feed), context, "boom")
    assert report.error == "boom"
    state = await state_of(context, feed)
    assert (state.consecutive_errors, state.last_error) == (1, "boom")
    assert state.next_check_at is not None and state.next_check_at > clock.now


async def test_an_entry_published_before_the_retention_horizon_is_never_alerted(
    parts: Parts,
) -> None:
    """Its identity may have been pruned: it could be an old alert coming back."""
    server, context, clock = parts
    context.retention_s = 90 * 86400
    feed = await setup_feed(context, server, rss(item(1, "old")))
    await poll_feed(feed, await state_of(context, feed), context)

    def dated(n: int, title: str, published: datetime) -> str:
        stamp = published.strftime("%a, %d %b %Y %H:%M:%S +0000")
        return item(n, title).replace("</item>", f"<pubDate>{stamp}</pubDate></item>")

    server.serve(
        "/rss",
        rss(
            dated(2, "Karabakh, 91 days ago", clock.now - timedelta(days=91)),
            dated(3, "Karabakh, 89 days ago", clock.now - timedelta(days=89)),
            item(4, "Karabakh, undated"),
            item(1, "old"),
        ),
    )
    clock.now += timedelta(minutes=10)
    report = await poll_feed(feed, await state_of(context, feed), context)

    assert report.new == 3  # all recorded, so none comes back as new later
    alerted = [i.text for i in await context.store.due_outbox(clock.now) if i.chat_id == 42]
    assert len(alerted) == 2
    assert not any("91 days ago" in text for text in alerted)
