"""Digests: when they are due, and what they hold, on a real database."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.fakes.telegram_api import telegram_length
from watcher.digests import digest_due, digest_lines, send_digest, send_due_digests
from watcher.model import Entry, FeedDef, Subscriber
from watcher.store import HeldAlert, Store
from watcher.store.subscribers import OLDEST_HELD_SQL
from watcher.telegram.format import MESSAGE_LIMIT, DigestLine, render_digest

BAKU = ZoneInfo("Asia/Baku")  # UTC+4
NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)  # 08:00 in Baku


def subscriber(
    digest: str = "off", at: str | None = None, muted: datetime | None = None
) -> Subscriber:
    return Subscriber(chat_id=1, active=True, muted_until=muted, digest=digest, digest_time=at)


HELD = NOW - timedelta(hours=1)  # an alert held at 07:00 in Baku


def test_when_digests_are_due() -> None:
    assert digest_due(subscriber("daily", "08:00"), NOW, BAKU, HELD)
    just_after = NOW + timedelta(seconds=30)  # held after today's digest: tomorrow's
    assert not digest_due(
        subscriber("daily", "08:00"), NOW + timedelta(minutes=1), BAKU, just_after
    )
    assert digest_due(subscriber("daily", "08:00"), NOW + timedelta(days=1), BAKU, just_after)
    assert not digest_due(subscriber("daily", "04:00"), NOW, BAKU, HELD)  # UTC time: not theirs
    assert digest_due(subscriber("hourly"), NOW, BAKU, HELD)
    assert not digest_due(subscriber("hourly"), NOW + timedelta(minutes=30), BAKU, just_after)
    assert digest_due(subscriber("hourly"), NOW + timedelta(hours=1), BAKU, just_after)
    assert not digest_due(subscriber(muted=NOW + timedelta(hours=1)), NOW, BAKU, HELD)
    assert digest_due(subscriber(muted=NOW - timedelta(seconds=1)), NOW, BAKU, HELD)


def test_a_digest_time_the_minute_job_missed_is_made_up_for() -> None:
    # The daemon was down from 07:59 to 08:30: the 08:00 digest goes out at 08:31.
    later = NOW + timedelta(minutes=31)
    assert digest_due(subscriber("daily", "08:00"), later, BAKU, HELD)
    assert digest_due(subscriber("hourly"), later + timedelta(hours=1), BAKU, HELD)
    # What was held after 08:00 waits for the next digest time all the same.
    assert not digest_due(subscriber("daily", "08:00"), later, BAKU, NOW + timedelta(minutes=10))


def test_a_muted_digest_subscriber_gets_no_digest_until_the_mute_ends() -> None:
    muted = NOW + timedelta(hours=23)
    assert not digest_due(subscriber("daily", "08:00", muted), NOW, BAKU, HELD)
    assert not digest_due(subscriber("hourly", muted=muted), NOW, BAKU, HELD)
    assert digest_due(subscriber("hourly", muted=muted), muted + timedelta(hours=1), BAKU, HELD)
    # The digest time that passed during the mute comes when the mute ends.
    assert digest_due(subscriber("daily", "08:00", muted), muted, BAKU, HELD)


def due_minutes(at: str, start: datetime, zone: str, days: int = 3) -> list[str]:
    """The local times, over `days` from `start`, at which a daily digest at `at` goes
    out, with the minute job running each minute half a minute past it and an alert held
    at `start` and again just after each digest."""
    tz = ZoneInfo(zone)
    due = []
    held_since = start
    for minute in range(days * 24 * 60):
        moment = start + timedelta(minutes=minute, seconds=30)
        if digest_due(subscriber("daily", at), moment, tz, held_since):
            due.append(moment.astimezone(tz).strftime("%m-%d %H:%M"))
            held_since = moment + timedelta(seconds=1)
    return due


def test_a_daily_digest_comes_once_a_day_across_changes_of_clocks() -> None:
    # Berlin skips 02:00-03:00 on 29 March 2026 and repeats it on 25 October 2026.
    spring = datetime(2026, 3, 28, 0, 0, tzinfo=UTC)
    assert due_minutes("02:30", spring, "Europe/Berlin") == [
        "03-28 02:30",
        "03-29 03:00",  # the first minute after the skipped time
        "03-30 02:30",
    ]
    autumn = datetime(2026, 10, 24, 0, 0, tzinfo=UTC)
    assert due_minutes("02:30", autumn, "Europe/Berlin") == [
        "10-24 02:30",
        "10-25 02:30",  # once, though the clock shows 02:30 twice
        "10-26 02:30",
    ]
    # From 04:00 in Baku: midnight three times.
    assert due_minutes("00:00", spring, "Asia/Baku") == [
        "03-29 00:00",
        "03-30 00:00",
        "03-31 00:00",
    ]


def test_a_long_digest_is_split_within_the_limit() -> None:
    lines = [
        DigestLine(f"Story {n} 📰" + "x" * 200, f"https://apa.az/{n}", "apa", ("karabakh",))
        for n in range(100)
    ]
    messages = render_digest(lines, "Digest (100 alerts)")
    assert len(messages) > 1
    assert all(telegram_length(m) <= MESSAGE_LIMIT for m in messages)
    assert sum(m.count("• ") for m in messages) == 100


def test_a_digest_has_one_line_per_story_naming_the_other_outlets() -> None:
    def held(entry: int, feed: str, story: int | None, rules: tuple[str, ...]) -> HeldAlert:
        return HeldAlert(1, entry, rules, f"title {entry}", None, feed, NOW, story)

    lines = digest_lines(
        [
            held(1, "APA", 1, ("quakes",)),
            held(2, "Trend", 1, ("baku",)),
            held(3, "APA", 3, ("quakes",)),
            held(4, "Report", 1, ("quakes",)),
            held(5, "APA", 1, ("quakes",)),  # APA's next item about story 1: a line
            held(8, "Trend", 1, ("quakes",)),  # news to the story's latest line, as live
            held(9, "Turan", 1, ("baku",)),  # (an edit of the chat's latest message)
            held(6, "Turan", None, ("quakes",)),  # stories off: a line of its own
            held(7, "Turan", None, ("quakes",)),
        ]
    )
    assert [(line.title, line.feed, line.also, line.rules) for line in lines] == [
        ("title 1", "APA", ("Trend", "Report"), ("quakes", "baku")),
        ("title 3", "APA", (), ("quakes",)),
        ("title 5", "APA", ("Trend", "Turan"), ("quakes", "baku")),
        ("title 6", "Turan", (), ("quakes",)),
        ("title 7", "Turan", (), ("quakes",)),
    ]
    (message,) = render_digest(lines, "Digest (5 alerts)")
    assert "title 1 — APA (also: Trend, Report) #quakes #baku" in message


async def hold(store: Store, chat_id: int, count: int) -> None:
    """`count` new entries of feed "apa", held for `chat_id` (a subscriber)."""
    await store.sync_feeds([FeedDef("apa", "https://apa.az/rss", 600)], NOW)
    state = await store.feed("apa")
    assert state is not None
    async with store.write() as tx:
        new = await tx.insert_entries(
            state.id,
            [Entry(f"g{n}", f"https://apa.az/{n}", f"Karabakh <{n}>", "") for n in range(count)],
            NOW,
        )
        for entry in new:
            await tx.hold(chat_id, entry.id, ["karabakh"], NOW)


async def test_held_alerts_go_out_as_one_message_at_digest_time(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "w.db") as store:
        await store.add_subscriber(5, NOW)
        await store.set_digest(5, "daily", "08:00")
        await hold(store, 5, 3)

        assert await send_due_digests(store, NOW - timedelta(minutes=1), BAKU) == 0
        assert await send_due_digests(store, NOW, BAKU) == 3
        (message,) = await store.due_outbox(NOW)
        assert message.chat_id == 5
        assert message.text.startswith("Digest (3 alerts)")
        assert '<a href="https://apa.az/0">Karabakh &lt;0&gt;</a> — apa #karabakh' in message.text
        assert await store.held_alerts(5) == []
        assert await send_due_digests(store, NOW, BAKU) == 0


async def test_two_releases_at_once_queue_one_digest(tmp_path: Path) -> None:
    # The minute job and an /unmute (send_digest) at the same moment.
    async with await Store.open(tmp_path / "w.db") as store:
        await store.add_subscriber(5, NOW)
        await store.set_muted_until(5, NOW - timedelta(seconds=1))  # the mute just ended
        await hold(store, 5, 1)
        released = await asyncio.gather(
            send_due_digests(store, NOW, BAKU), send_digest(store, 5, NOW, "While you were muted")
        )
        assert sorted(released) == [0, 1]
        assert len(await store.due_outbox(NOW)) == 1


async def test_a_release_that_lost_part_of_its_alerts_to_another_queues_nothing(
    tmp_path: Path,
) -> None:
    # B read g0 and g1; meanwhile A released g0. B's digest would list g0 a second time.
    async with await Store.open(tmp_path / "w.db") as store:
        await store.add_subscriber(5, NOW)
        await hold(store, 5, 2)
        g0, g1 = (h.entry_id for h in await store.held_alerts(5))
        assert await store.release_held(5, [g0], ["A: g0"], NOW) == 1
        assert await store.release_held(5, [g0, g1], ["B: g0 and g1"], NOW) == 0
        assert [m.text for m in await store.due_outbox(NOW)] == ["A: g0"]
        assert await send_digest(store, 5, NOW, "While you were muted") == 1  # reads again
        texts = [m.text for m in await store.due_outbox(NOW)]
        assert len(texts) == 2 and "apa.az/1" in texts[1] and "apa.az/0" not in texts[1]


async def test_the_minute_job_reads_only_the_alerts_still_waiting(tmp_path: Path) -> None:
    # It runs every minute beside a month of released alerts: by their own index.
    async with await Store.open(tmp_path / "w.db") as store:
        plan = await store._fetchall(f"EXPLAIN QUERY PLAN {OLDEST_HELD_SQL}", ())
        assert [row[3] for row in plan] == ["SCAN held_alerts USING INDEX held_alerts_waiting"]
