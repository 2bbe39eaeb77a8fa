"""Delivery end to end: a burst of 200 alerts survives a kill -9, and a long Telegram
outage (compressed: backoff capped at 1 s) ends with everything delivered, in order."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.daemon import DaemonProcess, news_feed, wait_for_empty_outbox
from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import FakeTelegram
from watcher.store import Store

pytestmark = pytest.mark.e2e

TOKEN = "717171:E2E-delivery-token-abcdefghijklmnop"


def write_config(folder: Path, server: FeedServer, api: str) -> Path:
    config = folder / "watcher.toml"
    config.write_text(
        f"""
[storage]
path = "watcher.db"

[telegram]
api_base_url = "{api}"
token_env = "WATCHER_E2E_TOKEN"
max_retry_delay = "1s"

[polling]
interval = "1s"

[[feeds]]
name = "apa"
url = "{server.url("/apa.xml")}"

[[rules]]
name = "karabakh"
query = 'Karabakh'
""",
        encoding="utf-8",
    )
    return config


async def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polls a log file, nothing to await
            await asyncio.sleep(0.05)


async def add_followers(database: Path, chats: range) -> None:
    now = datetime.now(UTC)
    async with await Store.open(database) as store:
        for chat in chats:
            await store.follow(chat, "karabakh", now)


async def test_a_kill_during_a_burst_of_200_loses_nothing(tmp_path: Path) -> None:
    followers = range(1, 201)
    async with FeedServer() as server, FakeTelegram(TOKEN) as telegram:
        server.serve("/apa.xml", news_feed(("old", "Old news")))
        config = write_config(tmp_path, server, telegram.base_url)
        await add_followers(tmp_path / "watcher.db", followers)
        env = {"WATCHER_E2E_TOKEN": TOKEN}
        first = DaemonProcess(config, env, tmp_path, "first")
        second = DaemonProcess(config, env, tmp_path, "second")
        try:
            first.start()
            await first.wait_for_log("poll feed=apa status=200")
            server.serve(
                "/apa.xml", news_feed(("k1", "Karabakh: talks resume"), ("old", "Old news"))
            )
            await telegram.wait_for_messages(50, timeout=20)
            first.kill()  # SIGKILL in the middle of the burst
            delivered_before = len(telegram.sent)
            assert delivered_before < 200

            second.start()
            await telegram.wait_until(
                lambda: len({m.chat_id for m in telegram.sent}) == 200, timeout=40
            )
            await wait_for_empty_outbox(tmp_path / "watcher.db")  # sent twice shows by now
            code, _ = await second.stop()
            assert code == 0
        finally:
            first.kill()
            second.kill()
    per_chat = Counter(message.chat_id for message in telegram.sent)
    assert set(per_chat) == set(followers)
    assert sum(count - 1 for count in per_chat.values()) <= 1  # only the one in flight
    assert telegram.count_429 == 0


async def test_everything_arrives_in_order_after_a_long_outage(tmp_path: Path) -> None:
    async with FeedServer() as server, FakeTelegram(TOKEN) as telegram:
        server.serve("/apa.xml", news_feed(("old", "Old news")))
        config = write_config(tmp_path, server, telegram.base_url)
        await add_followers(tmp_path / "watcher.db", range(7, 9))
        daemon = DaemonProcess(config, {"WATCHER_E2E_TOKEN": TOKEN}, tmp_path)
        try:
            daemon.start()
            await daemon.wait_for_log("poll feed=apa status=200")
            telegram.start_downtime(502, methods=["sendMessage"])
            items = [("old", "Old news")]
            for n in range(1, 5):
                items.insert(0, (f"k{n}", f"Karabakh update {n}"))
                server.serve("/apa.xml", news_feed(*items))
                # Each update its own poll (alerts=2: one per follower).
                await wait_until(lambda n=n: daemon.stderr.count("alerts=2") >= n)
            # The outage went on through many retries of every alert.
            await telegram.wait_until(lambda: len(telegram.calls_to("sendMessage")) >= 12, 20)
            assert telegram.sent == []
            telegram.end_downtime()
            await telegram.wait_for_messages(8, timeout=20)
            code, _ = await daemon.stop()
            assert code == 0
        finally:
            daemon.kill()
    for chat in (7, 8):
        titles = [m.visible_text.split("\n")[0] for m in telegram.sent if m.chat_id == chat]
        assert titles == [f"Karabakh update {n}" for n in range(1, 5)]
