"""Entry identity and updated entries, end to end through poll_feed(): a feed server on
127.0.0.1, a SQLite file, the real matcher."""

import html
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import telegram_length
from tests.poll_harness import Clock, poll_parts
from watcher.digests import send_digest
from watcher.model import Entry, FeedDef, FeedState, Hit, RuleDef, Span
from watcher.pipeline import PollContext, PollReport, poll_feed
from watcher.replay_command import replay_entries
from watcher.rules import compile_rules
from watcher.store import prune
from watcher.store.history import EntryHistory
from watcher.stories import StorySettings
from watcher.story_alerts import StoryTracker
from watcher.telegram.format import MESSAGE_LIMIT, render_alert

RULES = [
    RuleDef("peacekeepers", '"Russian peacekeepers" OR "peacekeeping contingent"', (-100,)),
    RuleDef("karabakh", "Karabakh", (42,)),
]
START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PUBLISHED = datetime(2026, 11, 28, 11, 47, 12, tzinfo=UTC)
LINK = "https://news.example/2026/11/28/road"


def item(
    guid: str,
    title: str,
    summary: str = "",
    *,
    link: str = LINK,
    published: datetime | None = PUBLISHED,
) -> str:
    date = f"<pubDate>{published:%a, %d %b %Y %H:%M:%S} +0000</pubDate>" if published else ""
    return (
        f"<item><title>{html.escape(title)}</title><guid>{html.escape(guid)}</guid>"
        f"<link>{html.escape(link)}</link><description>{html.escape(summary)}</description>"
        f"{date}</item>"
    )


def rss(*items: str) -> str:
    return f"<rss version='2.0'><channel><title>t</title>{''.join(items)}</channel></rss>"


OLD = item("old", "Weather in Baku", link="https://news.example/weather")


class Parts:
    def __init__(self, server: FeedServer, context: PollContext, clock: Clock) -> None:
        self.server, self.context, self.clock, self.store = server, context, clock, context.store
        self.feed = FeedDef("news", server.url("/rss"), 300)

    async def start(self, *items: str) -> None:
        """The feed's first poll (recorded, not alerted)."""
        await self.store.sync_feeds([self.feed], self.clock.now)
        assert (await self.poll(*items)).primed

    async def poll(
        self,
        *items: str,
        after: timedelta = timedelta(minutes=10),
        feed: FeedDef | None = None,
    ) -> PollReport:
        feed = feed or self.feed
        self.server.serve(urlsplit(feed.url).path, rss(*items))
        self.clock.now += after
        state = await self.store.feed(feed.name)
        assert isinstance(state, FeedState)
        report = await poll_feed(feed, state, self.context)
        assert report.error is None
        return report

    def outbox(self) -> list[tuple[int, str]]:
        """(chat, text) of every outbox row, oldest first."""
        with sqlite3.connect(self.store.path) as db:
            return db.execute("SELECT chat_id, text FROM outbox ORDER BY id").fetchall()

    def rows(self) -> list[tuple[int, int, int | None, str]]:
        """(id, chat, edited row, text) of every outbox row, oldest first."""
        with sqlite3.connect(self.store.path) as db:
            return db.execute(
                "SELECT id, chat_id, edit_of, text FROM outbox ORDER BY id"
            ).fetchall()

    def entries(self) -> list[tuple[str, str, float | None]]:
        with sqlite3.connect(self.store.path) as db:
            return db.execute(
                "SELECT title, summary, updated_at FROM entries ORDER BY id"
            ).fetchall()


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    clock = Clock(START)
    async with poll_parts(tmp_path / "w.db", RULES, clock=clock) as (server, context):
        yield Parts(server, context, clock)


async def test_a_guid_that_changes_with_the_headline_is_an_update_not_news(parts: Parts) -> None:
    await parts.start(OLD)
    first = await parts.poll(item("road-1", "Karabakh road reopens"), OLD)
    assert (first.new, first.alerts) == (1, 1)

    edited = await parts.poll(item("road-1-v2", "Karabakh road reopens to trucks"), OLD)
    assert (edited.new, edited.updated, edited.alerts) == (0, 1, 0)
    assert len(parts.outbox()) == 1
    title, _, updated_at = parts.entries()[-1]
    assert (title, updated_at) == ("Karabakh road reopens to trucks", parts.clock.now.timestamp())


