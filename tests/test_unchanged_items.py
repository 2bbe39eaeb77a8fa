"""Items a changed document shares with the feed's previous one are not parsed again.

Most of a changed feed is what it was (a news feed adds a few items to the dozens it
lists), so the parse leaves out the items whose digest the store lists for the feed
(`Store.listed_items`), and `record_entries` only marks their entries seen. The promise is
that this changes nothing a poll records: the property test below records random
sequences of documents both ways, in two SQLite files, and compares what each poll
returned and every stored row after it."""

from __future__ import annotations

import asyncio
import html
import pickle
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.feedparser_runs import count_feedparser_runs
from tests.poll_harness import Clock, poll_parts
from watcher.identity import entry_keys, title_key_minute
from watcher.model import FeedDef, FeedState, FetchResult, KnownItem, ParsedFeed
from watcher.parse import parse_feed
from watcher.parse_pool import FeedParser
from watcher.parse_worker import read_frame, write_frame
from watcher.pipeline import poll_feed
from watcher.store import Store, prune, unchanged_for_recording
from watcher.store.sqlite import ListedItem

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    guid: str | None
    link: str | None
    title: str
    summary: str = ""
    published: datetime | None = None
    note: str = ""  # a comment: other bytes, the same fields (a view count, a cache stamp)

    def xml(self) -> str:
        parts = [f"<title>{html.escape(self.title)}</title>"]
        if self.guid is not None:
            parts.append(f"<guid>{html.escape(self.guid)}</guid>")
        if self.link is not None:
            parts.append(f"<link>{html.escape(self.link)}</link>")
        if self.summary:
            parts.append(f"<description>{html.escape(self.summary)}</description>")
        if self.published is not None:
            parts.append(f"<pubDate>{self.published:%a, %d %b %Y %H:%M:%S} +0000</pubDate>")
        if self.note:
            parts.append(f"<!-- {self.note} -->")
        return f"<item>{''.join(parts)}</item>"


def rss(*items: Item) -> bytes:
    body = "".join(item.xml() for item in items)
    return f"<rss version='2.0'><channel><title>t</title>{body}</channel></rss>".encode()


def parse(*items: Item, known: Mapping[int, KnownItem] = {}, now: datetime = START) -> ParsedFeed:
    result = FetchResult(200, "http://127.0.0.1/feed", rss(*items), content_type="text/xml")
    return parse_feed(result, known=known, now=now)


def known_items(parsed: ParsedFeed) -> dict[int, KnownItem]:
    """What the store would list after recording `parsed` (each of these items alone names
    its entry)."""
    return {
        entry.item_digest: KnownItem(entry.guid, title_key_minute(entry.published))
        for entry in parsed.entries
        if entry.item_digest is not None
    }


def known_of(listed: Mapping[int, ListedItem]) -> dict[int, KnownItem]:
    return {digest: item.known for digest, item in listed.items()}


def recorded_unchanged(parsed: ParsedFeed, listed: Mapping[int, ListedItem]) -> dict[str, Any]:
    """`record_entries`' arguments for the unchanged items, as the pipeline gives them."""
    unchanged, redigested = unchanged_for_recording(parsed.unchanged, listed)
    return {"unchanged": unchanged, "redigested": redigested}


AT = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
ROAD = Item("g-road", "https://news.example/road", "Lachin road reopens today", "Trucks.", AT)
TALKS = Item(
    "g-talks",
    "https://news.example/talks",
    "Peace talks resume in Baku",
    "Delegations.",
    AT + timedelta(minutes=2),
)
FRESH = Item(
    "g-fresh",
    "https://news.example/fresh",
    "Ceasefire holds for a week",
    "Calm.",
    AT + timedelta(minutes=5),
)

