"""Stories end to end: the real `watcher run` with two feeds on the local feed server and the
fake Bot API. One story reported by both outlets is one message, edited to name the second
outlet; an unrelated entry is a message of its own; and a restart in the middle of a story
(after the first outlet's alert, before the second's report) still ends in an edit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

import pytest

from tests.e2e.daemon import DaemonProcess, write_config
from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import FakeTelegram

pytestmark = pytest.mark.e2e

TOKEN = "727272:E2E-stories-token-abcdefghijklmnop"
CHAT = 42
PAIRS = Path(__file__).resolve().parents[2] / "bench" / "data" / "story-pairs-en-ru.tsv"

Item = tuple[str, str, str, datetime]  # guid, title, summary, published


def reports(pair_id: str, published: datetime) -> tuple[Item, Item]:
    """The two reports of one event from bench/stories.py's labelled pairs (written for
    Watcher, MIT), as feed items: the second outlet's a few minutes after the first's."""
    for line in PAIRS.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if fields[0] == pair_id:
            assert fields[1] == "same"
            first = (f"a{pair_id}", fields[7], fields[8], published)
            second = (f"b{pair_id}", fields[12], fields[13], published + timedelta(minutes=7))
            return first, second
    raise KeyError(pair_id)


def rss(*items: Item) -> str:
    body = "".join(
        f"<item><title>{escape(title)}</title><guid>{guid}</guid>"
        f"<link>https://news.example/{guid}</link><description>{escape(summary)}</description>"
        f"<pubDate>{format_datetime(published)}</pubDate></item>"
        for guid, title, summary, published in items
    )
    return f"<rss version='2.0'><channel><title>news</title>{body}</channel></rss>"


async def test_one_message_per_story_edited_for_the_second_outlet_across_a_restart(
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    quake_apa, quake_trend = reports("24", now - timedelta(minutes=20))  # an earthquake
    checkpoint, _ = reports("7", now - timedelta(minutes=15))  # another event
    withdrawal_apa, withdrawal_trend = reports("1", now - timedelta(minutes=10))

    async with FeedServer() as server, FakeTelegram(TOKEN) as telegram:
        server.serve("/apa.xml", rss())
        server.serve("/trend.xml", rss())
        config = write_config(
            tmp_path,
            {"APA": server.url("/apa.xml"), "Trend": server.url("/trend.xml")},
            api=telegram.base_url,
            rules=(("region", "earthquake OR quake OR checkpoint OR peacekeep*", (CHAT,)),),
        )
        env = {"WATCHER_E2E_TOKEN": TOKEN}
        first = DaemonProcess(config, env, tmp_path, "first")
        second = DaemonProcess(config, env, tmp_path, "second")
        try:
            first.start()
            await first.wait_for_log("poll feed=APA status=200")
            await first.wait_for_log("poll feed=Trend status=200")

            # The story breaks at APA: an alert.
            server.serve("/apa.xml", rss(quake_apa))
            await telegram.wait_for_messages(1, timeout=15)
            # Trend reports it in other words: the message is edited, nothing new is sent.
            server.serve("/trend.xml", rss(quake_trend))
            await telegram.wait_until(lambda: len(telegram.edits) == 1, timeout=15)
            (alert,) = telegram.sent
            (edit,) = telegram.edits
            assert edit.message_id == alert.message_id
            assert edit.visible_text == alert.visible_text + "\nAlso: Trend"

            # Something else happens: a message of its own.
            server.serve("/apa.xml", rss(checkpoint, quake_apa))
            await telegram.wait_for_messages(2, timeout=15)
            assert "checkpoint" in telegram.sent[1].visible_text

            # Another story breaks at APA; the daemon restarts before Trend reports it.
            server.serve("/apa.xml", rss(withdrawal_apa, checkpoint, quake_apa))
            await telegram.wait_for_messages(3, timeout=15)
            code, _ = await first.stop()
            assert code == 0

            second.start()
            await second.wait_for_log("story index loaded entries=4")
            server.serve("/trend.xml", rss(withdrawal_trend, quake_trend))
            await telegram.wait_until(lambda: len(telegram.edits) == 2, timeout=15)
            code, _ = await second.stop()
            assert code == 0
        finally:
            first.kill()
            second.kill()

    assert [m.chat_id for m in telegram.sent] == [CHAT] * 3
    withdrawal = telegram.sent[2]
    assert withdrawal.visible_text.startswith(withdrawal_apa[1])
    after_restart = telegram.edits[1]
    assert after_restart.message_id == withdrawal.message_id
    assert after_restart.visible_text == withdrawal.visible_text + "\nAlso: Trend"
    assert "joins story" in first.stderr and "joins story" in second.stderr
