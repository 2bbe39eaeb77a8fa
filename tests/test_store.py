"""The SQLite store, on a real database file."""

import asyncio
import logging
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.errors import StoreError
from watcher.model import Alert, Entry, FeedDef, FeedState, FeedSuccess, UpdatedEntry
from watcher.store import Store, migrate
from watcher.store.schema import SCHEMA_VERSION
from watcher.store.sqlite import RecordedEntries

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FEEDS = [
    FeedDef("apa", "https://apa.az/rss", 600),
    FeedDef("trend", "https://en.trend.az/rss", 600),
]


def entry(n: int, link: str | None = None, guid: str | None = None) -> Entry:
    return Entry(
        guid=guid or f"g{n}",
        link=link or f"https://apa.az/news/{n}",
        title=f"Title {n}",
        summary=f"Summary {n}",
    )


@pytest.fixture
async def store(tmp_path: Path):
    async with await Store.open(tmp_path / "w.db") as opened:
        await opened.sync_feeds(FEEDS, NOW)
        yield opened


async def feed_id(store: Store, name: str) -> int:
    state = await store.feed(name)
    assert state is not None
    return state.id


def test_migrate_creates_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "w.db"
    assert migrate(path) == 0
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert migrate(path) == SCHEMA_VERSION  # idempotent


