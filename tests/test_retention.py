"""Retention on a real database: what prune deletes, what it must keep so nothing is alerted
twice, and that it shares the write lock with the daemon's writers."""

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.poll_harness import Clock, poll_parts
from watcher.model import Alert, Entry, FeedDef, FeedSuccess, RuleDef
from watcher.pipeline import poll_feed
from watcher.store import Store, StoryEdit, migrate, optimize, prune
from watcher.store.schema import MIGRATIONS
from watcher.store.sqlite import OUTBOX_COUNTS_SQL, due_outbox_sql

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DAY = 86400
KEEP = {"keep_entries_s": 90 * DAY, "keep_outbox_s": 30 * DAY}
FEEDS = [
    FeedDef("apa", "https://apa.az/rss", 600),
    FeedDef("trend", "https://en.trend.az/rss", 600),
]


def entry(n: int, link: str | None = None, *, linked: bool = True) -> Entry:
    if linked:
        link = link or f"https://apa.az/news/{n}"
    return Entry(guid=f"g{n}", link=link, title=f"T{n}", summary="")


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "w.db") as opened:
        await opened.sync_feeds(FEEDS, ago(400))
        yield opened


async def feed_id(store: Store, name: str) -> int:
    state = await store.feed(name)
    assert state is not None
    return state.id


async def parse(store: Store, feed: str, entries: Sequence[Entry], at: datetime) -> list[int]:
    """What the pipeline does with a changed body: the whole document, then success."""
    fid = await feed_id(store, feed)
    async with store.write() as tx:
        new = await tx.insert_entries(fid, entries, at)
        await tx.feed_succeeded(fid, success(at))
    return [n.id for n in new]


def success(at: datetime) -> FeedSuccess:
    return FeedSuccess(
        checked_at=at,
        status=200,
        etag=None,
        last_modified=None,
        body_hash="h",
        next_check_at=at + timedelta(minutes=10),
    )


async def guids(store: Store) -> list[str]:
    rows = await store._fetchall("SELECT guid FROM entries ORDER BY guid", ())
    return [row[0] for row in rows]


@pytest.mark.parametrize("linked", [True, False], ids=["with links", "guids only"])
async def test_an_old_entry_still_listed_survives_and_one_that_dropped_out_goes(
    store: Store, linked: bool
) -> None:
    await parse(store, "trend", [entry(50, "https://trend.az/50")], ago(1))
    await parse(store, "apa", [entry(1, linked=linked), entry(2, linked=linked)], ago(200))
    await parse(store, "apa", [entry(1, linked=linked)], ago(100))  # 2 dropped out
    # ...and the feed has answered 304 ever since: its last parse still lists entry 1.
    await store.feed_unchanged(await feed_id(store, "apa"), success(ago(1)))

    report = await prune(store, NOW, **KEEP)

    assert (report.entries_deleted, report.outbox_deleted) == (1, 0)
    assert await guids(store) == ["g1", "g50"]
    new = await parse(store, "apa", [entry(1, linked=linked), entry(3, linked=linked)], NOW)
    assert len(new) == 1  # 1 was recognised, only 3 is new
    assert await guids(store) == ["g1", "g3", "g50"]


async def test_an_entry_dated_after_it_was_last_seen_goes_only_once_its_date_is_past(
    store: Store,
) -> None:
    # Parsing takes dates up to a day ahead (a local time labelled +0000), and the pipeline
    # alerts an entry dated within the horizon: forgotten before its date is past the
    # horizon, an entry that came back would be alerted again.
    ahead = Entry(
        guid="g1",
        link="https://apa.az/news/1",
        title="T1",
        summary="",
        published=ago(100) + timedelta(hours=3),
    )
    await parse(store, "apa", [ahead], ago(100))
    await parse(store, "apa", [entry(2)], ago(99))  # 1 dropped out
    seen_past_horizon = NOW - timedelta(days=10) + timedelta(hours=1)  # horizon: ago(100) + 1 h
    assert (await prune(store, seen_past_horizon, **KEEP)).entries_deleted == 0
    assert await guids(store) == ["g1", "g2"]
    dated_past_horizon = NOW - timedelta(days=10) + timedelta(hours=4)
    assert (await prune(store, dated_past_horizon, **KEEP)).entries_deleted == 1
    assert await guids(store) == ["g2"]


