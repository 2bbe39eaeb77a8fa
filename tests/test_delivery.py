"""Outbox delivery through python-telegram-bot to our fake Bot API server, on a real SQLite
file. PTB is used as shipped: only its base URL points at the fake."""

import asyncio
import contextlib
import io
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.telegram_api import GARBLED, Bucket, FakeTelegram, RateLimits
from watcher.delivery import Delivery, Limits
from watcher.errors import ChatOnHold
from watcher.metrics import Metrics
from watcher.model import CONSOLE_CHAT, Alert, Entry, FeedDef, Hit
from watcher.store import Store, StoryEdit
from watcher.telegram.format import MESSAGE_LIMIT, add_sources, render_alert
from watcher.telegram.send import Edited, Sent, TelegramSender

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


async def run_for(delivery: Delivery, seconds: float) -> None:
    """Let `delivery` run as the daemon runs it (rounds, waits, wake-ups) for a while."""
    stop = asyncio.Event()
    running = asyncio.create_task(delivery.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(running, 5)


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


async def test_a_subscriber_who_blocked_the_bot_is_deactivated_until_they_start_again(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    await store.add_subscriber(42, now())
    await store.follow(42, "karabakh", now())
    fake.block_chat(42)
    await queue(store, 42)
    await queue(store, 42)
    await Delivery(store, sender, clock=now, admins=[9]).drain()

    subscriber = await store.subscriber(42)
    assert subscriber is not None and not subscriber.active
    assert await store.subscribers_of(["karabakh"]) == {}  # no more alerts are queued
    assert await store.outbox_counts() == {"dead": 2}
    assert fake.sent == []  # a person's choice: no notice to the admins
    assert not await store.add_subscriber(42, now())  # /start: active again, still following
    assert [s.chat_id for s in (await store.subscribers_of(["karabakh"]))["karabakh"]] == [42]


async def test_migrated_group_gets_the_message_at_its_new_id(
    fake: FakeTelegram, store: Store, sender: TelegramSender, caplog: pytest.LogCaptureFixture
) -> None:
    fake.migrate_chat(-100, -1009)
    await queue(store, -100)
    delivery = Delivery(store, sender, clock=now)
    await delivery.drain()
    await delivery.drain()
    assert [m.chat_id for m in fake.sent] == [-1009]
    # The row moved with the chat, and the move is kept for the rules that name -100.
    rows = await store._fetchall("SELECT chat_id, status FROM outbox", ())
    assert [(row[0], row[1]) for row in rows] == [(-1009, "sent")]
    assert await store.chat_migrations() == {-100: -1009}
    assert any(
        "chat migrated old=-100 new=-1009: update the chat id in the config" in r.getMessage()
        for r in caplog.records
    )


async def test_a_migrated_group_that_had_both_ids_gets_each_alert_once(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    # The supergroup's new id already followed the rule (someone sent /start there): both
    # ids have a row for the entry, and the old one's cannot move.
    old, new = -100, -1009
    for chat in (old, new):
        await store.add_subscriber(chat, now())
        await store.follow(chat, "karabakh", now())
    fake.migrate_chat(old, new)
    await queue(store, old, new)
    await run_for(Delivery(store, sender, clock=now), 1.5)
    assert [m.chat_id for m in fake.sent] == [new]
    assert len([c for c in fake.calls_to("sendMessage") if c.get("chat_id") == old]) == 1
    assert await store.outbox_counts() == {"sent": 1, "dead": 1}
    followers = await store.subscribers_of(["karabakh"])
    assert [s.chat_id for s in followers["karabakh"]] == [new]


async def test_an_answer_telegram_bot_cannot_read_is_retried_with_backoff(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    fake.fail_next(1, GARBLED, methods=["sendMessage"])
    await queue(store, 42)
    await run_for(Delivery(store, sender, clock=now), 1.0)  # inside the first backoff (2 s)
    # One call, answered garbled: the row waits its backoff instead of going again at once.
    assert len(fake.calls_to("sendMessage")) == 1
    (row,) = await store._fetchall("SELECT status, attempts, next_attempt_at FROM outbox", ())
    assert (row[0], row[1]) == ("pending", 1) and row[2] > now().timestamp()


async def test_a_chat_whose_delivery_fails_in_the_store_waits_instead_of_resending(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    await queue(store, 42)
    with sqlite3.connect(store.path) as db:  # the store refuses to record the send
        db.execute(
            "CREATE TRIGGER no_sent BEFORE UPDATE OF status ON outbox "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    await run_for(Delivery(store, sender, clock=now), 1.5)
    assert len(fake.sent) == 1  # not again and again while the store fails


async def test_a_message_telegram_took_is_not_sent_again_while_the_store_cannot_record_it(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    await queue(store, 42)
    with sqlite3.connect(store.path) as db:  # a failing disk, as far as outbox rows go
        db.execute(
            "CREATE TRIGGER failing_disk BEFORE UPDATE OF status ON outbox "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    at = [now()]
    delivery = Delivery(store, sender, clock=lambda: at[0])
    for _ in range(3):  # three minutes of it: the chat waits a minute after each fault
        await delivery.drain()
        at[0] += timedelta(seconds=61)
    assert len(fake.sent) == 1
    with sqlite3.connect(store.path) as db:
        db.execute("DROP TRIGGER failing_disk")
    await delivery.drain()
    assert len(fake.sent) == 1
    assert await store.outbox_counts() == {"sent": 1}


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


# -- edits: another outlet of a message's story -------------------------------------------

# Three requests at once to a private chat, as the fake allows: the edit tests need no pacing.
QUICK = Limits(private_per_period=3.0)


async def queue_story_message(store: Store, chat: int, summary: str = "text") -> tuple[int, str]:
    """A message about an entry of apa; returns its outbox id and text."""
    await queue(store, chat)
    rows = await store._fetchall(
        "SELECT id, text FROM outbox WHERE chat_id = ? ORDER BY id DESC LIMIT 1", (chat,)
    )
    return int(rows[0][0]), str(rows[0][1])


async def queue_edit(store: Store, message: tuple[int, str], chat: int, *sources: str) -> int:
    """An edit of `message` naming `sources`, for a new entry (another outlet's report)."""
    state = await store.feed("apa")
    assert state is not None
    async with store.write() as tx:
        n = await store.count_entries()
        entry = Entry(guid=f"g{n}", link=f"https://apa.az/{n}", title="Karabakh", summary="")
        (new,) = await tx.insert_entries(state.id, [entry], now())
        edit = StoryEdit(new.id, chat, message[0], add_sources(message[1], sources), ("karabakh",))
        assert await store.enqueue_edits(tx, [edit], now()) == 1
    rows = await store._fetchall("SELECT max(id) FROM outbox", ())
    return int(rows[0][0])


def sends(metrics: Metrics) -> dict[str, float]:
    families = text_string_to_metric_families(metrics.exposition().decode())
    return {
        sample.labels["outcome"]: sample.value
        for family in families
        if family.name == "watcher_telegram_sends"
        for sample in family.samples
        if sample.name == "watcher_telegram_sends_total"
    }


async def row(store: Store, outbox_id: int) -> tuple[str, int | None, str | None]:
    rows = await store._fetchall(
        "SELECT status, message_id, last_error FROM outbox WHERE id = ?", (outbox_id,)
    )
    return rows[0][0], rows[0][1], rows[0][2]


async def test_an_edit_adds_the_other_outlet_to_the_message_sent(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    metrics = Metrics(process_metrics=False)
    message = await queue_story_message(store, 42)
    edit = await queue_edit(store, message, 42, "Trend")
    assert await Delivery(store, sender, clock=now, limits=QUICK, metrics=metrics).drain() == 2

    (sent,) = fake.sent
    (edited,) = fake.edits
    assert (edited.chat_id, edited.message_id) == (42, sent.message_id)
    assert edited.visible_text == sent.visible_text + "\nAlso: Trend"
    assert edited.parse_mode == "HTML" and edited.link_preview_disabled
    assert await row(store, edit) == ("sent", sent.message_id, None)
    assert sends(metrics)["edited"] == 1 and sends(metrics)["sent"] == 1


async def test_a_later_edit_names_every_outlet_and_wins(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    message = await queue_story_message(store, 42)
    await queue_edit(store, message, 42, "Trend")
    await queue_edit(store, message, 42, "Trend", "Report")
    await Delivery(store, sender, clock=now, limits=QUICK).drain()
    (sent,) = fake.sent
    current = fake.message(42, sent.message_id)
    assert current is not None and current.visible_text.endswith("\nAlso: Trend, Report")
    assert len(fake.edits) == 1  # the later edit carries the first: one call, not two


async def test_an_edit_waits_behind_its_message_and_follows_it(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    message = await queue_story_message(store, 42)
    await queue_edit(store, message, 42, "Trend")
    fake.fail_next(1, 502, methods=["sendMessage"])
    assert await Delivery(store, sender, clock=now, limits=QUICK).drain() == 0
    assert fake.calls_to("editMessageText") == []  # never before its message
    assert await store.outbox_counts() == {"pending": 2}

    later = Delivery(store, sender, clock=lambda: now() + timedelta(minutes=1), limits=QUICK)
    assert await later.drain() == 2
    assert [call.method for call in fake.calls if call.method != "getMe"] == [
        "sendMessage",
        "sendMessage",
        "editMessageText",
    ]
    (sent,) = fake.sent
    assert fake.edits[0].message_id == sent.message_id


async def test_message_is_not_modified_counts_as_edited(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    metrics = Metrics(process_metrics=False)
    message = await queue_story_message(store, 42)
    # The same text twice: as when an edit went through but the process died before
    # recording it, and it is made again.
    await queue_edit(store, message, 42, "Trend")
    delivery = Delivery(store, sender, clock=now, limits=QUICK, metrics=metrics)
    assert await delivery.drain() == 2
    repeated = await queue_edit(store, message, 42, "Trend")
    assert await delivery.drain() == 1

    assert len(fake.calls_to("editMessageText")) == 2 and len(fake.edits) == 1
    assert (await row(store, repeated))[0] == "sent"
    assert await store.outbox_counts() == {"sent": 3}
    assert sends(metrics)["edited"] == 2
    (sent,) = fake.sent
    outcome = await sender.edit(42, sent.message_id, add_sources(message[1], ["Trend"]))
    assert outcome == Edited(unchanged=True)


async def test_an_edit_of_a_message_the_user_deleted_is_dropped(
    fake: FakeTelegram, store: Store, sender: TelegramSender, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics(process_metrics=False)
    message = await queue_story_message(store, 42)
    delivery = Delivery(store, sender, clock=now, limits=QUICK, metrics=metrics)
    await delivery.drain()
    fake.user_deletes(42, fake.sent[0].message_id)
    edit = await queue_edit(store, message, 42, "Trend")
    with caplog.at_level("INFO", logger="watcher.delivery"):
        assert await delivery.drain() == 1

    assert fake.edits == [] and len(fake.calls_to("editMessageText")) == 1
    status, _, reason = await row(store, edit)
    assert status == "sent" and reason is not None and "to edit not found" in reason
    assert await store.outbox_counts() == {"sent": 2}  # settled: not a dead letter
    assert sends(metrics)["edit_dropped"] == 1 and sends(metrics)["edited"] == 0
    assert "edit dropped" in caplog.text


async def test_a_message_that_can_no_longer_be_edited_drops_the_edit(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    message = await queue_story_message(store, 42)
    delivery = Delivery(store, sender, clock=now, limits=QUICK)
    await delivery.drain()
    fake.uneditable.add((42, fake.sent[0].message_id))
    edit = await queue_edit(store, message, 42, "Trend")
    assert await delivery.drain() == 1
    status, _, reason = await row(store, edit)
    assert status == "sent" and reason is not None and "can't be edited" in reason
    assert await delivery.drain() == 0  # settled: not tried again


async def test_an_edit_of_a_message_never_delivered_goes_out_as_a_message(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    """The chat never got the story's message (given up after retry_for): the edit is its
    only news of the story, so it is sent, not dropped."""
    metrics = Metrics(process_metrics=False)
    message = await queue_story_message(store, 42)
    await store.mark_dead(message[0], "Telegram was unreachable for 24 h")
    edit = await queue_edit(store, message, 42, "Trend")
    delivery = Delivery(store, sender, clock=now, limits=QUICK, metrics=metrics)
    assert await delivery.drain() == 1
    assert fake.calls_to("editMessageText") == []
    (sent,) = fake.sent
    assert sent.chat_id == 42 and "Also: Trend" in sent.visible_text
    assert (await row(store, edit))[0] == "sent"
    assert sends(metrics)["sent"] == 1 and sends(metrics)["edit_dropped"] == 0


async def test_an_edit_of_a_pruned_message_is_dropped_without_asking(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    metrics = Metrics(process_metrics=False)
    message = await queue_story_message(store, 42)
    edit = await queue_edit(store, message, 42, "Trend")
    delivery = Delivery(store, sender, clock=now, limits=QUICK, metrics=metrics)
    async with store.write() as tx:  # the message row went (retention), the edit stayed
        await tx.db.execute("UPDATE outbox SET edit_of = -1 WHERE id = ?", (edit,))
    await delivery.drain()
    assert fake.calls_to("editMessageText") == []
    status, _, error = await row(store, edit)
    assert status == "sent" and error is not None and "no longer recorded" in error
    assert sends(metrics)["edit_dropped"] == 1


async def test_an_edit_told_to_wait_waits_like_a_message(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    message = await queue_story_message(store, 42)
    await queue_edit(store, message, 42, "Trend")
    fake.fail_next(1, 429, methods=["editMessageText"])
    delivery = Delivery(store, sender, clock=now, limits=QUICK)
    assert await delivery.drain() == 1  # the message; the edit waits Telegram's second
    assert fake.count_429 == 1 and fake.edits == []
    assert await delivery.drain() == 0
    later = Delivery(store, sender, clock=lambda: now() + timedelta(seconds=2), limits=QUICK)
    assert await later.drain() == 1
    assert len(fake.edits) == 1 and fake.count_429 == 1


async def test_an_edit_of_a_full_message_stays_within_4096(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    state = await store.feed("apa")
    assert state is not None
    entry = Entry("long", "https://apa.az/long", "Karabakh " * 40, "Karabakh talks " * 300)
    text = render_alert(entry, "apa", [Hit(f"rule_{n}") for n in range(500)])
    async with store.write() as tx:
        (new,) = await tx.insert_entries(state.id, [entry], now())
        await tx.enqueue([Alert(new.id, 42, text)], now())
    outbox_id = int((await store._fetchall("SELECT max(id) FROM outbox", ()))[0][0])
    sources = [f"Regional outlet {n}" for n in range(200)]
    await queue_edit(store, (outbox_id, text), 42, *sources)
    assert await Delivery(store, sender, clock=now, limits=QUICK).drain() == 2

    (sent,) = fake.sent
    (edited,) = fake.edits
    assert len(sent.visible_text) > MESSAGE_LIMIT - 100
    assert len(edited.visible_text) <= MESSAGE_LIMIT
    assert edited.visible_text.split("\n")[-1].startswith("Also: Regional outlet 0, ")
    assert edited.entities[-1]["type"] == "italic"


async def test_console_prints_an_edit_as_the_alert_again_marked(store: Store) -> None:
    message = await queue_story_message(store, CONSOLE_CHAT)
    await queue_edit(store, message, CONSOLE_CHAT, "Trend")
    out = io.StringIO()
    assert await Delivery(store, None, clock=now, console=out).drain() == 2
    first, second = out.getvalue().split("─" * 60 + "\n" + "─" * 60)
    assert "edited" not in first
    assert "(edited: another source reported this story)" in second
    assert second.rstrip("─\n").endswith("Also: Trend")


async def test_a_reply_does_not_wait_behind_a_round_of_alerts(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    # 300 chats' alerts take ten seconds at Telegram's 30/s; a reply to another chat meanwhile
    # waits for its own chat and the replies' budget, not for them.
    await queue(store, *range(1, 301))
    delivery = Delivery(store, sender, clock=now)
    stop = asyncio.Event()
    running = asyncio.create_task(delivery.run(stop))
    try:
        await fake.wait_for_messages(10, timeout=10)
        started = asyncio.get_running_loop().time()
        async with delivery.reply_slot(5000):
            waited = asyncio.get_running_loop().time() - started
        assert waited < 3  # not the ten seconds of the round
        assert len(fake.sent) < 150  # the alerts were still going out
    finally:
        stop.set()
        running.cancel()  # as the daemon does after its grace period: safe
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_a_reply_waits_out_a_short_hold_telegram_put_on_its_chat(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    fake.fault_retry_after = 2  # longer than the chat's own limit would make it wait
    fake.fail_next(1, 429, methods=["sendMessage"])
    await queue(store, 42)
    delivery = Delivery(store, sender, clock=now)
    assert await delivery.drain() == 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with delivery.reply_slot(42):
        waited = loop.time() - started
        await sender.send(42, "reply")
    assert 1.5 < waited < 6  # the 2 s Telegram asked for, and not much more
    assert fake.count_429 == 1 and [m.text for m in fake.sent] == ["reply"]


async def test_a_reply_to_a_chat_on_a_longer_hold_is_not_sent(
    fake: FakeTelegram, store: Store, sender: TelegramSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("watcher.delivery.REPLY_WAIT_S", 0.2)
    fake.fail_next(1, 429, methods=["sendMessage"])  # retry_after: 1
    await queue(store, 42)
    delivery = Delivery(store, sender, clock=now)
    assert await delivery.drain() == 0
    with pytest.raises(ChatOnHold) as raised:
        async with delivery.reply_slot(42):
            raise AssertionError("a reply inside Telegram's pause")
    # What is left of Telegram's 1 s, more than the 0.2 s a reply may wait.
    assert raised.value.chat_id == 42 and 0.2 < raised.value.seconds <= 1.0
    assert "Telegram asked for a pause" in str(raised.value)
    async with delivery.reply_slot(43):  # another chat is not held
        pass
    assert fake.count_429 == 1


async def test_a_reply_while_the_token_is_rejected_is_not_sent_and_says_why(
    fake: FakeTelegram, store: Store, sender: TelegramSender
) -> None:
    fake.fail_next(1, 401, methods=["sendMessage"])  # what the Bot API answers a bad token
    await queue(store, 42)
    delivery = Delivery(store, sender, clock=now)
    assert await delivery.drain() == 0
    for chat in (42, 43):  # the whole bot waits, not only the chat of the failed send
        with pytest.raises(ChatOnHold) as raised:
            async with delivery.reply_slot(chat):
                raise AssertionError("a reply while the token is rejected")
        assert "token was rejected" in str(raised.value) and raised.value.seconds > 250
    assert [call["chat_id"] for call in fake.calls_to("sendMessage")] == [42]


async def test_a_reply_waits_for_its_chat_only_so_long(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("watcher.delivery.REPLY_WAIT_S", 0.2)
    # A group's limit, spent: the next turn would be a minute away.
    delivery = Delivery(store, None, clock=now, limits=Limits(group_per_period=1))
    async with delivery.reply_slot(-100):
        pass
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with delivery.reply_slot(-100):
        waited = loop.time() - started
    assert 0.15 < waited < 3  # its 0.2 s, not the minute to the group's next turn
