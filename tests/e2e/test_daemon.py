"""End to end: the real daemon as a subprocess, a real feed server and our fake Telegram Bot
API server, both on 127.0.0.1. Only what crosses a process boundary is asserted."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.daemon import DaemonProcess, wait_for_polls
from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import FakeTelegram
from watcher.rules.native import available

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SEED_FEED = (ROOT / "seeds" / "turan-feed.xml").read_text(encoding="utf-8")
TOKEN = "424242:E2E-secret-token-never-to-be-logged-xyz"
GROUP = -1001234567890


def atom(*entries: str) -> str:
    return (
        "<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
        f"<title>APA</title><id>urn:apa</id>{''.join(entries)}</feed>"
    )


def atom_entry(n: int, title: str, link: str, summary: str = "") -> str:
    return (
        f"<entry><id>urn:apa:{n}</id><title type='text'>{title}</title>"
        f"<link href='{link}'/><summary type='text'>{summary}</summary>"
        "<updated>2026-11-28T10:00:00Z</updated></entry>"
    )


OLD_APA = atom_entry(1, "Russian peacekeepers visit Khankendi", "https://apa.example/1")
LEAVE = atom_entry(2, "Russian peacekeepers leave", "https://apa.example/2")  # news to alert


def serve_apa(server: FeedServer, *entries: str, delay_s: float = 0) -> None:
    """Serve these Atom entries as the apa feed (its answers `delay_s` late)."""
    server.serve("/apa.xml", atom(*entries), content_type="application/atom+xml", delay_s=delay_s)


# Feed text is XML-escaped; what the subscriber must see is the decoded title, verbatim.
MARKUP_TITLE_XML = "Russian peacekeepers &lt;b&gt;leave&lt;/b&gt; &amp; 5 &lt; 6 &quot;now&quot;"
MARKUP_TITLE = 'Russian peacekeepers <b>leave</b> & 5 < 6 "now"'


def write_config(tmp_path: Path, server: FeedServer, api_base_url: str | None) -> Path:
    telegram = f'api_base_url = "{api_base_url}"\ntoken_env = "WATCHER_E2E_TOKEN"'
    config = tmp_path / "watcher.toml"
    config.write_text(
        f"""
[storage]
path = "state/watcher.db"

[telegram]
{telegram if api_base_url else 'token_env = "WATCHER_E2E_TOKEN"'}

[polling]
interval = "1s"
timeout = "5s"

[[feeds]]
name = "turan"
url = "{server.url("/turan.xml")}"

[[feeds]]
name = "apa"
url = "{server.url("/apa.xml")}"

[actors.russian_peacekeepers]
names = ["Russian peacekeeping contingent", "Russian peacekeepers"]

[[rules]]
name = "peacekeepers"
query = '"peacekeeping contingent" OR @russian_peacekeepers'
chats = [{GROUP}]
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        server.serve("/turan.xml", SEED_FEED)
        serve_apa(server, OLD_APA)
        yield server


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as fake:
        yield fake


@pytest.fixture
def two_runs(
    tmp_path: Path, feeds: FeedServer, telegram: FakeTelegram
) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    """Two runs of the daemon, one after the other, on the same config and database."""
    config = write_config(tmp_path, feeds, telegram.base_url)
    env = {"WATCHER_E2E_TOKEN": TOKEN}
    runs = (
        DaemonProcess(config, env, tmp_path, "first"),
        DaemonProcess(config, env, tmp_path, "second"),
    )
    yield runs
    for run in runs:
        run.kill()


async def test_alert_lifecycle_across_restarts(
    feeds: FeedServer, telegram: FakeTelegram, two_runs: tuple[DaemonProcess, DaemonProcess]
) -> None:
    first, second = two_runs
    first.start()
    # Entries present at the first poll are history: the seed article matches the rule,
    # but nothing is sent for it.
    await first.wait_for_log("poll feed=turan status=200")
    await first.wait_for_log("poll feed=apa status=200")
    await wait_for_polls(feeds, "/turan.xml", 2)
    assert telegram.sent == []

    # A new entry whose title carries markup, '<', '&' and quotes: exactly one message to
    # the rule's chat, accepted by the HTML parser, showing the title as written.
    serve_apa(feeds, atom_entry(2, MARKUP_TITLE_XML, "https://apa.example/2"), OLD_APA)
    (message,) = await telegram.wait_for_messages(1, timeout=15)
    assert message.chat_id == GROUP and message.parse_mode == "HTML"
    assert message.visible_text.startswith(MARKUP_TITLE)
    assert "#peacekeepers" in message.visible_text and "apa" in message.visible_text

    # The same link under a new guid (and a trivially different spelling): nothing.
    serve_apa(feeds, atom_entry(3, "Peacekeepers leave (updated)", "http://www.apa.example/2/"))
    await wait_for_polls(feeds, "/apa.xml", 2)
    assert len(telegram.sent) == 1

    code, seconds = await first.stop(signal.SIGTERM)
    assert code == 0, first.output
    assert seconds < 10

    # Restart: nothing is resent, and new entries still alert.
    second.start()
    await wait_for_polls(feeds, "/apa.xml", 2)
    assert len(telegram.sent) == 1
    feeds.serve(
        "/turan.xml",
        SEED_FEED.replace(
            "<item>",
            "<item><title>Russian peacekeeping contingent rotates</title>"
            "<link>https://turan.example/rotation</link><guid>turan-new</guid></item><item>",
            1,
        ),
    )
    messages = await telegram.wait_for_messages(2, timeout=15)
    assert "Russian peacekeeping contingent rotates" in messages[1].visible_text
    code, _ = await second.stop(signal.SIGINT)
    assert code == 0, second.output

    for run in (first, second):
        assert TOKEN not in run.output
        assert TOKEN.split(":")[1] not in run.output
    assert telegram.count_429 == 0