async def test_entries_seen_within_the_horizon_stay(store: Store) -> None:
    await parse(store, "apa", [entry(1), entry(2)], ago(80))
    await parse(store, "apa", [entry(3)], ago(1))
    assert (await prune(store, NOW, **KEEP)).entries_deleted == 0
    assert await guids(store) == ["g1", "g2", "g3"]


async def test_a_link_listed_by_another_feed_keeps_the_entry(store: Store) -> None:
    shared = "https://apa.az/news/shared"
    await parse(store, "apa", [entry(1, link=shared)], ago(200))
    # trend lists the same article under its own guid: recognised by link, not new.
    assert await parse(store, "trend", [entry(7, link=shared)], ago(150)) == []
    await parse(store, "apa", [entry(2)], ago(120))  # apa no longer lists it

    report = await prune(store, NOW, **KEEP)
    assert await guids(store) == ["g1", "g2"]  # g2: last seen at apa's last parse
    assert (report.held_back, report.waiting_on) == (1, "trend")
    assert await parse(store, "trend", [entry(7, link=shared)], ago(1)) == []

    await parse(store, "trend", [entry(8)], ago(0.5))  # now trend dropped it too
    await parse(store, "apa", [entry(2)], ago(0.5))
    later = await prune(store, NOW + timedelta(days=91), **KEEP)
    assert later.entries_deleted == 1 and later.waiting_on is None
    assert await guids(store) == ["g2", "g8"]


async def test_a_feed_not_parsed_for_two_retention_periods_holds_nothing_back(
    store: Store,
) -> None:
    # One feed failing (or unchanged) for good kept every linked entry of every feed for
    # good: growth without end. Two retention periods on, it holds nothing back.
    shared = "https://apa.az/news/shared"
    await parse(store, "trend", [entry(7, link=shared)], ago(170))  # trend's last parse
    await parse(store, "apa", [entry(1, link="https://apa.az/news/1")], ago(150))
    await parse(store, "apa", [entry(2)], ago(120))  # apa no longer lists 1
    held = await prune(store, NOW, **KEEP)
    assert (held.held_back, held.waiting_on) == (1, "trend")  # 170 days: within 2 x 90
    later = await prune(store, NOW + timedelta(days=30), **KEEP)  # 200 days: past them
    assert later.waiting_on is None and "g1" not in await guids(store)


async def test_settled_outbox_rows_go_after_their_retention_pending_ones_never(
    store: Store,
) -> None:
    (one, two, three) = await parse(store, "apa", [entry(1), entry(2), entry(3)], ago(200))
    await parse(store, "apa", [entry(9)], ago(100))  # 1, 2, 3 all dropped out
    async with store.write() as tx:
        await tx.enqueue([Alert(one, 42, "sent long ago"), Alert(two, 42, "pending")], ago(200))
        await tx.enqueue([Alert(three, 42, "sent lately"), Alert(None, 7, "notice")], ago(40))
    sent_old, _, sent_lately, dead = await store._fetchall("SELECT id FROM outbox ORDER BY id", ())
    await store.mark_sent(sent_old[0], 1, ago(199))
    await store.mark_sent(sent_lately[0], 2, ago(10))
    await store.mark_dead(dead[0], "blocked")  # settled when created: 40 days ago

    report = await prune(store, NOW, **KEEP)

    assert report.outbox_deleted == 2
    left = await store._fetchall("SELECT text FROM outbox ORDER BY id", ())
    assert [row[0] for row in left] == ["pending", "sent lately"]
    # Entry 1 lost its last outbox row and goes; 2 and 3 are still referred to.
    assert report.entries_deleted == 1
    assert await guids(store) == ["g2", "g3", "g9"]