async def test_a_feed_that_churns_guids_and_links_alerts_once(parts: Parts) -> None:
    await parts.start(OLD)
    title = "Karabakh road reopens after talks"
    first = await parts.poll(item("r1", title, link=f"{LINK}?session=1"), OLD)
    assert first.alerts == 1
    for n in range(2, 5):  # a new guid and link every time; the title and time stay
        again = await parts.poll(item(f"r{n}", title, link=f"{LINK}?session={n}"), OLD)
        assert (again.new, again.updated, again.alerts) == (0, 0, 0)
    assert len(parts.outbox()) == 1


async def test_link_variants_under_new_guids_are_the_same_entry(parts: Parts) -> None:
    await parts.start(OLD)
    # Undated: no title key to fall back on, the link alone must recognise the entry.
    first = await parts.poll(item("v0", "Karabakh road reopens", published=None), OLD)
    assert first.alerts == 1
    variants = [
        "http://news.example/2026/11/28/road",
        "https://www.news.example/2026/11/28/road/",
        "https://news.example/2026/11/28/road?utm_source=telegram&utm_medium=social",
        "https://news.example/2026/11/28/road/amp",
        "https://amp.news.example/2026/11/28/road",
        "https://news-example.cdn.ampproject.org/c/s/news.example/2026/11/28/road",
        "https://news.example/2026/11/28/road?fbclid=abc#comments",
    ]
    for n, link in enumerate(variants, start=1):
        again = await parts.poll(
            item(f"v{n}", "Karabakh road reopens", link=link, published=None), OLD
        )
        assert (again.new, again.updated, again.alerts) == (0, 0, 0), link
    assert len(parts.outbox()) == 1


async def test_an_entry_back_after_a_month_is_not_alerted_again(parts: Parts) -> None:
    await parts.start(OLD)
    road = item("road-1", "Karabakh road reopens")
    assert (await parts.poll(road, OLD)).alerts == 1
    await parts.poll(OLD)  # it drops out of the feed
    # A month later: the daily prune has run (its delivered alert is gone, its identity
    # is kept for the retention period), and the feed lists it again.
    parts.clock.now += timedelta(days=30)
    with sqlite3.connect(parts.store.path) as db:
        db.execute("UPDATE outbox SET status = 'sent', sent_at = ?", (START.timestamp(),))
    pruned = await prune(
        parts.store, parts.clock.now, keep_entries_s=90 * 86400, keep_outbox_s=7 * 86400
    )
    assert (pruned.outbox_deleted, pruned.entries_deleted) == (1, 0)
    back = await parts.poll(road, OLD)
    assert (back.new, back.updated, back.alerts) == (0, 0, 0)
    assert parts.outbox() == []


async def test_an_update_that_newly_hits_a_rule_alerts_once_marked_updated(parts: Parts) -> None:
    await parts.start(OLD)
    before = item("road-1", "Road to Khankendi reopens", "Traffic resumed on Monday.")
    assert (await parts.poll(before, OLD)).alerts == 0  # no rule hits it

    after = item(
        "road-1", "Road to Khankendi reopens", "Russian peacekeepers escorted the first trucks."
    )
    report = await parts.poll(after, OLD)
    assert (report.new, report.updated, report.alerts) == (0, 1, 1)
    ((chat, text),) = parts.outbox()
    assert chat == -100
    assert text.startswith("<i>Updated:</i> <b>") and "Russian peacekeepers" in text
    assert "#peacekeepers" in text
    assert (await parts.poll(after, OLD)).alerts == 0
    # Edited back and forth: the rule hit the text in between, so nothing new.
    assert (await parts.poll(before, OLD)).alerts == 0
    assert (await parts.poll(after, OLD)).alerts == 0
    assert len(parts.outbox()) == 1