def test_refuses_a_database_from_a_newer_watcher(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this Watcher"):
        migrate(path)


async def test_new_feeds_are_due_at_once(store: Store) -> None:
    due = await store.due_feeds(NOW)
    assert [f.name for f in due] == ["apa", "trend"]
    assert all(f.last_success_at is None and f.etag is None for f in due)


async def test_insert_returns_only_new_entries(store: Store) -> None:
    apa = await feed_id(store, "apa")
    async with store.write() as tx:
        first = await tx.insert_entries(apa, [entry(1), entry(2)], NOW)
    async with store.write() as tx:
        second = await tx.insert_entries(apa, [entry(1), entry(2), entry(3)], NOW)
    assert [n.entry.guid for n in first] == ["g1", "g2"]
    assert [n.entry.guid for n in second] == ["g3"]
    assert await store.count_entries() == 3


async def test_same_link_under_a_new_guid_is_not_new_in_any_feed(store: Store) -> None:
    apa, trend = await feed_id(store, "apa"), await feed_id(store, "trend")
    async with store.write() as tx:
        await tx.insert_entries(apa, [entry(1, link="https://apa.az/news/1")], NOW)
    async with store.write() as tx:
        same_feed = await tx.insert_entries(
            apa, [entry(9, guid="new-guid", link="http://www.apa.az/news/1/")], NOW
        )
        other_feed = await tx.insert_entries(
            trend, [entry(5, guid="t5", link="https://apa.az/news/1?utm_source=x")], NOW
        )
    assert same_feed == [] and other_feed == []


async def test_many_entries_in_one_poll_are_chunked(store: Store) -> None:
    apa = await feed_id(store, "apa")
    async with store.write() as tx:
        new = await tx.insert_entries(apa, [entry(n) for n in range(1200)], NOW)
    assert len(new) == 1200
    assert [n.entry.guid for n in new[:3]] == ["g0", "g1", "g2"]


async def test_a_failed_transaction_records_nothing(store: Store) -> None:
    apa = await feed_id(store, "apa")
    with pytest.raises(RuntimeError):
        async with store.write() as tx:
            new = await tx.insert_entries(apa, [entry(1)], NOW)
            await tx.enqueue([Alert(new[0].id, 42, "<b>x</b>", ("r",))], NOW)
            raise RuntimeError("crash between insert and commit")
    assert await store.count_entries() == 0
    assert await store.outbox_counts() == {}


async def test_reads_see_only_what_is_committed(store: Store) -> None:
    """Delivery reads the outbox while a poll's transaction is open: an alert that this
    transaction may still roll back must not be sent."""
    apa = await feed_id(store, "apa")
    with pytest.raises(RuntimeError):
        async with store.write() as tx:
            new = await tx.insert_entries(apa, [entry(1)], NOW)
            await tx.enqueue([Alert(new[0].id, 42, "<b>x</b>", ("r",))], NOW)
            assert await store.due_outbox(NOW) == []
            assert await store.count_entries() == 0
            raise RuntimeError("the poll fails after queueing its alert")
    async with store.write() as tx:
        new = await tx.insert_entries(apa, [entry(1)], NOW)
        await tx.enqueue([Alert(new[0].id, 42, "<b>x</b>", ("r",))], NOW)
    assert [item.chat_id for item in await store.due_outbox(NOW)] == [42]


async def test_outbox_lifecycle(store: Store) -> None:
    apa = await feed_id(store, "apa")
    async with store.write() as tx:
        new = await tx.insert_entries(apa, [entry(1), entry(2)], NOW)
        queued = await tx.enqueue(
            [
                Alert(new[0].id, 42, "one", ("r",)),
                Alert(new[0].id, 42, "one again", ("r",)),  # same entry x chat: ignored
                Alert(new[1].id, 42, "two", ("r",)),
                Alert(new[1].id, -100, "two", ("r",)),
            ],
            NOW,
        )
    assert queued == 3
    due = await store.due_outbox(NOW)
    assert [(i.chat_id, i.text) for i in due] == [(42, "one"), (42, "two"), (-100, "two")]
    assert [i.chat_id for i in await store.due_outbox(NOW, chat_ids=[-100])] == [-100]

    await store.mark_sent(due[0].id, 777, NOW)
    await store.mark_retry(due[1].id, "timeout", NOW + timedelta(minutes=1))
    await store.mark_dead(due[2].id, "blocked")
    assert await store.due_outbox(NOW) == []
    assert await store.next_outbox_attempt() == NOW + timedelta(minutes=1)
    assert [i.attempts for i in await store.due_outbox(NOW + timedelta(minutes=2))] == [1]
    assert await store.outbox_counts() == {"sent": 1, "pending": 1, "dead": 1}


async def test_delay_and_migrate_chat(store: Store) -> None:
    apa = await feed_id(store, "apa")
    async with store.write() as tx:
        new = await tx.insert_entries(apa, [entry(1)], NOW)
        await tx.enqueue([Alert(new[0].id, -1, "x", ("r",))], NOW)
    await store.delay_chat(-1, NOW + timedelta(seconds=30))
    assert await store.due_outbox(NOW) == []
    await store.record_chat_migration(-1, -1009, NOW)
    (item,) = await store.due_outbox(NOW + timedelta(seconds=31))
    assert item.chat_id == -1009
    assert await store.chat_migrations() == {-1: -1009}


async def test_feed_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    async with await Store.open(path) as store:
        await store.sync_feeds(FEEDS, NOW)
        apa = await feed_id(store, "apa")
        async with store.write() as tx:
            await tx.feed_succeeded(
                apa,
                FeedSuccess(
                    checked_at=NOW,
                    status=200,
                    etag='"v1"',
                    last_modified="Sat, 28 Nov 2026 10:00:00 GMT",
                    body_hash="abc",
                    next_check_at=NOW + timedelta(minutes=10),
                ),
            )
            await tx.feed_failed(
                apa, now=NOW, status=500, error="boom", next_check_at=NOW + timedelta(hours=1)
            )
    async with await Store.open(path) as store:
        state = await store.feed("apa")
        assert state is not None
        assert state.etag == '"v1"' and state.body_hash == "abc"
        assert state.consecutive_errors == 1 and state.last_error == "boom"
        assert state.next_check_at == NOW + timedelta(hours=1)
        assert state.last_success_at == NOW
        assert [f.name for f in await store.due_feeds(NOW)] == ["trend"]


async def test_removed_feed_is_deactivated_and_keeps_its_history(store: Store) -> None:
    apa = await feed_id(store, "apa")
    async with store.write() as tx:
        await tx.insert_entries(apa, [entry(1)], NOW)
    await store.sync_feeds(FEEDS[1:], NOW)
    assert [f.name for f in await store.feeds()] == ["trend"]
    await store.sync_feeds(FEEDS, NOW)
    async with store.write() as tx:
        assert await tx.insert_entries(apa, [entry(1)], NOW) == []


async def test_changing_a_feed_url_forgets_its_validators(store: Store) -> None:
    apa = await feed_id(store, "apa")
    async with store.write() as tx:
        await tx.feed_succeeded(
            apa,
            FeedSuccess(
                checked_at=NOW,
                status=200,
                etag='"v1"',
                last_modified=None,
                body_hash="h",
                next_check_at=NOW,
            ),
        )
    await store.sync_feeds([FeedDef("apa", "https://apa.az/rss/en", 600), FEEDS[1]], NOW)
    state = await store.feed("apa")
    assert state is not None
    assert (state.url, state.etag, state.body_hash) == ("https://apa.az/rss/en", None, None)


async def test_a_feed_whose_user_agent_changes_is_checked_at_once(store: Store) -> None:
    apa = await feed_id(store, "apa")
    later = NOW + timedelta(hours=6)  # backing off after failures
    async with store.write() as tx:
        await tx.feed_failed(apa, now=NOW, status=400, error="Bad Request", next_check_at=later)

    async def next_check(feeds: list[FeedDef], at: datetime) -> datetime | None:
        await store.sync_feeds(feeds, at)
        state = await store.feed("apa")
        assert state is not None
        return state.next_check_at

    soon = NOW + timedelta(minutes=1)
    assert await next_check(FEEDS, soon) == later  # nothing changed
    browser = [replace(FEEDS[0], user_agent="Mozilla/5.0 (X11)"), FEEDS[1]]
    assert await next_check(browser, soon) == soon
    async with store.write() as tx:
        await tx.feed_failed(apa, now=soon, status=400, error="Bad Request", next_check_at=later)
    assert await next_check(browser, soon) == later  # the same User-Agent again
    assert await next_check(FEEDS, soon) == soon  # back to Watcher's own


async def test_a_shorter_interval_brings_the_next_check_of_a_healthy_feed_forward(
    store: Store,
) -> None:
    apa, trend = await feed_id(store, "apa"), await feed_id(store, "trend")
    async with store.write() as tx:
        for feed in (apa, trend):
            checked = FeedSuccess(NOW, 200, None, None, "h", NOW + timedelta(minutes=10))
            await tx.feed_succeeded(feed, checked)
        # trend is failing, backing off for six hours
        await tx.feed_failed(
            trend, now=NOW, status=500, error="boom", next_check_at=NOW + timedelta(hours=6)
        )

    async def next_checks(apa_s: int, trend_s: int, *, auto: bool = False) -> list[datetime | None]:
        feeds = [
            FeedDef("apa", "https://apa.az/rss", apa_s, auto_interval=auto),
            FeedDef("trend", "https://en.trend.az/rss", trend_s),
        ]
        await store.sync_feeds(feeds, NOW + timedelta(minutes=1))
        states = [await store.feed(name) for name in ("apa", "trend")]
        return [state.next_check_at if state else None for state in states]

    ten, six_hours = NOW + timedelta(minutes=10), NOW + timedelta(hours=6)
    assert await next_checks(600, 600) == [ten, six_hours]
    assert await next_checks(1200, 1200) == [ten, six_hours]  # longer: after the next check
    assert await next_checks(120, 120) == [NOW + timedelta(minutes=2), six_hours]
    assert await next_checks(60, 60, auto=True) == [NOW + timedelta(minutes=2), six_hours]
    # From "auto" (which may have put the check up to max_interval away) to an interval.
    assert await next_checks(60, 60) == [NOW + timedelta(minutes=1), six_hours]


async def test_a_write_cancelled_as_it_begins_leaves_the_store_writable(store: Store) -> None:
    # A reload stops a poll of an edited feed: if that lands while BEGIN is on its way to
    # aiosqlite's thread, the transaction it opens must not outlive the cancelled task.
    async def write_something() -> None:
        async with store.write() as tx:
            await tx.db.execute("UPDATE feeds SET etag = 'x'")

    for _ in range(3):
        task = asyncio.create_task(write_something())
        await asyncio.sleep(0)  # it takes the lock and waits for its BEGIN
        assert store.write_since is not None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.sync_feeds(FEEDS, NOW)  # a later write begins
    state = await store.feed("apa")
    assert state is not None and state.etag is None


async def test_a_batched_update_whose_caller_is_cancelled_writes_nothing(store: Store) -> None:
    # A reload that moves a feed cancels its poll, then records the new URL: the poll's
    # "unchanged" row, still waiting for its batch, must not land on top of that.
    apa = await feed_id(store, "apa")
    later = FeedSuccess(NOW, 304, '"old"', None, "h", NOW + timedelta(hours=1))
    waiting = asyncio.create_task(store.feed_unchanged(apa, later))
    await asyncio.sleep(0)  # queued for the batch, not yet written
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    # Another feed's row, awaited: its batch is written, and the cancelled row was not in it.
    await store.feed_unchanged(await feed_id(store, "trend"), later)
    state, trend = await store.feed("apa"), await store.feed("trend")
    assert trend is not None and trend.etag == '"old"'
    assert state is not None and state.etag is None and state.last_checked_at is None


async def test_a_batched_row_sqlite_refuses_fails_only_its_own_caller(store: Store) -> None:
    apa, trend = await feed_id(store, "apa"), await feed_id(store, "trend")
    fine = FeedSuccess(NOW, 304, '"v"', None, "h", NOW + timedelta(hours=1))
    refused = replace(fine, etag='"caf\udce9"')  # a lone surrogate: SQLite cannot take it
    outcomes = await asyncio.gather(
        store.feed_unchanged(apa, refused),
        store.feed_unchanged(trend, fine),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], UnicodeEncodeError) and outcomes[1] is None
    state = await store.feed("trend")
    assert state is not None and state.etag == '"v"'