async def test_edits_go_with_their_message_and_a_pending_edit_keeps_it(store: Store) -> None:
    ids = await parse(store, "apa", [entry(n) for n in range(1, 5)], ago(200))
    await parse(store, "apa", [entry(9)], ago(100))  # all dropped out of the feed
    async with store.write() as tx:
        await tx.enqueue([Alert(ids[0], 42, "old"), Alert(ids[1], 42, "kept")], ago(200))
    old, kept = (row[0] for row in await store._fetchall("SELECT id FROM outbox", ()))
    async with store.write() as tx:
        await store.enqueue_edits(
            tx,
            [
                StoryEdit(ids[2], 42, old, "old, Also: Trend"),  # settled within retention
                StoryEdit(ids[3], 42, kept, "kept, Also: Trend"),  # still to be sent
            ],
            ago(35),
        )
    old_edit, kept_edit = (
        row[0] for row in await store._fetchall("SELECT id FROM outbox WHERE edit_of", ())
    )
    for message in (old, kept):
        await store.mark_sent(message, 1, ago(199))
    await store.mark_sent(old_edit, 1, ago(5))

    report = await prune(store, NOW, **KEEP)

    # The old message went, with its edit although that was settled lately: no edit names
    # a message that is gone. The other waits for its edit, which needs its message id.
    assert report.outbox_deleted == 2
    left = await store._fetchall("SELECT id, edit_of FROM outbox ORDER BY id", ())
    assert [tuple(row) for row in left] == [(kept, None), (kept_edit, kept)]
    assert await guids(store) == ["g2", "g4", "g9"]  # entries still referred to are kept

    await store.mark_sent(kept_edit, 1, ago(1))
    later = await prune(store, NOW + timedelta(days=31), **KEEP)
    assert later.outbox_deleted == 2
    assert await store.outbox_counts() == {}


async def test_a_held_alert_keeps_its_entry(store: Store) -> None:
    (one,) = await parse(store, "apa", [entry(1)], ago(200))
    await parse(store, "apa", [entry(2)], ago(100))
    await store.add_subscriber(42, ago(300))
    async with store.write() as tx:
        await tx.hold(42, one, ["r"], ago(200))
    assert (await prune(store, NOW, **KEEP)).entries_deleted == 0
    assert [h.entry_id for h in await store.held_alerts(42)] == [one]


async def test_an_alert_a_digest_carried_goes_after_the_outbox_retention(store: Store) -> None:
    (one,) = await parse(store, "apa", [entry(1)], ago(200))
    (two,) = await parse(store, "apa", [entry(2)], ago(100))
    await parse(store, "apa", [entry(3)], ago(99))
    await store.add_subscriber(42, ago(300))
    async with store.write() as tx:
        await tx.hold(42, one, ["r"], ago(200))
        await tx.hold(42, two, ["r"], ago(100))
    await store.release_held(42, [one], ["digest"], ago(31))
    await store.release_held(42, [two], ["digest"], ago(29))

    report = await prune(store, NOW, **KEEP)

    # The record of what the digest of 31 days ago carried went, then entry 1; entry 2 is
    # kept while the record that chat 42 had it is. (The digests themselves, never sent
    # here, stay in the outbox.)
    assert (report.outbox_deleted, report.entries_deleted) == (1, 1)
    assert await guids(store) == ["g2", "g3"]
    async with store.write() as tx:
        assert await tx.alerted_chats([two]) == {(two, 42)}


async def test_the_versions_told_go_with_their_entry(store: Store) -> None:
    (one,) = await parse(store, "apa", [entry(1)], ago(200))
    await parse(store, "apa", [entry(2)], ago(100))
    async with store.write() as tx:
        await tx.told([(one, 42, "version")], ago(200))
        assert await tx.untold([(one, 42, "version"), (one, 42, "other")]) == {(one, 42)}
    assert (await prune(store, NOW, **KEEP)).entries_deleted == 1
    assert await store._fetchall("SELECT count(*) FROM versions_told", ()) == [(0,)]


