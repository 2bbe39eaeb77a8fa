"""Outbox delivery through python-telegram-bot to our fake Bot API server, on a real SQLite
file. PTB is used as shipped: only its base URL points at the fake."""

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes.telegram_api import Bucket, FakeTelegram, RateLimits
from watcher.delivery import Delivery, Limits
from watcher.model import CONSOLE_CHAT, Alert, Entry, FeedDef, Hit
from watcher.store import Store
from watcher.telegram.format import render_alert
from watcher.telegram.send import Sent, TelegramSender

TOKEN = "123456:TEST-token-for-the-fake-bot-api-server"


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as server:
        yield server


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "w.db") as opened:
        await opened.sync_feeds([FeedDef("apa", "https://apa.az/rss", 600)], now())
        yield opened


@pytest.fixture
async def sender(fake: FakeTelegram) -> AsyncIterator[TelegramSender]:
    telegram = TelegramSender(TOKEN, api_base_url=fake.base_url, timeout_s=3)
    yield telegram
    await telegram.close()


async def queue(store: Store, *chats: int, title: str = "Karabakh <news> & more") -> None:
    state = await store.feed("apa")
    assert state is not None
    async with store.write() as tx:
        n = await store.count_entries()
        entry = Entry(guid=f"g{n}", link=f"https://apa.az/{n}", title=title, summary="text")
        (new,) = await tx.insert_entries(state.id, [entry], now())
        text = render_alert(entry, "apa", [Hit("karabakh")])
        await tx.enqueue([Alert(new.id, chat, text, ("karabakh",)) for chat in chats], now())


async def test_alert_arrives_as_accepted_html(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    await queue(store, 42)
    delivered = await Delivery(store, sender, clock=now).drain()
    assert delivered == 1
    (message,) = fake.sent
    assert message.chat_id == 42 and message.parse_mode == "HTML"
    assert message.visible_text.startswith("Karabakh <news> & more")
    assert message.link_preview_disabled
    assert await store.outbox_counts() == {"sent": 1}


async def test_blocked_chat_is_dropped_not_retried(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    fake.block_chat(42)
    await queue(store, 42, 7)
    await Delivery(store, sender, clock=now).drain()
    assert [m.chat_id for m in fake.sent] == [7]
    assert await store.outbox_counts() == {"dead": 1, "sent": 1}


async def test_migrated_group_gets_the_message_at_its_new_id(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    fake.migrate_chat(-100, -1009)
    await queue(store, -100)
    delivery = Delivery(store, sender, clock=now)
    await delivery.drain()
    await delivery.drain()
    assert [m.chat_id for m in fake.sent] == [-1009]


async def test_retry_after_is_obeyed(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    fake.fail_next(1, 429, methods=["sendMessage"])
    await queue(store, 42)
    delivery = Delivery(store, sender, clock=now)
    assert await delivery.drain() == 0
    assert await delivery.drain() == 0  # still inside retry_after: no second 429
    assert fake.count_429 == 1
    await asyncio.sleep(1.1)
    assert await delivery.drain() == 1
    assert len(fake.sent) == 1


async def test_downtime_keeps_the_row_and_delivers_later(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    fake.start_downtime(502)
    await queue(store, 42)
    delivery = Delivery(store, sender, clock=now)
    assert await delivery.drain() == 0
    assert await store.outbox_counts() == {"pending": 1}
    fake.end_downtime()
    later = Delivery(store, sender, clock=lambda: now().replace(year=2100))
    assert await later.drain() == 1
    assert len(fake.sent) == 1


async def test_messages_to_one_chat_keep_their_order_and_pace(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    for n in range(3):
        await queue(store, 42, title=f"Karabakh {n}")
    delivery = Delivery(store, sender, clock=now)
    stop = asyncio.Event()
    runner = asyncio.create_task(delivery.run(stop))
    await fake.wait_for_messages(3, timeout=6)
    stop.set()
    await runner
    assert [m.visible_text.split("\n")[0] for m in fake.sent] == [
        "Karabakh 0",
        "Karabakh 1",
        "Karabakh 2",
    ]
    gaps = [b.time - a.time for a, b in zip(fake.sent, fake.sent[1:], strict=False)]
    assert all(gap >= 0.95 for gap in gaps), gaps
    assert fake.count_429 == 0


async def test_console_rows_are_printed_without_telegram(store: Store) -> None:
    await queue(store, CONSOLE_CHAT)
    out = io.StringIO()
    assert await Delivery(store, None, clock=now, console=out).drain() == 1
    assert "Karabakh <news> & more <https://apa.az/0>" in out.getvalue()
    assert await store.outbox_counts() == {"sent": 1}


async def test_many_chats_are_served_at_the_overall_limit_without_429s(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    for chat in range(1, 61):
        await queue(store, chat, title=f"Karabakh {chat}")
    started = asyncio.get_running_loop().time()
    assert await Delivery(store, sender, clock=now).drain() == 60
    elapsed = asyncio.get_running_loop().time() - started
    assert fake.count_429 == 0
    assert elapsed >= 1.5  # 5 at once, then 29 a second
    assert sorted(m.chat_id for m in fake.sent) == list(range(1, 61))


async def test_blocked_chat_drops_its_queue_and_tells_the_admins(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    fake.block_chat(-100)
    for _ in range(3):
        await queue(store, -100)
    delivery = Delivery(store, sender, clock=now, admins=[9])
    await delivery.drain()
    assert await store.outbox_counts() == {"dead": 3, "pending": 1}
    await delivery.drain()
    (notice,) = fake.sent
    assert notice.chat_id == 9
    assert "Chat -100 refuses the bot" in notice.visible_text
    assert "3 alert(s) dropped" in notice.visible_text


async def test_gives_up_after_retry_for_and_tells_the_admins(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    await queue(store, 42)
    fake.start_downtime(502, methods=["sendMessage"])
    day_later = Delivery(
        store,
        sender,
        clock=lambda: now() + timedelta(hours=25),
        retry_for=timedelta(hours=24),
        admins=[9],
    )
    assert await day_later.drain() == 0
    assert (await store.outbox_counts())["dead"] == 1
    fake.end_downtime()
    await day_later.drain()
    (notice,) = fake.sent
    assert notice.chat_id == 9 and "could not be delivered" in notice.visible_text


async def test_group_limit_is_kept_without_429s(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    # Telegram's 20 a minute per group, scaled down a hundredfold in time on both sides.
    fake.set_rate_limits(RateLimits(per_group_chat=Bucket(capacity=5, per_second=5 / 0.6)))
    for n in range(12):
        await queue(store, -100, title=f"Karabakh {n}")
    limits = Limits(group_per_period=4.5, group_period_s=0.6)
    started = asyncio.get_running_loop().time()
    assert await Delivery(store, sender, clock=now, limits=limits).drain() == 12
    assert asyncio.get_running_loop().time() - started >= 0.9
    assert fake.count_429 == 0
    assert [m.visible_text.split("\n")[0] for m in fake.sent] == [
        f"Karabakh {n}" for n in range(12)
    ]


async def test_html_telegram_cannot_parse_is_resent_as_plain_text(
    fake: FakeTelegram, sender: TelegramSender, caplog: pytest.LogCaptureFixture
) -> None:
    broken = "<b>Karabakh <unknown>tag</b> & more"
    outcome = await sender.send(42, broken)
    assert isinstance(outcome, Sent) and outcome.plain_text
    (message,) = fake.sent
    assert message.parse_mode is None
    assert message.text == "Karabakh tag & more"
    assert "telegram rejected our HTML" in caplog.text