async def test_markup_case_and_punctuation_changes_are_no_update(parts: Parts) -> None:
    await parts.start(OLD)
    first = item("r1", "Karabakh road reopens", "<p>Russian peacekeepers left.</p>")
    assert (await parts.poll(first, OLD)).alerts == 2
    restyled = item(
        "r1", "KARABAKH road  reopens!", "<div><b>Russian</b>  peacekeepers <i>left</i></div>"
    )
    report = await parts.poll(restyled, OLD)
    assert (report.new, report.updated, report.alerts) == (0, 0, 0)
    assert parts.entries()[-1][2] is None  # never marked updated


async def test_a_chat_that_had_the_entry_gets_no_second_message(parts: Parts) -> None:
    await parts.start(OLD)
    await parts.store.follow(42, "peacekeepers", parts.clock.now)  # 42 also follows this
    assert (await parts.poll(item("r1", "Karabakh road reopens"), OLD)).alerts == 1

    edited = item("r1", "Karabakh road reopens as Russian peacekeepers leave")
    report = await parts.poll(edited, OLD)
    # "peacekeepers" newly hits: its chat -100 is told, 42 had the entry already.
    assert (report.updated, report.alerts) == (1, 1)
    assert [chat for chat, _ in parts.outbox()] == [42, -100]


async def test_realert_on_update_alerts_every_chat_again_once_per_version(
    parts: Parts,
) -> None:
    await parts.start(OLD)
    assert (await parts.poll(item("r1", "Karabakh road reopens"), OLD)).alerts == 1
    await parts.store.follow(7, "karabakh", parts.clock.now)  # a follower since

    # Off (the default): "karabakh" hit the text before, so no one is told.
    quiet = await parts.poll(item("r1", "Karabakh road reopens to trucks"), OLD)
    assert (quiet.updated, quiet.alerts) == (1, 0)

    parts.context.realert_on_update = True
    loud = await parts.poll(item("r1", "Karabakh road reopens to all traffic"), OLD)
    # On: every chat of every rule the new text hits is told, 42 (which had it) again.
    assert (loud.updated, loud.alerts) == (1, 2)
    again = parts.outbox()[1:]
    assert sorted(chat for chat, _ in again) == [7, 42]
    for _, text in again:
        assert text.startswith("<i>Updated:</i>")
        assert "Karabakh road reopens to all traffic" in text
    # A feed flipping between versions tells each chat of each version once (neither had
    # been told of the trucks: that change came while realert_on_update was off).
    versions = ["Karabakh road reopens to trucks", "Karabakh road reopens to all traffic"]
    told = [(await parts.poll(item("r1", title), OLD)).alerts for title in versions * 3]
    assert told == [2, 0, 0, 0, 0, 0]
    # A version never seen before is news again.
    assert (await parts.poll(item("r1", "Karabakh road closes again"), OLD)).alerts == 2


async def test_realert_on_update_never_repeats_a_version_a_chat_was_told_of(
    parts: Parts,
) -> None:
    await parts.start(OLD)
    await parts.store.follow(9, "karabakh", parts.clock.now)
    parts.context.realert_on_update = True
    assert (await parts.poll(item("r1", "Karabakh road reopens"), OLD)).alerts == 2  # 42, 9
    # A version no rule hits tells no one; coming back to the first is no news either.
    flips = ["Road reopens", "Karabakh road reopens"] * 2
    assert [(await parts.poll(item("r1", t), OLD)).alerts for t in flips] == [0, 0, 0, 0]