async def test_a_migrated_chat_keeps_its_subscriptions_and_settings(store: Store) -> None:
    # Subscriptions refer to their subscriber: moving them first broke the foreign key.
    await store.follow(-100, "karabakh", NOW)
    await store.set_digest(-100, "daily", "08:00")
    await store.record_chat_migration(-100, -1009, NOW)
    followers = await store.subscribers_of(["karabakh"])
    assert [s.chat_id for s in followers["karabakh"]] == [-1009]
    moved = await store.subscriber(-1009)
    assert moved is not None and (moved.digest, moved.digest_time) == ("daily", "08:00")
    assert await store.subscriber(-100) is None


def test_a_version_1_database_is_migrated_keeping_its_feeds(tmp_path: Path) -> None:
    from watcher.store.schema import MIGRATIONS

    path = tmp_path / "old.db"
    with sqlite3.connect(path, isolation_level=None) as db:
        MIGRATIONS[0](db)
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO feeds (name, url, created_at) VALUES ('apa', 'https://apa.az/rss', 0)"
        )
    assert migrate(path) == 1
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT url, config_url, disabled_at FROM feeds").fetchone()
    assert row == ("https://apa.az/rss", "https://apa.az/rss", None)


async def test_a_chat_keeps_its_order_when_retries_reorder_due_times(store: Store) -> None:
    apa = await feed_id(store, "apa")
    async with store.write() as tx:
        new = await tx.insert_entries(apa, [entry(1), entry(2), entry(3)], NOW)
        await tx.enqueue([Alert(n.id, 42, f"m{n.id}", ("r",)) for n in new], NOW)
        await tx.enqueue([Alert(new[0].id, 7, "other chat", ("r",))], NOW)
    first = (await store.due_outbox(NOW))[0]
    await store.mark_retry(first.id, "502", NOW + timedelta(seconds=30))
    # The chat's later rows are due, but wait behind the first; other chats go on.
    assert [i.chat_id for i in await store.due_outbox(NOW)] == [7]
    assert [i.text for i in await store.due_outbox(NOW + timedelta(seconds=31))][:3] == [
        "m1",
        "m2",
        "m3",
    ]