async def test_entries_of_a_feed_no_longer_configured_go_after_the_horizon(store: Store) -> None:
    await parse(store, "apa", [entry(1)], ago(200))
    await parse(store, "trend", [entry(5, link="https://trend.az/5")], ago(1))
    await store.sync_feeds(FEEDS[1:], ago(150))  # apa removed from the config
    assert (await prune(store, NOW, **KEEP)).entries_deleted == 1
    assert await guids(store) == ["g5"]


async def test_batches_page_through_entries_seen_at_the_same_moment(store: Store) -> None:
    ids = await parse(store, "apa", [entry(n) for n in range(7)], ago(200))
    await parse(store, "apa", [entry(99)], ago(100))
    async with store.write() as tx:  # entries 0, 2 and 4 are still being delivered
        await tx.enqueue([Alert(ids[n], 42, f"m{n}") for n in (0, 2, 4)], ago(200))

    report = await prune(store, NOW, **KEEP, batch_rows=2)

    assert report.entries_deleted == 4
    # The outbox's one, the carried digest alerts' one, then eight candidates (entry 99
    # too) two at a time, and the end.
    assert report.batches == 1 + 1 + 4 + 1
    assert await guids(store) == ["g0", "g2", "g4", "g99"]


async def test_writers_get_the_lock_between_batches(store: Store) -> None:
    await parse(store, "apa", [entry(n) for n in range(3000)], ago(200))
    await parse(store, "apa", [entry(-1)], ago(100))
    pruning = asyncio.create_task(prune(store, NOW, **KEEP, batch_rows=500))
    writes_during_prune = 0
    n = 10_000
    while not pruning.done():
        await parse(store, "trend", [entry(n, link=f"https://trend.az/{n}")], NOW)
        writes_during_prune += not pruning.done()
        n += 1
    assert (await pruning).entries_deleted == 3000
    assert writes_during_prune >= 3  # one at least between each of the six entry batches


async def test_prune_logs_one_info_line(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await parse(store, "apa", [entry(1)], ago(200))
    await parse(store, "apa", [entry(2)], ago(100))
    with caplog.at_level(logging.INFO, logger="watcher.store.retention"):
        await prune(store, NOW, **KEEP)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "watcher.store.retention"]
    assert line.startswith("retention: deleted 1 entries last seen before 2026-08-30T12:00:00")


async def test_optimize_gathers_statistics_for_the_planner(store: Store) -> None:
    await parse(store, "apa", [entry(n) for n in range(300)], ago(1))
    await store.count_entries()  # queries the connection ran are what optimize looks at
    await prune(store, NOW, **KEEP)
    await optimize(store)  # also fine on its own, and when there is nothing to do
    tables = await store._fetchall("SELECT DISTINCT tbl FROM sqlite_stat1", ())
    assert "entries" in {row[0] for row in tables}


def test_a_version_5_database_keeps_every_entry_until_its_feed_is_parsed_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v5.db"
    with sqlite3.connect(path, isolation_level=None) as db:
        for migration in MIGRATIONS[:5]:
            migration(db)
        db.execute("PRAGMA user_version = 5")
        db.execute(
            """INSERT INTO feeds (id, name, url, created_at, last_success_at, active)
               VALUES (1, 'apa', 'https://apa.az/rss', 0, ?, 1)""",
            (ago(1).timestamp(),),
        )
        db.execute(
            """INSERT INTO entries (feed_id, guid_key, link_key, title, summary, first_seen_at)
               VALUES (1, 'k1', 'l1', 't', '', ?), (1, 'k2', NULL, 't', '', ?)""",
            (ago(300).timestamp(), ago(300).timestamp()),
        )
    assert migrate(path) == 5
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT DISTINCT last_seen_at FROM entries").fetchall() == [
            (ago(300).timestamp(),)
        ]
        assert db.execute("SELECT last_parsed_at FROM feeds").fetchall() == [(None,)]

    async def prune_twice() -> tuple[tuple[int, int, str | None], int]:
        async with await Store.open(path) as store:
            first = await prune(store, NOW, **KEEP)
            # Once the feed is parsed again, what it no longer lists can go.
            await parse(store, "apa", [entry(1)], ago(100))
            second = await prune(store, NOW, **KEEP)
            return (first.entries_deleted, first.held_back, first.waiting_on), (
                second.entries_deleted
            )

    # Nobody knows which of them the feed still lists: both stay until it is parsed again.
    assert asyncio.run(prune_twice()) == ((0, 0, None), 2)