async def test_alert_queued_before_a_kill_is_delivered_after_restart(
    feeds: FeedServer, telegram: FakeTelegram, two_runs: tuple[DaemonProcess, DaemonProcess]
) -> None:
    first, second = two_runs
    telegram.start_downtime(502, methods=["sendMessage"])
    first.start()
    await first.wait_for_log("poll feed=apa status=200")
    serve_apa(feeds, LEAVE, OLD_APA)
    await first.wait_for_log("alerts=1")
    await telegram.wait_for_calls("sendMessage", 1, timeout=10)  # tried, and failed
    first.kill()  # SIGKILL: no chance to clean up
    assert telegram.sent == []

    telegram.end_downtime()
    second.start()
    (message,) = await telegram.wait_for_messages(1, timeout=20)
    assert message.visible_text.startswith("Russian peacekeepers leave")
    code, _ = await second.stop()
    assert code == 0


# The alert comes through either rule engine: the C one where it was built, and the Python
# one the operator can choose instead.
@pytest.mark.parametrize("engine", ["c", "python"] if available() else ["python"])
async def test_without_a_token_alerts_print_to_the_console(
    tmp_path: Path, feeds: FeedServer, engine: str
) -> None:
    config = write_config(tmp_path, feeds, None)
    daemon = DaemonProcess(config, {"WATCHER_MATCHER": engine}, tmp_path)
    try:
        daemon.start()
        await daemon.wait_for_log(f"matcher={engine} ")
        await daemon.wait_for_log("alerts_to=console")
        await daemon.wait_for_log("poll feed=apa status=200")
        serve_apa(feeds, atom_entry(2, MARKUP_TITLE_XML, "https://apa.example/2"), OLD_APA)
        await daemon.wait_for_log(f"{MARKUP_TITLE} <https://apa.example/2>")
        assert "#peacekeepers" in daemon.stdout
        code, _ = await daemon.stop()
        assert code == 0
    finally:
        daemon.kill()
    assert daemon.stdout.count("Russian peacekeepers visit Khankendi") == 0


async def test_a_stop_lets_a_running_poll_finish_and_record_its_alert(
    feeds: FeedServer, telegram: FakeTelegram, two_runs: tuple[DaemonProcess, DaemonProcess]
) -> None:
    first, second = two_runs
    first.start()
    await first.wait_for_log("poll feed=apa status=200")
    # The next poll of apa finds a new entry, but its answer takes 2 s: SIGTERM meanwhile.
    serve_apa(
        feeds,
        LEAVE,
        OLD_APA,
        delay_s=2,
    )
    await wait_for_polls(feeds, "/apa.xml", 1)
    code, _ = await first.stop(signal.SIGTERM, timeout=20)
    assert code == 0, first.output
    assert "alerts=1" in first.output  # the poll was let finish (5 s of grace)
    assert "cancelled" not in first.output

    # Whether or not the message went out before the exit, it goes out once.
    serve_apa(feeds, LEAVE, OLD_APA)
    second.start()
    (message,) = await telegram.wait_for_messages(1, timeout=20)
    assert message.visible_text.startswith("Russian peacekeepers leave")
    await wait_for_polls(feeds, "/apa.xml", 2)
    code, _ = await second.stop()
    assert code == 0 and len(telegram.sent) == 1


async def test_a_stop_cancels_a_poll_that_hangs_after_the_grace(
    tmp_path: Path, feeds: FeedServer, telegram: FakeTelegram
) -> None:
    config = write_config(tmp_path, feeds, telegram.base_url)
    config.write_text(
        config.read_text(encoding="utf-8").replace('timeout = "5s"', 'timeout = "60s"'),
        encoding="utf-8",
    )
    daemon = DaemonProcess(config, {"WATCHER_E2E_TOKEN": TOKEN}, tmp_path)
    try:
        daemon.start()
        await daemon.wait_for_log("poll feed=apa status=200")
        serve_apa(feeds, OLD_APA, delay_s=60)
        await wait_for_polls(feeds, "/apa.xml", 1)
        # Generous bound: only a daemon that waits for the hung poll takes a minute.
        code, seconds = await daemon.stop(signal.SIGTERM, timeout=30)
        assert code == 0, daemon.output
        assert seconds < 25
        assert "stop: cancelled 1 polls still running after 5s" in daemon.output
    finally:
        daemon.kill()