async def test_realert_on_update_counts_what_a_digest_showed(parts: Parts) -> None:
    await parts.start(OLD)
    await parts.store.follow(9, "karabakh", parts.clock.now)
    await parts.store.set_digest(9, "daily", "08:00")
    parts.context.realert_on_update = True
    assert (await parts.poll(item("r1", "Karabakh road reopens"), OLD)).held == 1
    await parts.store.set_digest(9, "off", None)
    # 9's digest, still to come, holds the entry: 42 alone hears of the change now.
    changed = await parts.poll(item("r1", "Karabakh road reopens at noon"), OLD)
    assert changed.alerts == 1 and parts.outbox()[-1][0] == 42
    await send_digest(parts.store, 9, parts.clock.now, "Digest")  # shows it "at noon"
    # Back to the first words: news to 9, which only ever saw "at noon"; not to 42.
    back = await parts.poll(item("r1", "Karabakh road reopens"), OLD)
    assert back.alerts == 1 and parts.outbox()[-1][0] == 9


async def test_a_group_that_had_the_entry_before_it_migrated_is_not_told_again(
    parts: Parts,
) -> None:
    await parts.start(OLD)
    assert (await parts.poll(item("r1", "Russian peacekeepers leave"), OLD)).alerts == 1  # -100
    with sqlite3.connect(parts.store.path) as db:  # delivered (a pending row would move)
        db.execute("UPDATE outbox SET status = 'sent', sent_at = 1, message_id = 5")
    await parts.store.record_chat_migration(-100, -1009, parts.clock.now)
    await parts.store.follow(-1009, "karabakh", parts.clock.now)
    # "karabakh" newly hits: 42 is told; the group, as -1009, had the entry as -100.
    report = await parts.poll(item("r1", "Russian peacekeepers leave Karabakh"), OLD)
    assert report.alerts == 1 and parts.outbox()[-1][0] == 42


def test_an_updated_alert_stays_within_the_message_limit() -> None:
    entry = Entry("g", "https://x.az/1", "T📰 " * 400, "Karabakh 🇦🇿 " * 2000)
    hits = [Hit(f"rule_{n}_📰", (Span("summary", 0, 8, "Karabakh"),)) for n in range(400)]
    plain = render_alert(entry, "news", hits)
    updated = render_alert(entry, "news", hits, updated=True)
    assert updated.startswith("<i>Updated:</i> ") and not plain.startswith("<i>")
    assert telegram_length(updated) <= MESSAGE_LIMIT


async def test_a_chat_that_had_the_entry_gets_nothing_held_for_its_digest(parts: Parts) -> None:
    await parts.start(OLD)
    await parts.store.follow(8, "karabakh", parts.clock.now)
    assert (await parts.poll(item("r1", "Karabakh road reopens"), OLD)).alerts == 2  # 42, 8
    await parts.store.set_digest(8, "daily", "08:00")
    parts.context.realert_on_update = True
    report = await parts.poll(item("r1", "Karabakh road reopens to trucks"), OLD)
    # 42 is told again; 8, which reads digests now, gets nothing held for one.
    assert (report.updated, report.alerts, report.held) == (1, 1, 0)
    assert parts.outbox()[-1][0] == 42
    assert await parts.store.held_alerts(8) == []


async def test_realert_on_update_leaves_a_digest_still_to_come_to_show_it(
    parts: Parts,
) -> None:
    await parts.start(OLD)
    await parts.store.follow(9, "karabakh", parts.clock.now)
    await parts.store.set_digest(9, "daily", "08:00")
    assert (await parts.poll(item("r1", "Karabakh road reopens"), OLD)).held == 1
    await parts.store.set_digest(9, "off", None)
    parts.context.realert_on_update = True
    report = await parts.poll(item("r1", "Karabakh road reopens to trucks"), OLD)
    # 42 is told again; 9's digest, still held, will show the entry as it reads then.
    assert (report.alerts, report.held) == (1, 0)
    assert [chat for chat, _ in parts.outbox()] == [42, 42]
    assert [h.title for h in await parts.store.held_alerts(9)] == [
        "Karabakh road reopens to trucks"
    ]