async def test_batched_updates_share_transactions_and_all_land(tmp_path: Path) -> None:
    feeds = [FeedDef(f"f{n}", f"https://f{n}.example/rss", 600) for n in range(450)]
    async with await Store.open(tmp_path / "w.db") as store:
        await store.sync_feeds(feeds, NOW)
        ids = {state.name: state.id for state in await store.feeds()}
        statements: list[str] = []
        await store._db.set_trace_callback(statements.append)  # what reaches SQLite
        await asyncio.gather(
            *(
                store.feed_unchanged(
                    ids[feed.name],
                    FeedSuccess(
                        checked_at=NOW,
                        status=304,
                        etag=f'"{feed.name}"',
                        last_modified=None,
                        body_hash=None,
                        next_check_at=NOW + timedelta(minutes=10),
                        ttl_s=None,
                    ),
                )
                for feed in feeds
            )
        )
        states = await store.feeds()
        await store._db.set_trace_callback(None)
    # One transaction per 50 updates arriving at once, not one per update.
    assert sum(statement.startswith("BEGIN") for statement in statements) == 9
    assert all(state.etag == f'"{state.name}"' for state in states)
    assert all(state.last_status == 304 and state.last_success_at == NOW for state in states)
    assert all_due_in_ten_minutes(states)