# --------------------------------------------------------------------------- the pipeline

RULES = [RuleDef("karabakh", "Karabakh", (-100,))]


def rss(*numbers: int) -> str:
    items = "".join(
        f"<item><title>Karabakh {n}</title><guid>id-{n}</guid>"
        f"<link>https://news.example/{n}</link></item>"
        for n in numbers
    )
    return f"<rss version='2.0'><channel><title>t</title>{items}</channel></rss>"


async def test_after_a_prune_the_pipeline_alerts_only_what_is_new(tmp_path: Path) -> None:
    clock = Clock(ago(200))
    async with poll_parts(tmp_path / "w.db", RULES, clock=clock) as (server, context):
        store = context.store
        feed = FeedDef("news", server.serve("/rss", rss(2, 1)), 300)
        await store.sync_feeds([feed], clock.now)

        async def poll() -> int:
            state = await store.feed("news")
            assert state is not None
            return (await poll_feed(feed, state, context)).alerts

        assert await poll() == 0  # first poll: primed
        clock.now = ago(100)
        server.serve("/rss", rss(3, 2))  # 1 dropped out; 3 alerts
        assert await poll() == 1
        clock.now = ago(1)
        assert await poll() == 0  # 304 since: the feed still lists 3 and 2

        report = await prune(store, NOW, **KEEP)
        assert report.entries_deleted == 1  # entry 1; 2 and 3 are listed, 3 has an alert

        clock.now = NOW
        server.serve("/rss", rss(4, 3, 2))
        assert await poll() == 1  # only 4: 2 (older than retention) is still known
        assert await store.count_entries() == 3


async def test_the_delivery_query_looks_only_at_pending_rows_after_the_daily_upkeep(
    tmp_path: Path,
) -> None:
    # A month of sent rows and three pending: the query delivery runs every few seconds
    # must go by the pending rows' index, not walk every row (as its planner chose after
    # PRAGMA optimize, on the reader that kept the statistics it had read first).
    async with await Store.open(tmp_path / "w.db") as store:
        await store.sync_feeds(FEEDS, ago(400))
        ids = await parse(store, "apa", [entry(n) for n in range(3000)], ago(2))
        async with store.write() as tx:
            await tx.enqueue([Alert(i, 100 + i % 50, "x") for i in ids], ago(2))
        for i in ids[:-3]:
            await store.mark_sent(i, 1, ago(2))
        for _ in range(3):
            await store.due_outbox(NOW)
        await prune(store, NOW, **KEEP)
        await optimize(store)
        plan = [
            row[3]
            for row in await store._fetchall(f"EXPLAIN QUERY PLAN {due_outbox_sql()}", (1, 1, 1))
        ]
        assert not any(step.startswith("SCAN") for step in plan), plan
        assert len(await store.due_outbox(NOW)) == 3


async def test_counting_the_outbox_reads_indexes_not_the_rows(tmp_path: Path) -> None:
    # The watchdog's STATUS line and every /metrics scrape count it: a month of rows with
    # their texts took a GROUP BY 0.4 s for 600,000.
    async with await Store.open(tmp_path / "w.db") as store:
        plan = [
            row[3] for row in await store._fetchall(f"EXPLAIN QUERY PLAN {OUTBOX_COUNTS_SQL}", ())
        ]
        scans = [step for step in plan if step.startswith("SCAN outbox")]
        assert len(scans) == 3 and all(" USING " in step for step in scans), plan
        await store.sync_feeds(FEEDS, ago(2))
        ids = await parse(store, "apa", [entry(n) for n in range(5)], ago(2))
        async with store.write() as tx:
            await tx.enqueue([Alert(i, 100, "x") for i in ids], ago(2))
        await store.mark_sent(ids[0], 1, ago(1))
        await store.mark_dead(ids[1], "blocked")
        assert await store.outbox_counts() == {"pending": 3, "sent": 1, "dead": 1}
