"""The operator hears once when a feed starts failing and once when it recovers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.e2e.daemon import DaemonProcess, wait_for_polls
from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import FakeTelegram

pytestmark = pytest.mark.e2e

TOKEN = "616161:E2E-health-token-abcdefghijklmnop"
ADMIN = 4242
FEED_SECRET = "feed-credential-8c1f2d"


async def test_failing_and_recovery_are_told_once_each(tmp_path: Path) -> None:
    async with FeedServer() as server, FakeTelegram(TOKEN) as telegram:
        # A credential in the feed's URL: never logged, stored, shown or told.
        url = server.serve("/flaky", "", status=500) + "?id=7&api_key=" + FEED_SECRET
        config = tmp_path / "watcher.toml"
        config.write_text(
            f"""
[telegram]
api_base_url = "{telegram.base_url}"
token_env = "WATCHER_E2E_TOKEN"
admins = [{ADMIN}]

[polling]
interval = "1s"
failing_after = 2

[[feeds]]
name = "flaky"
url = "{url}"
""",
            encoding="utf-8",
        )
        daemon = DaemonProcess(config, {"WATCHER_E2E_TOKEN": TOKEN}, tmp_path)
        try:
            daemon.start()
            (failing,) = await telegram.wait_for_messages(1, timeout=15)
            assert failing.chat_id == ADMIN
            assert "Feed flaky is failing: 2 failures in a row" in failing.visible_text
            assert "HTTP 500" in failing.visible_text or "500" in failing.visible_text
            await wait_for_polls(server, "/flaky", 1, timeout=15)  # a third failure: silent
            assert len(telegram.sent) == 1

            server.serve("/flaky", "<rss version='2.0'><channel><title>t</title></channel></rss>")
            messages = await telegram.wait_for_messages(2, timeout=20)
            assert "Feed flaky has recovered" in messages[1].visible_text
            await wait_for_polls(server, "/flaky", 2, timeout=15)
            assert len(telegram.sent) == 2
            assert "feed failing feed=flaky" in daemon.stderr
            assert "feed recovered feed=flaky" in daemon.stderr
            code, _ = await daemon.stop()
            assert code == 0
            assert "flaky?id=7&api_key=*** (HTTP 500)" in failing.visible_text
            command = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "watcher", "status", "--json", "--config", str(config)),
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await command.communicate()
            assert command.returncode == 0
            status = out.decode()
            assert '"url": "http://127.0.0.1' in status and "api_key=***" in status
            told = [message.visible_text for message in telegram.sent]
            for text in (daemon.output, status, *told):
                assert FEED_SECRET not in text
        finally:
            daemon.kill()
