"""The bot inside the running daemon: a subscriber follows a rule through Telegram and
receives the next alert; a muted subscriber gets it in a digest after /unmute."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.daemon import DaemonProcess, news_feed
from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import FakeTelegram

pytestmark = pytest.mark.e2e

TOKEN = "818181:E2E-bot-token-abcdefghijklmnopqr"
ALICE, BOB = 1001, 1002


def replies_to(telegram: FakeTelegram, chat: int) -> list[str]:
    return [m.visible_text for m in telegram.sent if m.chat_id == chat]


async def test_subscribers_follow_mute_and_receive(tmp_path: Path) -> None:
    async with FeedServer() as server, FakeTelegram(TOKEN, rate_limits=None) as telegram:
        server.serve("/apa.xml", news_feed(("old", "Old news")))
        config = tmp_path / "watcher.toml"
        config.write_text(
            f"""
[telegram]
api_base_url = "{telegram.base_url}"
token_env = "WATCHER_E2E_TOKEN"

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
        daemon = DaemonProcess(config, {"WATCHER_E2E_TOKEN": TOKEN}, tmp_path)
        try:
            daemon.start()
            await telegram.wait_for_calls("setMyCommands", timeout=15)
            await daemon.wait_for_log("poll feed=apa status=200")
            for chat in (ALICE, BOB):
                telegram.inject_message(chat, "/start")
                telegram.inject_message(chat, "/subscribe karabakh")
            telegram.inject_message(BOB, "/mute 2h")
            await telegram.wait_for_messages(5, timeout=15)
            assert any("karabakh" in text for text in replies_to(telegram, ALICE))

            server.serve(
                "/apa.xml", news_feed(("k1", "Karabakh talks resume"), ("old", "Old news"))
            )
            await telegram.wait_until(
                lambda: any(
                    t.startswith("Karabakh talks resume") for t in replies_to(telegram, ALICE)
                ),
                timeout=15,
            )
            assert not any("Karabakh talks resume" in t for t in replies_to(telegram, BOB))

            telegram.inject_message(BOB, "/unmute")
            await telegram.wait_until(
                lambda: any(
                    "While you were muted" in t and "Karabakh talks resume" in t
                    for t in replies_to(telegram, BOB)
                ),
                timeout=15,
            )
            code, _ = await daemon.stop()
            assert code == 0
        finally:
            daemon.kill()
        assert TOKEN not in daemon.output