RELINKED = Item("g-new", ROAD.link, "Lachin road reopens, again", "Buses.", AT + timedelta(hours=3))
MOVED = Item(ROAD.guid, ROAD.link, ROAD.title, ROAD.summary, AT + timedelta(hours=2))
ELSEWHERE = Item("g-else", "https://other.example/road", "Road news elsewhere today", "", AT)
ROAD_AT_ELSEWHERE = Item(ROAD.guid, ELSEWHERE.link, ROAD.title, ROAD.summary, ROAD.published)
ELSEWHERE_LATER = Item(
    "g-else2", ELSEWHERE.link, "Another road story here", "", AT + timedelta(hours=1)
)


# --- the parse --------------------------------------------------------------------------------


def test_items_the_previous_document_had_are_left_out_at_their_positions() -> None:
    before = parse(ROAD, TALKS)
    assert all(entry.item_digest is not None for entry in before.entries)
    after = parse(FRESH, ROAD, TALKS, known=known_items(before))
    assert [entry.title for entry in after.entries] == [FRESH.title]
    assert [item.position for item in after.unchanged] == [1, 2]
    assert [item.digest for item in after.unchanged] == [e.item_digest for e in before.entries]
    assert after.item_count == 3


def test_without_known_digests_every_item_is_an_entry() -> None:
    parsed = parse(FRESH, ROAD, TALKS)
    assert [entry.title for entry in parsed.entries] == [FRESH.title, ROAD.title, TALKS.title]
    assert parsed.unchanged == ()


@pytest.mark.parametrize(
    "changed",
    [
        Item("g-road2", ROAD.link, ROAD.title, ROAD.summary, ROAD.published),
        Item(ROAD.guid, "https://news.example/road?x=1", ROAD.title, ROAD.summary, AT),
        Item(ROAD.guid, ROAD.link, "Lachin road reopens tonight", ROAD.summary, AT),
        Item(ROAD.guid, ROAD.link, ROAD.title, "Trucks and buses.", AT),
        Item(ROAD.guid, ROAD.link, ROAD.title, ROAD.summary, AT + timedelta(seconds=1)),
        Item(ROAD.guid, ROAD.link, ROAD.title, ROAD.summary, None),
    ],
)
def test_an_item_changed_in_any_field_is_parsed_again(changed: Item) -> None:
    before = parse(ROAD)
    after = parse(changed, known=known_items(before))
    assert after.unchanged == ()
    assert len(after.entries) == 1 and after.entries[0].item_digest != before.entries[0].item_digest


def test_markup_type_is_part_of_an_item() -> None:
    """The same characters are other words as plain text or as HTML ("&lt;b&gt;")."""
    as_html = b"<feed xmlns='http://www.w3.org/2005/Atom'><entry><id>1</id>"
    plain = as_html + b"<title type='text'>a &lt;b&gt; c</title></entry></feed>"
    markup = as_html + b"<title type='html'>a &lt;b&gt; c</title></entry></feed>"
    digests = [
        parse_feed(FetchResult(200, "http://127.0.0.1/f", body)).entries[0].item_digest
        for body in (plain, markup)
    ]
    assert digests[0] != digests[1]


def test_items_sharing_a_guid_or_a_minute_are_never_left_out() -> None:
    """Their keys depend on each other (see `entry_keys`): such items get no digest."""
    same_guid = Item(ROAD.guid, "https://news.example/other", "Other words entirely", "", None)
    same_minute = Item(
        "g-x", "https://news.example/x", "Another story this is", "", TALKS.published
    )
    midnight = datetime(2026, 11, 28, tzinfo=UTC)
    day_only = [
        Item(f"d{n}", f"https://news.example/d{n}", f"Day story {n} here", "", midnight)
        for n in range(2)
    ]
    parsed = parse(ROAD, same_guid, TALKS, same_minute, *day_only, FRESH)
    digests = {entry.title: entry.item_digest for entry in parsed.entries}
    assert digests[ROAD.title] is None and digests[same_guid.title] is None
    assert digests[TALKS.title] is None and digests[same_minute.title] is None
    # Midnight gives no title key: those items stand alone, as does one with its own minute.
    assert all(digests[item.title] is not None for item in (*day_only, FRESH))


