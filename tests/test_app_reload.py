"""Daemon.reload on a real database: a reload that fails anywhere changes nothing, tells
the admins once, and leaves the daemon running the last good config."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.app import Daemon, utc_now
from watcher.config import load_config
from watcher.delivery import Delivery
from watcher.model import FeedSuccess
from watcher.store import Store
from watcher.telegram.send import TelegramSender

GOOD = """
[telegram]
admins = [42]

[[feeds]]
name = "a"
url = "https://a.example/rss"

[[rules]]
name = "r"
query = "alpha"
"""
EDITED = (
    GOOD.replace('"alpha"', '"beta"') + '[[feeds]]\nname = "b"\nurl = "https://b.example/rss"\n'
)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[Daemon, Store, Delivery, Path]]:
    config = tmp_path / "watcher.toml"
    config.write_text(GOOD, encoding="utf-8")
    daemon = Daemon(load_config(config), environ={})
    # Never asked to send: it only makes the delivery queue notices for the admins.
    sender = TelegramSender("123456:unused-token", api_base_url="http://127.0.0.1:9/")
    async with await Store.open(tmp_path / "w.db") as store:
        await store.sync_feeds(daemon.settings.feeds, utc_now())
        delivery = Delivery(store, sender, clock=utc_now, admins=(42,))
        try:
            yield daemon, store, delivery, config
        finally:
            await sender.close()


async def notices(store: Store) -> list[str]:
    return [row[0] for row in await store._fetchall("SELECT text FROM outbox", ())]


def assert_runs_the_good_config(daemon: Daemon, good: object) -> None:
    assert daemon.settings is good
    assert sorted(daemon._feeds) == ["a"]
    matcher = daemon._ruleset.matcher
    assert [hit.rule for hit in matcher.match("alpha", "")] == ["r"]
    assert not matcher.match("beta", "")


async def test_a_reload_the_database_refuses_changes_nothing(
    parts: tuple[Daemon, Store, Delivery, Path],
) -> None:
    daemon, store, delivery, config = parts
    good = daemon.settings
    with sqlite3.connect(store.path) as db:  # a real refusal, from SQLite itself
        db.execute(
            "CREATE TRIGGER no_new_feeds BEFORE INSERT ON feeds "
            "BEGIN SELECT RAISE(ABORT, 'no new feeds'); END"
        )
    config.write_text(EDITED, encoding="utf-8")
    assert await daemon.reload(store, delivery) is False
    assert_runs_the_good_config(daemon, good)
    assert await daemon.reload(store, delivery) is False
    (notice,) = await notices(store)  # once per distinct error
    assert "Config reload failed" in notice and "database refused the new feeds" in notice


async def test_an_internal_error_while_loading_is_a_failed_reload(
    parts: tuple[Daemon, Store, Delivery, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, store, delivery, config = parts
    good = daemon.settings

    def broken(path: Path, **_: object) -> object:
        raise RuntimeError("a fault of ours")

    monkeypatch.setattr("watcher.app.load_config", broken)
    config.write_text(EDITED, encoding="utf-8")
    assert await daemon.reload(store, delivery) is False
    assert_runs_the_good_config(daemon, good)
    (notice,) = await notices(store)
    assert "an internal error" in notice and "a fault of ours" not in notice
    monkeypatch.undo()
    assert await daemon.reload(store, delivery) is True
    assert sorted(daemon._feeds) == ["a", "b"]


async def test_a_save_made_while_a_reload_runs_is_applied_next(
    parts: tuple[Daemon, Store, Delivery, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator saves twice; the second save lands while the first one's reload still
    # compiles rules and records feeds. Stamps taken after that reload took it for seen.
    daemon, store, delivery, config = parts
    second = EDITED + '[[feeds]]\nname = "c"\nurl = "https://c.example/rss"\n'
    loads = 0

    def load_then_save_again(path: Path, **options: Any) -> object:
        nonlocal loads
        settings = load_config(path, **options)
        loads += 1
        if loads == 1:
            config.write_text(second, encoding="utf-8")
        return settings

    monkeypatch.setattr("watcher.app.load_config", load_then_save_again)
    watching = asyncio.create_task(daemon._watch_config(store, delivery))
    try:
        config.write_text(EDITED, encoding="utf-8")
        async with asyncio.timeout(15):
            while sorted(daemon._feeds) != ["a", "b", "c"]:  # noqa: ASYNC110 (polls state)
                await asyncio.sleep(0.05)
    finally:
        daemon.request_stop()
        await asyncio.wait_for(watching, 5)
    assert loads == 2


async def test_a_feed_given_a_new_url_is_not_polled_at_the_old_one_while_the_reload_records_it(
    parts: tuple[Daemon, Store, Delivery, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reload stops the poll of the old URL, then records the new one; the tick, running
    # meanwhile, still has the old row and the old feed, and started it again (its 410
    # or backoff then landed on the new URL).
    daemon, store, delivery, config = parts
    polled: list[str] = []

    async def slow_poll(feed: object, state: object, context: object) -> None:
        polled.append(getattr(feed, "url", "?"))
        await asyncio.sleep(3600)  # a slow server: the poll stays in flight

    monkeypatch.setattr("watcher.app.poll_feed", slow_poll)

    async def ticking() -> None:
        while True:
            await daemon._tick(store, None, delivery)  # type: ignore[arg-type]
            await asyncio.sleep(0.05)

    ticker = asyncio.create_task(ticking())
    try:
        async with asyncio.timeout(5):
            while not polled:  # noqa: ASYNC110 (polls state)
                await asyncio.sleep(0.01)
        config.write_text(GOOD.replace("a.example", "new.example"), encoding="utf-8")
        # Another process holds the write lock for a while: recording the new feeds waits.
        holder = sqlite3.connect(store.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        reloading = asyncio.create_task(daemon.reload(store, delivery))
        await asyncio.sleep(0.5)  # ticks run while the reload waits for the lock
        holder.execute("COMMIT")
        holder.close()
        assert await reloading is True
        await asyncio.sleep(0.2)
    finally:
        ticker.cancel()
        for task in [ticker, *daemon._in_flight.values()]:
            task.cancel()
        await asyncio.gather(ticker, *daemon._in_flight.values(), return_exceptions=True)
    assert polled == ["https://a.example/rss", "https://new.example/rss"]


async def test_the_admins_hear_when_a_failed_edit_is_fixed(
    parts: tuple[Daemon, Store, Delivery, Path],
) -> None:
    daemon, store, delivery, config = parts
    config.write_text(GOOD.replace('query = "alpha"', 'query = "(alpha"'), encoding="utf-8")
    assert await daemon.reload(store, delivery) is False
    config.write_text(EDITED, encoding="utf-8")
    assert await daemon.reload(store, delivery) is True
    failed, fixed = await notices(store)
    assert "Config reload failed" in failed
    assert "Config reloaded: the error reported before is fixed." in fixed


async def test_followers_keep_a_rule_renamed_in_case_and_the_admins_hear_of_one_removed(
    parts: tuple[Daemon, Store, Delivery, Path],
) -> None:
    daemon, store, delivery, config = parts
    await store.follow(7, "r", utc_now())
    config.write_text(GOOD.replace('name = "r"', 'name = "R"'), encoding="utf-8")
    assert await daemon.reload(store, delivery) is True
    assert [s.chat_id for s in (await store.subscribers_of(["R"]))["R"]] == [7]
    assert await notices(store) == []

    config.write_text(GOOD.replace('name = "r"', 'name = "renamed"'), encoding="utf-8")
    assert await daemon.reload(store, delivery) is True
    (notice,) = await notices(store)
    assert "Chats follow rules no longer in the config: R (1 chats)" in notice
    assert await daemon.reload(store, delivery) is True  # the same: not told again
    assert len(await notices(store)) == 1


async def test_admins_and_who_may_subscribe_apply_at_once(
    parts: tuple[Daemon, Store, Delivery, Path], caplog: pytest.LogCaptureFixture
) -> None:
    daemon, store, delivery, config = parts
    edited = GOOD.replace("admins = [42]", 'admins = [43]\nsubscribers = "allowlist"\nallow = [7]')
    config.write_text(edited, encoding="utf-8")
    assert await daemon.reload(store, delivery) is True
    assert not [r for r in caplog.records if "after a restart" in r.getMessage()]
    assert daemon._ruleset.may_subscribe == frozenset({7, 43})
    config.write_text(edited.replace('query = "alpha"', 'query = "(alpha"'), encoding="utf-8")
    assert await daemon.reload(store, delivery) is False
    rows = await store._fetchall("SELECT chat_id FROM outbox", ())
    assert [row[0] for row in rows] == [43]  # the notice goes to the admin now configured


async def test_a_reload_that_leaves_the_rules_alone_keeps_their_compiled_matcher(
    parts: tuple[Daemon, Store, Delivery, Path],
) -> None:
    # Compiling is most of a big config's load (5,000 rules: seconds): a feed edit skips it.
    daemon, store, delivery, config = parts
    before = daemon._ruleset.matcher
    config.write_text(GOOD + '[[feeds]]\nname = "b"\nurl = "https://b.example/rss"\n', "utf-8")
    assert await daemon.reload(store, delivery) is True
    assert daemon._ruleset.matcher is before and sorted(daemon._feeds) == ["a", "b"]
    config.write_text(EDITED, encoding="utf-8")  # the rule changed: compiled again
    assert await daemon.reload(store, delivery) is True
    assert daemon._ruleset.matcher is not before
    assert [hit.rule for hit in daemon._ruleset.matcher.match("beta", "")] == ["r"]


async def checked_at(store: Store, at: datetime) -> None:
    """The one feed polled at `at` (a 304), its next check ten minutes on."""
    (feed,) = await store.feeds()
    await store.feed_unchanged(
        feed.id, FeedSuccess(at, 304, None, None, None, at + timedelta(minutes=10))
    )


async def test_a_wall_clock_stepped_back_moves_the_schedules_back(
    parts: tuple[Daemon, Store, Delivery, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # NTP or a restored VM sets the clock an hour back: schedules kept in wall time would
    # poll and send nothing for that hour.
    daemon, store, delivery, _ = parts
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    await checked_at(store, start)
    readings = iter([start, start + timedelta(seconds=1), start - timedelta(hours=1)])
    monkeypatch.setattr("watcher.app.utc_now", lambda: next(readings))
    for _ in range(3):  # three ticks: the third reads the clock an hour back
        await daemon._follow_the_clock(store, delivery)
    (feed,) = await store.feeds()
    assert feed.next_check_at == start + timedelta(minutes=10) - timedelta(hours=1, seconds=1)
    # A poll under way at the step writes its schedule in the old time afterwards: the
    # next tick moves it back too.
    old_time = start + timedelta(seconds=2)
    await checked_at(store, old_time)
    readings = iter([start - timedelta(hours=1) + timedelta(seconds=3)])
    await daemon._follow_the_clock(store, delivery)
    (healed,) = await store.feeds()
    assert healed.next_check_at == old_time + timedelta(minutes=10) - timedelta(hours=1, seconds=1)
    # A clock that only runs slow or fast by a little is no step.
    readings = iter([start, start - timedelta(seconds=2)])
    await daemon._follow_the_clock(store, delivery)
    await daemon._follow_the_clock(store, delivery)
    (again,) = await store.feeds()
    assert again.next_check_at == healed.next_check_at


async def test_a_clock_step_the_database_refused_to_follow_is_followed_at_the_next_tick(
    parts: tuple[Daemon, Store, Delivery, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, store, delivery, _ = parts
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    await checked_at(store, start)
    back = start - timedelta(hours=1)
    readings = iter([start, back, back + timedelta(seconds=1)])
    monkeypatch.setattr("watcher.app.utc_now", lambda: next(readings))
    with sqlite3.connect(store.path) as db:  # the database is busy: the first try fails
        db.execute(
            "CREATE TRIGGER busy BEFORE UPDATE OF next_check_at ON feeds "
            "BEGIN SELECT RAISE(ABORT, 'database is locked'); END"
        )
    await daemon._follow_the_clock(store, delivery)
    await daemon._follow_the_clock(store, delivery)  # the step: refused
    with sqlite3.connect(store.path) as db:
        db.execute("DROP TRIGGER busy")
    await daemon._follow_the_clock(store, delivery)  # still a step from the last good tick
    (moved,) = await store.feeds()
    assert moved.next_check_at == start + timedelta(minutes=10) - (
        start - (back + timedelta(seconds=1))
    )


async def test_a_second_clock_step_while_the_first_heals_moves_rows_once(
    parts: tuple[Daemon, Store, Delivery, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, store, delivery, _ = parts
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    back = start - timedelta(hours=1)
    readings = iter([start, back])
    monkeypatch.setattr("watcher.app.utc_now", lambda: next(readings))
    await daemon._follow_the_clock(store, delivery)
    await daemon._follow_the_clock(store, delivery)  # an hour back: healing for a while
    checked = back + timedelta(seconds=20)  # a poll of the new time: an honest row
    await checked_at(store, checked)
    # A minute later the clock goes back again, by a minute: the row moves by that only.
    readings = iter([back + timedelta(seconds=21), back + timedelta(seconds=22 - 60)])
    await daemon._follow_the_clock(store, delivery)
    await daemon._follow_the_clock(store, delivery)
    (after,) = await store.feeds()
    assert after.next_check_at == checked + timedelta(minutes=10) - timedelta(seconds=59)
    assert after.last_success_at == checked - timedelta(seconds=59)  # moved with the clock