async def test_an_entry_a_digest_carried_or_will_carry_is_not_held_or_sent_again(
    parts: Parts,
) -> None:
    await parts.start(OLD)
    for chat in (8, 9):  # daily digests, following both rules
        for rule in ("karabakh", "peacekeepers"):
            await parts.store.follow(chat, rule, parts.clock.now)
        await parts.store.set_digest(chat, "daily", "08:00")
    assert (await parts.poll(item("r1", "Karabakh road reopens"), OLD)).held == 2
    await send_digest(parts.store, 8, parts.clock.now, "Daily digest")  # 8 has had it
    await parts.store.set_digest(9, "off", None)  # 9 will get it in its next digest

    edited = item("r1", "Karabakh road reopens as Russian peacekeepers leave")
    report = await parts.poll(edited, OLD)
    # "peacekeepers" newly hits: only its configured chat -100 is told.
    assert (report.updated, report.alerts, report.held) == (1, 1, 0)
    assert [chat for chat, _ in parts.outbox()] == [42, 8, -100]  # 42, 8's digest, -100
    assert await parts.store.held_alerts(8) == []
    # 9's digest, still to come, will show the entry as it reads now.
    assert [held.title for held in await parts.store.held_alerts(9)] == [
        "Karabakh road reopens as Russian peacekeepers leave"
    ]


async def apa_and_trend_with_stories(parts: Parts) -> tuple[FeedDef, FeedDef]:
    """Stories on, and two feeds, "apa" and "trend", primed."""
    parts.context.stories = StoryTracker()
    apa = FeedDef("apa", parts.server.url("/apa"), 300)
    trend = FeedDef("trend", parts.server.url("/trend"), 300)
    await parts.store.sync_feeds([apa, trend], parts.clock.now)
    for feed in (apa, trend):
        assert (await parts.poll(OLD, feed=feed)).primed
    return apa, trend


async def test_with_stories_an_update_that_joins_a_story_edits_its_message(parts: Parts) -> None:
    apa, trend = await apa_and_trend_with_stories(parts)
    story = (
        "Russian peacekeepers leave the Khankendi road",
        "The Russian peacekeeping contingent left the road between Khankendi and Khalfali.",
    )
    first = await parts.poll(item("a1", *story, link="https://apa.az/1"), OLD, feed=apa)
    assert first.alerts == 1
    before = item(
        "t1",
        "Khankendi road: a convoy leaves",
        "A convoy left the road.",
        link="https://trend.az/1",
    )
    assert (await parts.poll(before, OLD, feed=trend)).alerts == 0

    # Trend's rewrite now hits "peacekeepers", whose chat has the story from APA already.
    after = item("t1", story[0], story[1] + " Officials confirmed.", link="https://trend.az/1")
    report = await parts.poll(after, OLD, feed=trend)
    assert (report.updated, report.alerts) == (1, 1)
    (message_id, _, _, _), (_, chat, edited, text) = parts.rows()
    assert (chat, edited) == (-100, message_id)  # an edit of the message the chat has
    assert "Also: trend" in text and not text.startswith("<i>Updated:")


async def test_an_update_of_an_entry_published_before_the_horizon_is_not_alerted(
    parts: Parts,
) -> None:
    # Still listed 200 days after publication, it changes to hit a rule: new or updated,
    # nothing published before the retention horizon alerts.
    parts.context.retention_s = 90 * 86400
    ancient = START - timedelta(days=200)
    link = "https://news.example/a"
    await parts.start(OLD, item("a", "Weather report for the week", link=link, published=ancient))
    report = await parts.poll(
        OLD, item("a", "Karabakh weather report for the week", link=link, published=ancient)
    )
    assert (report.updated, report.hits, report.alerts) == (1, 0, 0)
    assert parts.outbox() == []


async def test_a_chat_that_had_an_entry_longer_ago_than_outbox_retention_is_not_told_again(
    parts: Parts,
) -> None:
    # The outbox row that says chat 42 had the entry goes after 30 days; the entry lives
    # 90. An update that makes another of the chat's rules match is no news to it then.
    await parts.start(OLD)
    road = item("r", "Karabakh road reopens for trucks")
    assert (await parts.poll(OLD, road)).alerts == 1
    await parts.store.mark_sent(1, 1001, parts.clock.now)
    await parts.store.follow(42, "peacekeepers", parts.clock.now)
    await parts.poll(OLD, road, after=timedelta(days=31))
    await prune(parts.store, parts.clock.now, keep_entries_s=90 * 86400, keep_outbox_s=30 * 86400)
    assert parts.outbox() == []
    escorted = item("r", "Karabakh road reopens for trucks, Russian peacekeepers escort")
    report = await parts.poll(OLD, escorted)
    assert report.updated == 1
    assert [chat for chat, _ in parts.outbox()] == [-100]  # news to the peacekeepers chat only