def test_an_item_dated_too_far_ahead_is_parsed_again_until_its_date_counts() -> None:
    ahead = Item(
        "g-ahead",
        "https://news.example/ahead",
        "Summit set for next month",
        "",
        START + timedelta(days=3),
    )
    first = parse(ahead, now=START)
    assert first.entries[0].published is None and first.entries[0].item_digest is None
    later = parse(ahead, now=START + timedelta(days=3), known=known_items(first))
    assert (
        later.entries[0].published == ahead.published and later.entries[0].item_digest is not None
    )


async def test_the_workers_give_the_digests_a_parse_here_gives() -> None:
    """Digests are stored and compared across processes: they depend on values alone."""
    parser = FeedParser(workers=2)
    try:
        result = FetchResult(200, "http://127.0.0.1/feed", rss(ROAD, TALKS, FRESH))
        remote = await asyncio.gather(*(parser.parse(result) for _ in range(4)))
    finally:
        parser.close()
    here = [entry.item_digest for entry in parse_feed(result).entries]
    assert all([entry.item_digest for entry in parsed.entries] == here for parsed in remote)
    again = await _parse_in_a_fresh_pool(result, known_items(parse_feed(result)))
    assert again.entries == () and [item.digest for item in again.unchanged] == here


def test_a_worker_answers_requests_from_daemons_older_than_it() -> None:
    """A worker replacing a dead one runs the code on disk, which an upgrade may have
    changed under a running daemon that still sends a bare FetchResult."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "watcher.parse_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert worker.stdin is not None and worker.stdout is not None
    try:
        assert isinstance(pickle.loads(read_frame(worker.stdout) or b""), int)  # its pid
        result = FetchResult(200, "http://127.0.0.1/feed", rss(ROAD, TALKS))
        write_frame(worker.stdin, pickle.dumps(result))
        ok, parsed = pickle.loads(read_frame(worker.stdout) or b"")
        assert ok and [entry.title for entry in parsed.entries] == [ROAD.title, TALKS.title]
        # A daemon older than known items sends the digests it knows as a set: of its own
        # code, so none can be known here; the whole document is parsed.
        digests = frozenset(e.item_digest for e in parse_feed(result).entries)
        write_frame(worker.stdin, pickle.dumps((result, digests)))
        ok, parsed = pickle.loads(read_frame(worker.stdout) or b"")
        assert ok and [entry.title for entry in parsed.entries] == [ROAD.title, TALKS.title]
    finally:
        worker.stdin.close()
        worker.wait(timeout=10)


async def _parse_in_a_fresh_pool(result: FetchResult, known: dict[int, KnownItem]) -> ParsedFeed:
    parser = FeedParser(workers=1)
    try:
        return await parser.parse(result, known)
    finally:
        parser.close()


@given(
    st.lists(
        st.tuples(
            st.sampled_from([None, "a", "b", "c"]),
            st.sampled_from([None, "https://x.example/1", "https://x.example/2"]),
            st.sampled_from(["One two three", "Four five six", "Seven eight nine"]),
            st.sampled_from([None, AT, AT + timedelta(seconds=20), AT + timedelta(minutes=3)]),
        ),
        max_size=6,
    )
)
def test_an_item_keyed_alone_has_the_keys_it_has_in_its_document(
    fields: list[tuple[str | None, str | None, str, datetime | None]],
) -> None:
    """What makes leaving items out safe: an item the parse gives a digest has the keys it
    would have in a document of its own, whatever else its document lists."""
    parsed = parse(*(Item(guid, link, title, published=at) for guid, link, title, at in fields))
    together = entry_keys(7, parsed.entries)
    for entry, keys in zip(parsed.entries, together, strict=True):
        if entry.item_digest is not None:
            assert entry_keys(7, [entry]) == [keys]


# --- recording: the same rows either way ----------------------------------------------------

GUIDS = [None, "g1", "g2", "g3"]
LINKS = [None, "https://a.example/1", "https://www.a.example/1/", "https://a.example/2"]
TITLES = ["Peace talks in Baku", "PEACE talks in baku!", "Road to Lachin reopens", "Calm"]
SUMMARIES = ["", "Delegations met.", "Trucks passed."]
DATES = [
    None,
    AT,
    AT + timedelta(seconds=30),  # AT's minute
    AT + timedelta(minutes=7),
    datetime(2026, 11, 28, tzinfo=UTC),  # midnight
    START + timedelta(days=2),  # ahead of the first documents, not of later ones
]
items = st.builds(
    Item,
    st.sampled_from(GUIDS),
    st.sampled_from(LINKS),
    st.sampled_from(TITLES),
    st.sampled_from(SUMMARIES),
    st.sampled_from(DATES),
)


@st.composite
def documents(draw: st.DrawFn) -> list[tuple[int, int, list[Item]]]:
    """(feed 0 or 1, hours since the previous document, the document's items): items drawn
    from a few per example, so that documents share items, as a feed's successive bodies do
    (drawn afresh for each document, items would rarely recur: nothing left out to test)."""
    pool = draw(st.lists(items, min_size=1, max_size=6))
    # Now and then an item comes back with other bytes for the same fields (a comment).
    listed = st.sampled_from(pool).flatmap(
        lambda item: st.sampled_from([item, item, replace(item, note="seen 5 times")])
    )
    document = st.lists(listed, max_size=6)
    return draw(
        st.lists(
            st.tuples(st.integers(0, 1), st.sampled_from([1, 80]), document),
            min_size=1,
            max_size=8,
        )
    )


def _rows(path: Path) -> list[tuple[object, ...]]:
    """Every stored entry, its digests included (what the next parse will know), and when
    each feed was last parsed."""
    with sqlite3.connect(path) as db:
        entries = db.execute(
            """SELECT id, feed_id, guid_key, link_key, title_key, content_key, guid, link,
                      title, summary, published_at, first_seen_at, last_seen_at, updated_at,
                      item_digest, field_digest
               FROM entries ORDER BY id"""
        ).fetchall()
        feeds = db.execute("SELECT id, last_parsed_at FROM feeds ORDER BY id").fetchall()
    return [*entries, *feeds]


async def _record_both_ways(workdir: Path, sequence: list[tuple[int, int, list[Item]]]) -> None:
    feeds = [FeedDef(f"feed{n}", f"http://127.0.0.1/{n}", 600) for n in range(2)]
    async with (
        await Store.open(workdir / "full.db") as full,
        await Store.open(workdir / "reusing.db") as reusing,
    ):
        for store in (full, reusing):
            await store.sync_feeds(feeds, START)
        ids = {state.name: state.id for state in await full.feeds()}
        now = START
        for feed, hours, listed in sequence:
            now += timedelta(hours=hours)
            feed_id = ids[f"feed{feed}"]
            result = FetchResult(200, f"http://127.0.0.1/{feed}", rss(*listed))
            whole = parse_feed(result, now=now)
            async with full.write() as tx:
                expected = await tx.record_entries(feed_id, whole.entries, now)
            known = await reusing.listed_items(feed_id)
            parsed = parse_feed(result, now=now, known=known_of(known))
            async with reusing.write() as tx:
                got = await tx.record_entries(
                    feed_id, parsed.entries, now, **recorded_unchanged(parsed, known)
                )
            assert [(n.id, n.entry) for n in got.new] == [(n.id, n.entry) for n in expected.new]
            assert got.updated == expected.updated
            assert _rows(reusing.path) == _rows(full.path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_leaving_unchanged_items_out_records_what_recording_them_all_does(
    sequence: list[tuple[int, int, list[Item]]],
) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(_record_both_ways(Path(workdir), sequence))


@pytest.mark.parametrize(
    "sequence",
    [
        pytest.param(
            [
                (0, 1, [ROAD, TALKS]),
                (0, 1, [ROAD, RELINKED, TALKS]),  # RELINKED names ROAD's entry, after ROAD
                (0, 1, [ROAD, TALKS]),
                (0, 1, [RELINKED, ROAD, TALKS]),  # ... and before it
            ],
            id="a changed item naming an unchanged item's entry",
        ),
        pytest.param(
            [
                (1, 1, [ELSEWHERE]),
                (0, 1, [ROAD, TALKS]),
                (0, 1, [ROAD_AT_ELSEWHERE, TALKS]),  # ROAD's guid, the other feed's link
                (0, 80, [ROAD_AT_ELSEWHERE, TALKS, FRESH]),
                (0, 80, [ROAD_AT_ELSEWHERE, TALKS]),
            ],
            id="an item naming its entry and another feed's",
        ),
        pytest.param(
            [
                (0, 1, [ROAD, TALKS]),
                (0, 1, [ROAD, ROAD, TALKS, FRESH]),
                (0, 1, [MOVED, TALKS, FRESH]),
                (0, 1, [ROAD, TALKS, FRESH]),
            ],
            id="the same item twice, an item changed and changed back",
        ),
        pytest.param(
            [
                (0, 1, [ROAD, TALKS]),
                (0, 1, [ROAD_AT_ELSEWHERE, TALKS]),  # ROAD's guid, a link no row holds yet
                (1, 1, [ELSEWHERE]),  # another feed records that link
                (0, 1, [ROAD_AT_ELSEWHERE, TALKS, FRESH]),  # the full way marks it seen
            ],
            id="a link its entry does not hold, recorded later by another feed",
        ),
        pytest.param(
            [
                (0, 1, [ROAD, TALKS]),
                (0, 1, [ROAD_AT_ELSEWHERE, TALKS]),
                (0, 1, [ROAD_AT_ELSEWHERE, TALKS, ELSEWHERE_LATER]),  # ... by its own feed
                (0, 1, [ROAD_AT_ELSEWHERE, TALKS]),
            ],
            id="a link its entry does not hold, recorded later by its own feed",
        ),
    ],
)
def test_hand_picked_documents_are_recorded_both_ways_alike(
    tmp_path: Path, sequence: list[tuple[int, int, list[Item]]]
) -> None:
    """Cases the strategy above reaches rarely (each one's check fails without the code it
    is here for)."""
    asyncio.run(_record_both_ways(tmp_path, sequence))


def test_listed_items_are_those_of_the_last_document(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with await Store.open(tmp_path / "w.db") as store:
            await store.sync_feeds([FeedDef("news", "http://127.0.0.1/", 600)], START)
            (state,) = await store.feeds()
            first = parse(ROAD, TALKS)
            async with store.write() as tx:
                await tx.record_entries(state.id, first.entries, START)
            listed = await store.listed_items(state.id)
            assert sorted(listed) == sorted(known_items(first))
            assert known_of(listed) == known_items(first)
            second = parse(FRESH, TALKS, known=known_of(listed))
            unchanged = [(item.position, listed[item.digest]) for item in second.unchanged]
            async with store.write() as tx:
                await tx.record_entries(state.id, second.entries, START, unchanged=unchanged)
            # ROAD dropped out: its entry is kept (retention decides), its digest is not.
            after = await store.listed_items(state.id)
            assert sorted(after) == sorted(
                [*known_items(second), *(i.digest for i in second.unchanged)]
            )
            assert len(after) == 2

    asyncio.run(scenario())


def test_listed_items_know_the_guid_and_minute_their_item_has(tmp_path: Path) -> None:
    """The parse keys the items it reads against the guid and minute the store gives for
    those it leaves out: an entry whose row holds another date than its item (the date
    changed under the same guid; a two-word title has no title key to tell) names none."""
    short = Item("g-short", "https://news.example/short", "Breaking news", "", AT)
    moved = Item(short.guid, short.link, short.title, "", AT + timedelta(hours=1))

    async def scenario() -> None:
        async with await Store.open(tmp_path / "w.db") as store:
            await store.sync_feeds([FeedDef("news", "http://127.0.0.1/", 600)], START)
            (state,) = await store.feeds()
            for listed in ((short, ROAD), (moved, ROAD)):
                parsed = parse(*listed, known=known_of(await store.listed_items(state.id)))
                items = await store.listed_items(state.id)
                unchanged = [(item.position, items[item.digest]) for item in parsed.unchanged]
                async with store.write() as tx:
                    await tx.record_entries(state.id, parsed.entries, START, unchanged=unchanged)
            road = parse(ROAD).entries[0]  # its guid as feedparser gives it: resolved
            after = known_of(await store.listed_items(state.id))
            assert list(after.values()) == [KnownItem(road.guid, title_key_minute(road.published))]

    asyncio.run(scenario())


def test_an_item_whose_bytes_changed_once_is_cut_out_again_after_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Known by its fields the first time its new bytes are read, the item is known by
    those bytes from then on: a one-time change (a CMS upgrade) costs one read, not one
    at every poll."""
    stamped = [replace(item, note="v2") for item in (ROAD, TALKS, FRESH)]
    read = count_feedparser_runs(monkeypatch)

    async def scenario() -> None:
        async with await Store.open(tmp_path / "w.db") as store:
            await store.sync_feeds([FeedDef("news", "http://127.0.0.1/", 600)], START)
            (state,) = await store.feeds()
            for listed in ([ROAD, TALKS, FRESH], stamped, stamped):
                known = await store.listed_items(state.id)
                # application/xml (no charset needed): a body items can be cut out of
                result = FetchResult(200, "http://127.0.0.1/feed", rss(*listed))
                parsed = parse_feed(result, known=known_of(known), now=START)
                async with store.write() as tx:
                    await tx.record_entries(
                        state.id, parsed.entries, START, **recorded_unchanged(parsed, known)
                    )
                assert parsed.entries == () or not known

    asyncio.run(scenario())
    assert read == [3, 3, 1]  # all; all again (new bytes), known by fields; the first only


def test_unchanged_positions_must_fit_the_document(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with await Store.open(tmp_path / "w.db") as store:
            await store.sync_feeds([FeedDef("news", "http://127.0.0.1/", 600)], START)
            (state,) = await store.feeds()
            first = parse(ROAD)
            async with store.write() as tx:
                await tx.record_entries(state.id, first.entries, START)
            (listed,) = (await store.listed_items(state.id)).values()
            with pytest.raises(ValueError, match="positions"):
                async with store.write() as tx:
                    await tx.record_entries(state.id, (), START, unchanged=[(1, listed)])

    asyncio.run(scenario())


# --- a poll ------------------------------------------------------------------------------------


async def test_a_poll_parses_only_what_changed_and_keeps_the_rest_alive(tmp_path: Path) -> None:
    """End to end through poll_feed: the second poll of a feed with one new item parses
    that item alone, and the entries of the others count as listed for retention."""
    clock = Clock(START)
    async with poll_parts(tmp_path / "w.db", [], clock=clock) as (server, context):
        feed = FeedDef("news", server.url("/rss"), 300)
        await context.store.sync_feeds([feed], clock.now)

        async def poll(*listed: Item) -> tuple[int, int, int]:
            server.serve("/rss", rss(*listed).decode())
            state = await context.store.feed(feed.name)
            assert isinstance(state, FeedState)
            report = await poll_feed(feed, state, context)
            assert report.error is None
            return report.entries, report.unchanged, report.new

        assert await poll(ROAD, TALKS) == (2, 0, 2)
        clock.now += timedelta(days=100)
        assert await poll(FRESH, ROAD, TALKS) == (3, 2, 1)
        later = clock.now + timedelta(days=1)
        pruned = await prune(context.store, later, keep_entries_s=90 * 86400, keep_outbox_s=0)
        assert pruned.entries_deleted == 0
        with sqlite3.connect(context.store.path) as db:
            seen = {row[0] for row in db.execute("SELECT last_seen_at FROM entries")}
        assert seen == {clock.now.timestamp()}
