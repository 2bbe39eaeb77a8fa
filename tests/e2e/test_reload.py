"""Hot reload end to end: the running daemon picks up edited rules and feeds within 5 s,
and an invalid edit keeps the last good config running and tells the admins."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.daemon import DaemonProcess, news_feed, wait_for_polls
from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import FakeTelegram
from watcher.rules.native import available

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SEED_FEED = (ROOT / "seeds" / "turan-feed.xml").read_text(encoding="utf-8")
TOKEN = "515151:E2E-reload-token-abcdefghijklmnop"
GROUP = -1001234567890
ADMIN = 777


def rss(*titles: str) -> str:
    """Items keyed by their title, so an item keeps its guid when newer ones are added."""
    return news_feed(*((re.sub(r"\W+", "-", title).strip("-"), title) for title in titles))


def replace_file(path: Path, text: str) -> None:
    """Write the way editors save: a new file renamed over the old one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def head(api: str, *, telegram: str = "", polling: str = 'interval = "1s"') -> str:
    """The tables every config of these tests has: storage, Telegram (the fake), polling."""
    return f"""
[storage]
path = "watcher.db"

[telegram]
api_base_url = "{api}"
token_env = "WATCHER_E2E_TOKEN"
admins = [{ADMIN}]
{telegram}
[polling]
{polling}
"""


def config_text(server: FeedServer, api: str, *, extra_feeds: str = "", rules: str = "") -> str:
    return (
        head(api)
        + f"""
[[feeds]]
name = "apa"
url = "{server.url("/apa.xml")}"
{extra_feeds}
[actors.russian_peacekeepers]
names = ["Russian peacekeepers"]

[[rules]]
name = "peacekeepers"
query = '@russian_peacekeepers'
chats = [{GROUP}]
{rules}"""
    )


TURAN_FEED = """
[[feeds]]
name = "turan"
url = "{url}"
"""
WEATHER_RULE = f"""
[[rules]]
name = "weather"
query = 'Weather'
chats = [{GROUP}]
"""
BROKEN_RULE = f"""
[[rules]]
name = "broken"
query = '@russian_peacekeeper'
chats = [{GROUP}]
"""


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        server.serve("/apa.xml", rss("Old news"))
        server.serve("/turan.xml", SEED_FEED)
        yield server


async def test_edits_apply_live_and_bad_edits_are_refused(
    tmp_path: Path, feeds: FeedServer
) -> None:
    async with FakeTelegram(TOKEN) as telegram:
        config = tmp_path / "watcher.toml"
        api = telegram.base_url
        replace_file(config, config_text(feeds, api))
        daemon = DaemonProcess(config, {"WATCHER_E2E_TOKEN": TOKEN}, tmp_path)
        try:
            daemon.start()
            await daemon.wait_for_log("poll feed=apa status=200")

            # A new feed and a new rule, saved together: both live within 5 s.
            turan = TURAN_FEED.format(url=feeds.url("/turan.xml"))
            edited = time.monotonic()
            replace_file(config, config_text(feeds, api, extra_feeds=turan, rules=WEATHER_RULE))
            await daemon.wait_for_log("added_feeds=turan", timeout=5)
            assert time.monotonic() - edited < 5
            await daemon.wait_for_log("poll feed=turan status=200", timeout=5)
            feeds.serve("/apa.xml", rss("Weather: rain in Baku", "Old news"))
            (message,) = await telegram.wait_for_messages(1, timeout=10)
            assert message.visible_text.startswith("Weather: rain in Baku")
            assert "#weather" in message.visible_text

            # An invalid edit: the error is logged with file and key, the admins are told
            # once, and the last good config keeps running.
            replace_file(
                config,
                config_text(feeds, api, extra_feeds=turan, rules=WEATHER_RULE + BROKEN_RULE),
            )
            await daemon.wait_for_log("config reload failed", timeout=5)
            assert "rules[2].query" in daemon.stderr
            assert "did you mean @russian_peacekeepers" in daemon.stderr
            notice = (await telegram.wait_for_messages(2, timeout=10))[1]
            assert notice.chat_id == ADMIN and "rules[2].query" in notice.visible_text
            feeds.serve("/apa.xml", rss("Weather: snow", "Weather: rain in Baku", "Old news"))
            messages = await telegram.wait_for_messages(3, timeout=10)
            assert messages[2].visible_text.startswith("Weather: snow")

            # Fixed, with the feed removed; SIGHUP applies it at once.
            replace_file(config, config_text(feeds, api))
            daemon.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
            await daemon.wait_for_log("removed_feeds=turan", timeout=5)
            polls_before = len(feeds.hits("/turan.xml"))
            await wait_for_polls(feeds, "/apa.xml", 3)
            assert len(feeds.hits("/turan.xml")) == polls_before
            failed, fixed = [m.visible_text for m in telegram.sent if m.chat_id == ADMIN]
            assert "Config reload failed" in failed
            assert "Config reloaded: the error reported before is fixed." in fixed

            code, _ = await daemon.stop()
            assert code == 0
        finally:
            daemon.kill()
        assert TOKEN not in daemon.output


