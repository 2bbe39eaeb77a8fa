"""`watcher backup` while the daemon records and sends a stream of alerts, then a restore
from that backup: the restarted daemon sends nothing again that the backup had recorded as
sent, sends what the backup still had queued, and goes on alerting new entries."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.daemon import (
    DaemonProcess,
    news_feed,
    wait_for_empty_outbox,
    wait_for_polls,
    write_config,
)
from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import FakeTelegram

pytestmark = pytest.mark.e2e

TOKEN = "717171:E2E-backup-token-abcdefghijklmnop"
CHATS = (1001, 1002, 1003)  # private chats: one message a second each
WINDOW = 30  # items the feed lists, newest first


def feed_of(numbers: range) -> str:
    return news_feed(*((f"n{n}", f"Peacekeepers item {n}") for n in reversed(numbers)))


def item_number(text: str) -> int:
    found = re.search(r"Peacekeepers item (\d+)", text)
    assert found, text
    return int(found[1])


async def publish(feeds: FeedServer, first: int, last: int, every_s: float) -> int:
    """One new item every `every_s` seconds; returns the newest number published."""
    for newest in range(first, last + 1):
        feeds.serve("/apa.xml", feed_of(range(max(0, newest - WINDOW + 1), newest + 1)))
        await asyncio.sleep(every_s)
    return last


def restore(backup: Path, database: Path) -> None:
    """As the README says: the backup replaces the database; its WAL and shm files go."""
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{database}{suffix}").unlink()
    shutil.copyfile(backup, database)


def number_of(guid: str) -> int:
    found = re.search(r"n(\d+)$", guid)  # feedparser made the guid a URL: http://…/n7
    assert found, guid
    return int(found[1])


def sent_in_backup(path: Path) -> tuple[set[int], set[int]]:
    """(items whose alerts the backup records as sent to every chat, items it knows)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        known = {number_of(guid) for (guid,) in db.execute("SELECT guid FROM entries")}
        rows = db.execute(
            """SELECT e.guid FROM outbox o JOIN entries e ON e.id = o.entry_id
               GROUP BY e.id HAVING sum(o.status = 'sent') = ?""",
            (len(CHATS),),
        )
        return {number_of(guid) for (guid,) in rows}, known
    finally:
        db.close()


async def test_backup_under_load_then_restore_resends_nothing_it_knew_was_sent(
    tmp_path: Path,
) -> None:
    async with FeedServer() as feeds, FakeTelegram(TOKEN) as telegram:
        feeds.serve("/apa.xml", feed_of(range(0, 1)))
        config = write_config(
            tmp_path,
            {"apa": feeds.url("/apa.xml")},
            api=telegram.base_url,
            telegram="max_in_flight = 3\n",
            rules=(("peacekeepers", "peacekeepers", CHATS),),
        )
        env = {"WATCHER_E2E_TOKEN": TOKEN}
        daemon = DaemonProcess(config, env, tmp_path)
        backup = tmp_path / "backups" / "watcher-backup.db"
        backup.parent.mkdir()
        try:
            daemon.start()
            await daemon.wait_for_log("poll feed=apa status=200")
            publishing = asyncio.create_task(publish(feeds, 1, 12, every_s=0.3))
            await telegram.wait_for_messages(6, timeout=20)
            # The backup runs while items arrive, alerts are queued and sent.
            copy = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "watcher",
                "backup",
                "--config",
                str(config),
                str(backup),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await copy.communicate()
            assert copy.returncode == 0, err.decode()
            assert "integrity ok" in out.decode()
            newest = await publishing
            await wait_for_polls(feeds, "/apa.xml", 2)
            code, _ = await daemon.stop()
            assert code == 0
        finally:
            daemon.kill()

        sent_before_restore = len(telegram.sent)
        recorded_sent, known = sent_in_backup(backup)
        assert recorded_sent, "the backup holds no sent alert: nothing was tested"
        assert known - recorded_sent, "the backup holds no queued alert: nothing was tested"
        assert max(known) < newest, "the backup was taken after the load ended"

        restore(backup, tmp_path / "watcher.db")

        restarted = DaemonProcess(config, env, tmp_path, name="restored")
        try:
            restarted.start()
            await wait_for_polls(feeds, "/apa.xml", 2)
            feeds.serve("/apa.xml", feed_of(range(max(0, newest - WINDOW + 2), newest + 2)))
            await telegram.wait_until(
                lambda: any(
                    item_number(m.text) == newest + 1 for m in telegram.sent[sent_before_restore:]
                ),
                timeout=20,
            )
            await wait_for_empty_outbox(tmp_path / "watcher.db")  # all queued has gone out
            code, _ = await restarted.stop()
            assert code == 0
        finally:
            restarted.kill()

    after_restore = Counter(item_number(m.text) for m in telegram.sent[sent_before_restore:])
    resent = sorted(n for n in after_restore if n in recorded_sent)
    assert resent == [], f"alerts the backup had recorded as sent went out again: {resent}"
    # The new item after the restore reached every chat exactly once.
    assert after_restore[newest + 1] == len(CHATS)
    # Every item the backup knew reached every chat, before or after the restore.
    everything = Counter(item_number(m.text) for m in telegram.sent)
    assert all(everything[n] >= len(CHATS) for n in known if n > 0)