def all_due_in_ten_minutes(states: list[FeedState]) -> bool:
    return all(state.next_check_at == NOW + timedelta(minutes=10) for state in states)


async def test_due_feeds_leaves_out_feeds_being_polled(store: Store) -> None:
    apa = await feed_id(store, "apa")
    assert [f.name for f in await store.due_feeds(NOW, exclude=[apa])] == ["trend"]
    assert await store.due_feeds(NOW, limit=0) == []


async def test_a_parse_marks_its_known_entries_seen_and_the_feed_parsed(store: Store) -> None:
    apa, trend = await feed_id(store, "apa"), await feed_id(store, "trend")
    later, latest = NOW + timedelta(hours=1), NOW + timedelta(hours=2)
    async with store.write() as tx:
        await tx.insert_entries(apa, [entry(1), entry(2), entry(3)], NOW)
    async with store.write() as tx:
        await tx.insert_entries(apa, [entry(4), entry(1)], later)  # 2 and 3 dropped out
    async with store.write() as tx:  # trend carries entry 3's article under its own guid
        assert (
            await tx.insert_entries(trend, [entry(9, link="https://apa.az/news/3")], latest) == []
        )
    with sqlite3.connect(store.path) as db:
        seen = dict(db.execute("SELECT guid, last_seen_at FROM entries").fetchall())
        parsed = dict(db.execute("SELECT name, last_parsed_at FROM feeds").fetchall())
    assert seen == {
        "g1": later.timestamp(),
        "g2": NOW.timestamp(),
        "g3": latest.timestamp(),  # seen again through its link
        "g4": later.timestamp(),
    }
    assert parsed == {"apa": later.timestamp(), "trend": latest.timestamp()}