def edge_config(api: str, url: str, *, interval: str = "1s", telegram: str = "") -> str:
    return (
        head(api, telegram=telegram, polling='timeout = "20s"')
        + f"""
[[feeds]]
name = "apa"
url = "{url}"
interval = "{interval}"
"""
    )


async def test_reload_outlives_odd_edits_and_a_poll_of_the_old_url(
    tmp_path: Path, feeds: FeedServer
) -> None:
    async with FakeTelegram(TOKEN) as telegram:
        config = tmp_path / "watcher.toml"
        api = telegram.base_url
        replace_file(config, edge_config(api, feeds.url("/apa.xml"), interval="1h"))
        daemon = DaemonProcess(config, {"WATCHER_E2E_TOKEN": TOKEN}, tmp_path)
        try:
            daemon.start()
            await daemon.wait_for_log("poll feed=apa status=200")

            # A shorter interval applies now, not when the hour is up.
            replace_file(config, edge_config(api, feeds.url("/apa.xml")))
            await daemon.wait_for_log("config reloaded", timeout=5)
            await wait_for_polls(feeds, "/apa.xml", 3)

            # A time zone naming a folder of zones used to end hot reload for good.
            replace_file(
                config, edge_config(api, feeds.url("/apa.xml"), telegram='timezone = "America"')
            )
            await daemon.wait_for_log("config reload failed", timeout=5)
            assert "telegram.timezone" in daemon.stderr

            # A mistake in a newly included file: fixing that file alone is enough.
            extra = tmp_path / "more.toml"
            replace_file(extra, BROKEN_RULE)
            replace_file(
                config, 'include = ["more.toml"]\n' + edge_config(api, feeds.url("/apa.xml"))
            )
            await daemon.wait_for_log("more.toml", timeout=5)
            replace_file(extra, WEATHER_RULE)
            engine = "c" if available() else "python"  # the reload compiled the C engine too
            await daemon.wait_for_log(
                f"config reloaded feeds=1 rules=1 matcher={engine}", timeout=5
            )

            # The URL edited while a poll of the old one hangs: the new one is polled at
            # once, and the old poll's timeout does not put it off.
            feeds.serve("/hang.xml", rss("Old news"), delay_s=60)
            replace_file(
                config, 'include = ["more.toml"]\n' + edge_config(api, feeds.url("/hang.xml"))
            )
            await wait_for_polls(feeds, "/hang.xml", 1)
            edited = time.monotonic()
            replace_file(
                config, 'include = ["more.toml"]\n' + edge_config(api, feeds.url("/new.xml"))
            )
            feeds.serve("/new.xml", rss("Old news"))
            await wait_for_polls(feeds, "/new.xml", 3)
            assert time.monotonic() - edited < 8
            assert len(feeds.hits("/hang.xml")) == 1

            code, _ = await daemon.stop()
            assert code == 0
        finally:
            daemon.kill()
        assert TOKEN not in daemon.output