# -- `watcher replay` shows what the daemon alerted, not what it took for history ----------


def replayed(parts: Parts, since: datetime) -> list[list[str]]:
    """The guids of each story `watcher replay` shows for the database, by story."""
    with EntryHistory.open(parts.store.path) as history:
        result = replay_entries(
            history.entries_since(since),
            compile_rules(RULES, {}),
            feeds={},
            stories=StorySettings(),
        )
    guids = guids_of(parts)
    return [[guids[entry.id] for entry in story.entries] for story in result.stories]


def guids_of(parts: Parts) -> dict[int, str]:
    """Each entry's guid as the test's feed wrote it (the store keeps it resolved)."""
    with sqlite3.connect(parts.store.path) as db:
        return {
            row[0]: row[1].rsplit("/", 1)[-1] for row in db.execute("SELECT id, guid FROM entries")
        }


async def test_replay_leaves_out_what_the_daemon_took_for_history(parts: Parts) -> None:
    parts.context.retention_s = 90 * 86400
    start = parts.clock.now
    # A new feed's first document is its backlog; an item dated 200 days ago is before the
    # retention horizon. The daemon alerted neither, and replay shows neither.
    backlog = [
        item(
            f"b{n}",
            f"Karabakh backlog item {n}",
            link=f"https://news.example/b{n}",
            published=start - timedelta(days=20 + n),
        )
        for n in range(3)
    ]
    await parts.start(*backlog, OLD)
    ancient = item(
        "old",
        "Karabakh archive piece resurfaces",
        link="https://news.example/old",
        published=start - timedelta(days=200),
    )
    fresh = item("new", "Karabakh road reopens", link="https://news.example/new")
    report = await parts.poll(ancient, fresh, *backlog, OLD)
    assert (report.new, report.alerts) == (2, 1)
    assert replayed(parts, start - timedelta(days=7)) == [["new"]]


async def test_replay_places_one_polls_entries_in_the_daemons_order(parts: Parts) -> None:
    # Trend lists two items about APA's story, newest first. The daemon places the older
    # first, which joins APA's story (a story takes one entry per feed); replay agrees.
    apa, trend = await apa_and_trend_with_stories(parts)
    start = parts.clock.now
    summary = "The Russian peacekeeping contingent left the road between Khankendi and Khalfali."
    first = item(
        "a1",
        "Russian peacekeepers leave the Khankendi road",
        summary,
        link="https://apa.az/1",
        published=start,
    )
    await parts.poll(first, OLD, feed=apa)
    newer = item(
        "t2",
        "Russian peacekeepers leave Khalfali as the Khankendi road empties",
        summary,
        link="https://trend.az/2",
        published=start + timedelta(minutes=20),
    )
    older = item(
        "t1",
        "Russian peacekeepers leave the Khankendi road, convoy seen",
        summary,
        link="https://trend.az/1",
        published=start + timedelta(minutes=10),
    )
    await parts.poll(newer, older, OLD, feed=trend)
    guid = guids_of(parts)
    with sqlite3.connect(parts.store.path) as db:
        daemon: dict[str, list[str]] = {}
        for entry, story in db.execute(
            "SELECT id, story_id FROM entries WHERE story_id IS NOT NULL ORDER BY id"
        ):
            daemon.setdefault(guid[story], []).append(guid[entry])
    assert sorted(map(sorted, daemon.values())) == [["a1", "t1"], ["t2"]]
    shown = replayed(parts, start - timedelta(days=1))
    assert sorted(map(sorted, shown)) == [["a1", "t1"], ["t2"]]