def stored(store: Store, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(store.path) as db:
        return db.execute(sql).fetchall()


async def record(
    store: Store, feed: str, entries: list[Entry], at: datetime = NOW
) -> RecordedEntries:
    fid = await feed_id(store, feed)
    async with store.write() as tx:
        return await tx.record_entries(fid, entries, at)


async def test_an_item_whose_guid_and_link_changed_is_known_by_title_and_minute(
    store: Store,
) -> None:
    published = NOW - timedelta(minutes=5)
    item = replace(entry(1), title="Road to Khankendi reopens", published=published)
    await record(store, "apa", [item])
    churned = replace(item, guid="g1-again", link="https://apa.az/news/1?session=2")
    again = await record(store, "apa", [churned], NOW + timedelta(minutes=10))
    assert (again.new, again.updated) == ([], [])
    # Another feed's item with that title and minute is its own entry.
    other = await record(store, "trend", [replace(churned, guid="t1", link="https://trend.az/1")])
    assert len(other.new) == 1
    assert stored(store, "SELECT count(DISTINCT title_key) FROM entries") == [(2,)]


@pytest.mark.parametrize("listed_again", [False, True])
async def test_an_item_sharing_a_new_items_link_is_that_item_not_an_older_namesake(
    store: Store, listed_again: bool
) -> None:
    # K shares its link with A, new in this document, and its title and minute with R, an
    # older entry: K is A's copy (the insert turns it away), so R is neither compared with
    # K nor rewritten with K's words.
    published = NOW - timedelta(minutes=5)
    older = Entry("g-r", "https://apa.az/news/r", "Road to Khankendi reopens", "Old", published)
    await record(store, "apa", [older])
    new = Entry("g-a", "https://apa.az/news/shared", "Another headline altogether", "A", None)
    copy = Entry("g-k", "https://apa.az/news/shared", older.title, "New text", published)
    document = [new, copy, older] if listed_again else [new, copy]
    result = await record(store, "apa", document, NOW + timedelta(minutes=10))
    assert [item.entry.guid for item in result.new] == ["g-a"]
    assert result.updated == []
    assert stored(store, "SELECT summary FROM entries WHERE guid = 'g-r'") == [("Old",)]


async def test_a_known_entry_with_other_words_comes_back_updated(store: Store) -> None:
    (first,) = (await record(store, "apa", [entry(1), entry(2)])).new[:1]
    edited = replace(entry(1), title="Title 1, corrected", summary="Summary 1 with more")
    later = NOW + timedelta(minutes=10)
    result = await record(store, "apa", [edited, entry(2)], later)
    assert result.new == []
    assert result.updated == [UpdatedEntry(id=first.id, entry=edited, previous=entry(1))]
    assert stored(store, "SELECT title, summary, updated_at FROM entries WHERE guid = 'g1'") == [
        ("Title 1, corrected", "Summary 1 with more", later.timestamp())
    ]
    # Listed again as it is now: nothing changed.
    assert (await record(store, "apa", [edited, entry(2)], later)).updated == []


async def test_a_new_guid_with_a_new_headline_at_a_known_link_updates_that_entry(
    store: Store,
) -> None:
    (first,) = (await record(store, "apa", [entry(1)])).new
    renamed = replace(entry(1), guid="g1-v2", title="Title 1 rewritten")
    result = await record(store, "apa", [renamed])
    assert result.new == []
    assert [(u.id, u.entry.title, u.previous.title) for u in result.updated] == [
        (first.id, "Title 1 rewritten", "Title 1")
    ]


async def test_a_link_another_feed_recorded_is_seen_not_compared(store: Store) -> None:
    await record(store, "apa", [entry(1)])
    theirs = replace(entry(1), guid="t1", title="Trend's own headline", summary="Their text")
    result = await record(store, "trend", [theirs])
    assert (result.new, result.updated) == ([], [])
    assert stored(store, "SELECT title, updated_at FROM entries") == [("Title 1", None)]


async def test_case_spacing_and_punctuation_are_no_update(store: Store) -> None:
    await record(store, "apa", [entry(1)])
    restyled = replace(entry(1), title="TITLE  1.", summary="summary — 1!")
    assert (await record(store, "apa", [restyled])).updated == []
    assert stored(store, "SELECT title FROM entries") == [("Title 1",)]


async def test_a_missing_content_key_is_filled_in_silently(store: Store) -> None:
    await record(store, "apa", [entry(1)])
    with sqlite3.connect(store.path) as db:  # as recorded before content keys existed
        db.execute("UPDATE entries SET content_key = NULL")
    edited = replace(entry(1), summary="Summary 1, edited before the upgrade")
    assert (await record(store, "apa", [edited])).updated == []
    assert stored(
        store, "SELECT summary, updated_at FROM entries WHERE content_key IS NOT NULL"
    ) == [(edited.summary, None)]
    (update,) = (await record(store, "apa", [entry(1)])).updated  # now its text is known
    assert update.previous == edited


async def test_a_content_key_from_another_folding_is_refreshed_not_an_update(
    store: Store,
) -> None:
    await record(store, "apa", [entry(1)])
    with sqlite3.connect(store.path) as db:  # what a different folding would have stored
        db.execute("UPDATE entries SET content_key = 'folded-otherwise'")
    assert (await record(store, "apa", [entry(1)])).updated == []
    (key,) = stored(store, "SELECT content_key FROM entries")
    assert key != ("folded-otherwise",)


async def test_an_item_listed_twice_under_two_guids_is_one_new_entry(store: Store) -> None:
    twice = [entry(1), replace(entry(1), guid="g1-copy", summary="A different teaser")]
    result = await record(store, "apa", twice)
    assert (len(result.new), result.updated) == (1, [])


async def test_alerted_chats_names_every_outbox_row_of_the_entries(store: Store) -> None:
    new = (await record(store, "apa", [entry(1), entry(2), entry(3)])).new
    async with store.write() as tx:
        await tx.enqueue([Alert(new[0].id, 42, "a"), Alert(new[1].id, 7, "b")], NOW)
        assert await tx.alerted_chats([new[0].id, new[2].id]) == {(new[0].id, 42)}
        assert await tx.alerted_chats([]) == set()


async def test_feed_state_counts_agree_with_the_state_watcher_status_shows(
    store: Store,
) -> None:
    from watcher.status_command import feed_state_name

    names = ["ok", "new", "failing", "gone", "recovering"]
    await store.sync_feeds([FeedDef(n, f"https://{n}.example/rss", 600) for n in names], NOW)
    ids = {state.name: state.id for state in await store.feeds()}
    success = FeedSuccess(NOW, 200, None, None, None, NOW, None)
    async with store.write() as tx:
        for name in ("ok", "failing", "recovering"):
            await tx.feed_succeeded(ids[name], success)
        for _ in range(3):
            await tx.feed_failed(ids["failing"], now=NOW, status=500, error="x", next_check_at=NOW)
        await tx.feed_failed(ids["recovering"], now=NOW, status=500, error="x", next_check_at=NOW)
        await tx.feed_disabled(ids["gone"], now=NOW, status=410, reason="gone")
    for failing_after in (1, 3, 5):
        expected: dict[str, int] = {}
        for state in await store.feeds():
            name = feed_state_name(state, failing_after)
            expected[name] = expected.get(name, 0) + 1
        assert await store.feed_state_counts(failing_after) == expected


async def test_oldest_pending_at(store: Store) -> None:
    assert await store.oldest_pending_at() is None
    apa = await feed_id(store, "apa")
    async with store.write() as tx:
        new = await tx.insert_entries(apa, [entry(1), entry(2)], NOW)
        await tx.enqueue([Alert(new[0].id, 42, "x", ("r",))], NOW)
    async with store.write() as tx:
        await tx.enqueue([Alert(new[1].id, 42, "y", ("r",))], NOW + timedelta(minutes=5))
    assert await store.oldest_pending_at() == NOW
    (first, _) = await store.due_outbox(NOW + timedelta(minutes=10))
    await store.mark_sent(first.id, 1, NOW)
    assert await store.oldest_pending_at() == NOW + timedelta(minutes=5)


async def test_links_keyed_before_version_16_are_known_in_either_spelling(
    tmp_path: Path,
) -> None:
    # Before v16 a path in Unicode and the same path percent-encoded were two link keys:
    # one article, spelt both ways by two feeds, was two entries.
    from watcher.identity import canonical_url, link_guid_key, link_key, spelled_url
    from watcher.store.schema import MIGRATIONS

    unicode_link = "https://on.ge/story/1-თელავი"
    encoded_link = "https://on.ge/story/1-%e1%83%97%e1%83%94%e1%83%9a%e1%83%90%e1%83%95%e1%83%98"
    twice = ("https://on.ge/story/2-ქ", "https://on.ge/story/2-%E1%83%A5")  # both recorded
    path = tmp_path / "old.db"
    with sqlite3.connect(path, isolation_level=None) as db:
        for migration in MIGRATIONS[:15]:
            migration(db)
        db.execute("PRAGMA user_version = 15")
        for name in ("on", "other"):
            db.execute(
                "INSERT INTO feeds (name, url, created_at) VALUES (?, ?, 0)",
                (name, f"https://{name}.example/rss"),
            )
        rows = [  # (feed, guid, link, guid key): no guid → known by its link
            (1, None, unicode_link, link_guid_key(1, spelled_url(unicode_link))),
            (1, "g2", twice[0], "guid-key-2"),
            (2, "g3", twice[1], "guid-key-3"),
            # Spelling makes this one no URL at all: the upgrade must go on past it.
            (2, "g4", "https://x.cdn.ampproject.org/c/s/[x/é", "guid-key-4"),
        ]
        for feed, guid, link, guid_key in rows:
            db.execute(
                """INSERT INTO entries (feed_id, guid_key, link_key, guid, link, title,
                   summary, first_seen_at, last_seen_at) VALUES (?, ?, ?, ?, ?, 't', '', 0, 0)""",
                (feed, guid_key, link_key(spelled_url(link)), guid, link),
            )
    assert migrate(path) == 15

    with sqlite3.connect(path) as db:
        first = db.execute("SELECT guid_key, link_key FROM entries WHERE id = 1").fetchone()
        kept = db.execute("SELECT link_key FROM entries WHERE id IN (2, 3) ORDER BY id").fetchall()
    assert first == (
        link_guid_key(1, canonical_url(encoded_link)),
        link_key(canonical_url(encoded_link)),
    )
    # The article recorded twice: the second, spelt the new way, holds the new key already;
    # the first keeps its old one (no error, and either spelling finds one of the two).
    assert kept == [(link_key(spelled_url(twice[0])),), (link_key(canonical_url(twice[1])),)]

    async with await Store.open(path) as store, store.write() as tx:
        # The other spelling, from another feed, and from the first feed without a guid.
        assert await tx.insert_entries(2, [Entry("g9", encoded_link, "t", "")], NOW) == []
        assert await tx.insert_entries(1, [Entry(None, encoded_link, "t", "")], NOW) == []
        assert await tx.insert_entries(2, [Entry("g8", twice[1], "t", "")], NOW) == []
        assert await tx.insert_entries(2, [Entry("g7", twice[0], "t", "")], NOW) == []


async def test_a_failed_commit_leaves_no_transaction_open(tmp_path: Path) -> None:
    # A COMMIT can fail (a full disk, an I/O error; here a constraint checked only then):
    # left open, the transaction would make every later write fail until a restart.
    async with await Store.open(tmp_path / "w.db") as store:
        await store.sync_feeds([FeedDef("apa", "https://apa.az/rss", 600)], NOW)
        with pytest.raises(sqlite3.IntegrityError):
            async with store.write() as tx:
                await tx.db.execute("PRAGMA defer_foreign_keys = ON")
                await tx.enqueue([Alert(999_999, 42, "an entry that is not there")], NOW)
        async with store.write() as tx:
            await tx.db.execute("UPDATE feeds SET last_error = 'written'")
        (state,) = await store.feeds()
        assert state.last_error == "written"
        assert await store.outbox_counts() == {}


async def test_a_write_cancelled_while_its_commit_waits_commits_without_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A reload or stop cancels a poll as its COMMIT waits behind other work on the
    # connection: aiosqlite runs the COMMIT all the same. The write stands, and nothing
    # tries to roll it back (which logged an ERROR for a write that had succeeded).
    async with await Store.open(tmp_path / "w.db") as store:
        await store.sync_feeds([FeedDef("apa", "https://apa.az/rss", 600)], NOW)
        busy = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000)"
            " SELECT count(*) FROM n"
        )
        queued: list[asyncio.Future[object]] = []

        async def poll() -> None:
            async with store.write() as tx:
                await tx.db.execute("UPDATE feeds SET last_error = 'written'")
                queued.append(asyncio.ensure_future(store._db.execute(busy)))  # before COMMIT
                await asyncio.sleep(0)

        task = asyncio.ensure_future(poll())
        await asyncio.sleep(0.05)  # the COMMIT waits behind the busy query
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (state,) = await store.feeds()
        assert state.last_error == "written"
        async with store.write() as tx:  # and the connection is free for the next write
            await tx.db.execute("UPDATE feeds SET etag = 'next'")
        await asyncio.gather(*queued)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
