"""The subscriber bot against the fake Bot API server, with the real StoreBackend over a real
SQLite file and settings loaded from a TOML file. PTB is used as shipped: only its base URL
points at the fake. Messages and button presses are injected as Telegram would send them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.telegram_api import Bucket, FakeTelegram, RateLimits, SentMessage, utf16_len
from watcher.bot_backend import StoreBackend
from watcher.config import Settings, load_config
from watcher.delivery import Delivery, Limits
from watcher.errors import ChatOnHold
from watcher.model import Alert, RuleDef
from watcher.store import Store
from watcher.telegram import commands
from watcher.telegram.bot import GROUP_ADMIN_TTL_S, MENU, SubscriberBot
from watcher.telegram.format import MESSAGE_LIMIT
from watcher.telegram.send import TelegramSender

TOKEN = "123456:TEST-token-for-the-subscriber-bot"
ADMIN = 1000
USER = 2000
GROUP = -100200
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # 14:00 in Asia/Baku (UTC+4)

RULES = """
[[rules]]
name = "peacekeepers"
query = '"peacekeeping contingent" OR peacekeepers'

[[rules]]
name = "Tripartite"
query = '"tripartite declaration"'

[[rules]]
name = "миротворцы"
query = 'миротворцы OR миротворцев'

[[rules]]
name = "R&D<x>"
query = 'research AND "development <plan>"'
"""


class Config:
    """A config file in tmp_path that tests rewrite and reload, as the daemon does."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "watcher.toml"
        self.current: Settings | None = None

    def write(self, *, rules: str = RULES, telegram: str = "") -> None:
        text = f"""
            [storage]
            path = "w.db"

            [telegram]
            admins = [{ADMIN}]
            timezone = "Asia/Baku"
            {telegram}

            [[feeds]]
            name = "apa"
            url = "https://apa.az/rss"
            """
        self.path.write_text(textwrap.dedent(text) + rules, encoding="utf-8")
        self.current = load_config(self.path)

    def settings(self) -> Settings:
        assert self.current is not None
        return self.current


@dataclass
class World:
    fake: FakeTelegram
    store: Store
    bot: SubscriberBot
    config: Config
    backend: StoreBackend


def make_bot(
    fake: FakeTelegram,
    backend: StoreBackend,
    token: str = TOKEN,
    *,
    reply_slot: Callable[[int], AbstractAsyncContextManager[None]] | None = None,
    polling_stall_s: float | None = None,
    group_admin_ttl_s: float = GROUP_ADMIN_TTL_S,
) -> SubscriberBot:
    return SubscriberBot(
        token,
        api_base_url=fake.base_url + "/",
        backend=backend,
        poll_timeout_s=1,
        request_timeout_s=3,
        retry_initial_s=0.05,
        retry_max_s=0.2,
        reply_slot=reply_slot,
        polling_stall_s=polling_stall_s,
        group_admin_ttl_s=group_admin_ttl_s,
    )


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = Config(tmp_path)
    config.write()
    return config


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    # Telegram's per-chat limit (1 message/s) is off: these tests type faster than people.
    async with FakeTelegram(TOKEN, rate_limits=None) as server:
        yield server


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "w.db") as opened:
        yield opened


@pytest.fixture
def backend(store: Store, config: Config) -> StoreBackend:
    return StoreBackend(store, config.settings, clock=lambda: NOW)


@pytest.fixture
async def world(
    fake: FakeTelegram, store: Store, config: Config, backend: StoreBackend
) -> AsyncIterator[World]:
    bot = make_bot(fake, backend)
    await bot.start()
    assert bot.running
    try:
        yield World(fake, store, bot, config, backend)
    finally:
        await bot.stop()


async def ask(fake: FakeTelegram, chat_id: int, text: str, **kwargs: Any) -> SentMessage:
    """Send `text` as a user and return the bot's (first) reply."""
    before = len(fake.sent)
    fake.inject_message(chat_id, text, **kwargs)
    return (await fake.wait_for_messages(before + 1))[before]


async def press(fake: FakeTelegram, chat_id: int, data: str, message_id: int) -> dict[str, Any]:
    """Press a button; return the answerCallbackQuery parameters once the bot has also done
    whatever edit follows (the next update is handled only after this one)."""
    before = len(fake.answered_callback_queries)
    fake.inject_callback_query(chat_id, data, message_id=message_id)
    await fake.wait_until(lambda: len(fake.answered_callback_queries) > before)
    await ask(fake, chat_id, "/help")  # handled after the press: its edits are done
    return fake.answered_callback_queries[before]


def buttons(message: SentMessage | None) -> list[tuple[str, str]]:
    assert message is not None and message.reply_markup is not None
    return [
        (button["text"], button["callback_data"])
        for row in message.reply_markup["inline_keyboard"]
        for button in row
    ]


def button(message: SentMessage | None, label: str) -> str:
    return next(data for text, data in buttons(message) if text == label)


async def followed(store: Store, chat_id: int) -> tuple[str, ...]:
    subscriber = await store.subscriber(chat_id)
    return subscriber.rules if subscriber is not None else ()


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 (a state of the bot, not of the fake)
            await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- lifecycle


async def test_start_registers_the_menu_and_polls_messages_and_buttons(world: World) -> None:
    fake = world.fake
    menu = fake.commands[(json.dumps({"type": "default"}), "")]
    assert [c["command"] for c in menu] == [name for name, _ in MENU]
    assert {"start", "rules", "subscribe", "unsubscribe", "list", "mute", "unmute", "digest"} <= {
        c["command"] for c in menu
    }
    await fake.wait_for_calls("getUpdates")
    polls = fake.calls_to("getUpdates")
    assert polls[-1]["allowed_updates"] == ["message", "callback_query"]
    assert fake.calls_to("deleteWebhook")[0].get("drop_pending_updates") in (None, False)


async def test_start_welcomes_and_registers_the_chat(world: World) -> None:
    reply = await ask(world.fake, USER, "/start")
    assert reply.parse_mode == "HTML" and reply.link_preview_disabled
    assert reply.visible_text.startswith("👋 Welcome to Watcher.")
    assert "/rules" in reply.visible_text and "/digest" in reply.visible_text
    assert "/status" not in reply.visible_text  # not an operator
    subscriber = await world.store.subscriber(USER)
    assert subscriber is not None and subscriber.active and subscriber.digest == "off"

    again = await ask(world.fake, USER, "/start")
    assert again.visible_text.startswith("👋 Welcome back.")


async def test_help_lists_the_commands_and_operator_commands_for_admins(world: World) -> None:
    user_help = await ask(world.fake, USER, "/help")
    assert "/subscribe NAME" in user_help.visible_text
    assert "/mute 2h" in user_help.visible_text
    assert "/status" not in user_help.visible_text

    admin_help = await ask(world.fake, ADMIN, "/help")
    assert "/status — feed health" in admin_help.visible_text
    assert "/stats" in admin_help.visible_text


async def test_stop_is_safe_before_start_and_twice(
    fake: FakeTelegram, backend: StoreBackend
) -> None:
    bot = make_bot(fake, backend)
    await bot.stop()
    await bot.start()
    assert bot.running
    await bot.stop()
    assert not bot.running
    await bot.stop()
    with pytest.raises(RuntimeError):
        await bot.start()  # one start per instance: the daemon builds a new one


async def test_start_survives_telegram_being_down_and_connects_when_it_returns(
    fake: FakeTelegram, backend: StoreBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watcher")
    fake.start_downtime(502)
    bot = make_bot(fake, backend)
    await bot.start()  # does not raise
    try:
        assert not bot.running
        assert "bot cannot start: NetworkError" in caplog.text
        fake.end_downtime()
        await eventually(lambda: bot.running)
        reply = await ask(fake, USER, "/help")
        assert "/rules" in reply.visible_text
        assert fake.commands  # the menu was registered on the successful attempt
    finally:
        await bot.stop()
    assert TOKEN not in caplog.text


async def test_a_rejected_token_is_logged_without_the_token(
    fake: FakeTelegram, backend: StoreBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watcher")
    wrong = "654321:WRONG-token-which-must-never-be-logged"
    bot = make_bot(fake, backend, token=wrong)
    await bot.start()
    try:
        await eventually(lambda: fake.unauthorized_requests >= 2)  # retried in the background
        assert not bot.running
    finally:
        await bot.stop()
    assert "the bot token was rejected" in caplog.text
    assert wrong not in caplog.text and wrong.split(":")[1] not in caplog.text


async def test_a_failed_reply_is_logged_and_polling_goes_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watcher")
    world.fake.fail_next(1, 500, methods=["sendMessage"])
    world.fake.inject_message(USER, "/list")
    reply = await ask(world.fake, USER, "/help")
    assert "/subscribe NAME" in reply.visible_text
    assert len(world.fake.sent) == 1  # the /list reply was refused and not retried
    assert "bot reply failed chat=2000" in caplog.text


async def test_one_log_line_per_command_without_the_text(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watcher")
    await ask(world.fake, USER, "/subscribe secret-word-xyz")
    await ask(world.fake, USER, "hello, private thoughts")
    lines = [r.getMessage() for r in caplog.records if r.name == "watcher.telegram.bot"]
    assert "bot command chat=2000 command=/subscribe" in lines
    assert "bot text chat=2000" in lines
    assert "secret-word-xyz" not in caplog.text and "private thoughts" not in caplog.text
    assert TOKEN not in caplog.text


# --------------------------------------------------------------------------- /rules and buttons


async def test_rules_lists_rules_and_buttons_follow_and_unfollow_in_place(world: World) -> None:
    fake, store = world.fake, world.store
    page = await ask(fake, USER, "/rules")
    assert "peacekeepers" in page.visible_text
    assert '"peacekeeping contingent" OR peacekeepers' in page.visible_text
    assert "R&D<x>" in page.visible_text  # escaped on the way, shown as written
    assert 'research AND "development <plan>"' in page.visible_text
    labels = [text for text, _ in buttons(page)]
    assert labels == ["➕ peacekeepers", "➕ Tripartite", "➕ миротворцы", "➕ R&D<x>"]
    assert all(len(data.encode()) <= 64 for _, data in buttons(page))

    answer = await press(fake, USER, button(page, "➕ миротворцы"), page.message_id)
    assert answer["text"] == "✅ You now follow миротворцы"
    assert await followed(store, USER) == ("миротворцы",)
    shown = fake.message(USER, page.message_id)
    assert [t for t, _ in buttons(shown)][2] == "✅ миротворцы"
    assert shown is not None and shown.visible_text == page.visible_text  # keyboard only
    assert len(fake.calls_to("editMessageReplyMarkup")) == 1
    assert fake.calls_to("editMessageText") == []

    answer = await press(fake, USER, button(shown, "✅ миротворцы"), page.message_id)
    assert answer["text"] == "You no longer follow миротворцы"
    assert await followed(store, USER) == ()
    assert [t for t, _ in buttons(fake.message(USER, page.message_id))][2] == "➕ миротворцы"


async def test_an_old_follow_button_does_what_it_says(world: World) -> None:
    fake = world.fake
    page = await ask(fake, USER, "/rules")
    follow = button(page, "➕ peacekeepers")
    await press(fake, USER, follow, page.message_id)
    answer = await press(fake, USER, follow, page.message_id)  # the same, stale, button again
    assert answer["text"] == "You already follow peacekeepers"
    assert await followed(world.store, USER) == ("peacekeepers",)


async def test_a_button_whose_rule_was_removed_is_answered_and_the_list_redrawn(
    world: World,
) -> None:
    fake, config = world.fake, world.config
    page = await ask(fake, USER, "/rules")
    tripartite = button(page, "➕ Tripartite")
    config.write(rules=RULES.replace("Tripartite", "Trilateral"))  # a reload renames it

    answer = await press(fake, USER, tripartite, page.message_id)
    assert "no longer exists" in answer["text"]
    assert await followed(world.store, USER) == ()
    redrawn = fake.message(USER, page.message_id)
    assert redrawn is not None and "Trilateral" in redrawn.visible_text
    assert "Tripartite" not in redrawn.visible_text
    assert "➕ Trilateral" in [t for t, _ in buttons(redrawn)]

    answer = await press(fake, USER, "something-from-an-older-version", page.message_id)
    assert "out of date" in answer["text"]


async def test_a_button_on_a_message_telegram_no_longer_has_sends_a_fresh_list(
    world: World,
) -> None:
    fake = world.fake
    await ask(fake, USER, "/rules")
    data = commands.encode_button(commands.Toggle(True, 0, commands.rule_key("peacekeepers")))
    before = len(fake.sent)
    answer = await press(fake, USER, data, message_id=999)  # inaccessible message
    assert answer["text"] == "✅ You now follow peacekeepers"
    fresh = fake.sent[before]  # then the /help reply of `press`
    assert "➕ Tripartite" in [t for t, _ in buttons(fresh)]
    assert "✅ peacekeepers" in [t for t, _ in buttons(fresh)]


async def test_many_long_rule_names_are_paginated_within_telegram_limits(
    world: World,
) -> None:
    fake, config = world.fake, world.config
    names = [f"правило_{i:02d}_" + "очень_длинное_имя_" * 8 for i in range(20)]
    long_query = " OR ".join(f"слово{i}" for i in range(80))
    config.write(
        rules="".join(f"[[rules]]\nname = \"{n}\"\nquery = '{long_query}'\n" for n in names)
    )
    first = await ask(fake, USER, "/rules")
    assert "Rules (page 1 of 3)" in first.visible_text
    assert len(first.visible_text) <= MESSAGE_LIMIT
    labels = [t for t, _ in buttons(first)]
    assert len(labels) == commands.RULES_PER_PAGE + 1 and labels[-1] == "Next ▶"
    assert all(len(data.encode()) <= 64 for _, data in buttons(first))

    await press(fake, USER, button(first, "Next ▶"), first.message_id)
    second = fake.message(USER, first.message_id)
    assert second is not None and "Rules (page 2 of 3)" in second.visible_text
    assert [t for t, _ in buttons(second)][-2:] == ["◀ Back", "Next ▶"]

    ninth = buttons(second)[0]
    assert ninth[0].startswith("➕ правило_08_")
    await press(fake, USER, ninth[1], first.message_id)
    assert await followed(world.store, USER) == (names[8],)
    after = fake.message(USER, first.message_id)
    assert buttons(after)[0][0].startswith("✅ правило_08_")
    assert after is not None and "page 2 of 3" in after.visible_text


# --------------------------------------------------------------------------- /subscribe, /list


async def test_subscribe_and_unsubscribe_by_name(world: World) -> None:
    fake, store = world.fake, world.store
    reply = await ask(fake, USER, "/subscribe PEACEKEEPERS")
    assert reply.visible_text == "✅ You now follow peacekeepers."
    assert await followed(store, USER) == ("peacekeepers",)

    reply = await ask(fake, USER, "/subscribe peacekeepers")
    assert reply.visible_text == "You already follow peacekeepers."

    reply = await ask(fake, USER, "/subscribe МИРОТВОРЦЫ r&d<X>")
    assert reply.visible_text == "✅ You now follow миротворцы.\n✅ You now follow R&D<x>."

    reply = await ask(fake, USER, "/unsubscribe Peacekeepers")
    assert reply.visible_text == "You no longer follow peacekeepers."
    reply = await ask(fake, USER, "/unsubscribe peacekeepers")
    assert reply.visible_text == "You were not following peacekeepers."
    assert sorted(await followed(store, USER)) == ["R&D<x>", "миротворцы"]


async def test_an_unknown_rule_name_gets_a_suggestion(world: World) -> None:
    reply = await ask(world.fake, USER, "/subscribe peacekeeper")
    assert reply.visible_text == (
        "There is no rule named peacekeeper. Did you mean peacekeepers?\n"
        "Send /rules to see them all, with buttons."
    )
    reply = await ask(world.fake, USER, "/subscribe <zzz>")
    assert reply.visible_text.startswith("There is no rule named <zzz>.\n")
    reply = await ask(world.fake, USER, "/unsubscribe tripartit")
    assert "Did you mean Tripartite?" in reply.visible_text
    reply = await ask(world.fake, USER, "/subscribe")
    assert reply.visible_text.startswith("Which rule? E.g. /subscribe NAME.")
    assert await followed(world.store, USER) == ()


async def test_a_followed_rule_removed_from_the_config_can_still_be_unfollowed(
    world: World,
) -> None:
    fake = world.fake
    await ask(fake, USER, "/subscribe tripartite peacekeepers")
    world.config.write(rules=RULES.replace("Tripartite", "Trilateral"))
    listing = await ask(fake, USER, "/list")
    assert "Tripartite (no longer configured)" in listing.visible_text
    reply = await ask(fake, USER, "/unsubscribe tripartite")
    assert reply.visible_text == "You no longer follow Tripartite."
    assert await followed(world.store, USER) == ("peacekeepers",)


async def test_list_shows_rules_mute_and_digest(world: World) -> None:
    fake = world.fake
    empty = await ask(fake, USER, "/list")
    assert empty.visible_text == (
        "You follow no rules yet. Send /rules to see them all, with buttons.\n\n"
        "Alerts come as they happen."
    )
    await ask(fake, USER, "/subscribe Tripartite peacekeepers")
    await ask(fake, USER, "/mute 2h")
    await ask(fake, USER, "/digest daily 08:00")
    listing = await ask(fake, USER, "/list")
    assert listing.visible_text == (
        "You follow 2 rules:\n• peacekeepers\n• Tripartite\n\n"
        "🔕 Muted until 16:00 (Asia/Baku).\n"
        "Alerts are collected into a daily digest at 08:00 (Asia/Baku)."
    )


# --------------------------------------------------------------------------- /mute, /digest


async def test_mute_and_unmute(world: World) -> None:
    fake, store = world.fake, world.store
    reply = await ask(fake, USER, "/mute 2h")
    assert reply.visible_text.startswith("🔕 Muted until 16:00 (Asia/Baku).")
    subscriber = await store.subscriber(USER)
    assert subscriber is not None and subscriber.muted_until == NOW + timedelta(hours=2)

    reply = await ask(fake, USER, "/unmute")
    assert reply.visible_text == "🔔 Unmuted. Alerts come as they happen."
    subscriber = await store.subscriber(USER)
    assert subscriber is not None and subscriber.muted_until is None

    reply = await ask(fake, USER, "/unmute")
    assert reply.visible_text == "You were not muted. Alerts come as they happen."

    await ask(fake, USER, "/mute")  # alone: one hour
    subscriber = await store.subscriber(USER)
    assert subscriber is not None and subscriber.muted_until == NOW + timedelta(hours=1)

    reply = await ask(fake, USER, "/mute 1d")
    assert "until 2026-11-29 14:00 (Asia/Baku)" in reply.visible_text

    reply = await ask(fake, USER, "/mute soon")
    assert reply.visible_text.startswith("I can't read “soon” as a duration.")
    subscriber = await store.subscriber(USER)
    assert subscriber is not None and subscriber.muted_until == NOW + timedelta(days=1)


async def test_digest_choices_are_recorded_in_the_operators_time_zone(world: World) -> None:
    fake, store = world.fake, world.store
    reply = await ask(fake, USER, "/digest hourly")
    assert reply.visible_text == "Hourly digest: alerts are collected and sent once an hour."
    subscriber = await store.subscriber(USER)
    assert subscriber is not None and (subscriber.digest, subscriber.digest_time) == (
        "hourly",
        None,
    )

    reply = await ask(fake, USER, "/digest daily 8:05")
    assert reply.visible_text == (
        "Daily digest: alerts are collected and sent once a day at 08:05 (Asia/Baku)."
    )
    subscriber = await store.subscriber(USER)
    assert subscriber is not None and (subscriber.digest, subscriber.digest_time) == (
        "daily",
        "08:05",
    )

    reply = await ask(fake, USER, "/digest")
    assert reply.visible_text.startswith(
        "Alerts are collected into a daily digest at 08:05 (Asia/Baku).\nChange it with"
    )

    for wrong in ("/digest daily 25:00", "/digest daily", "/digest weekly", "/digest daily 8pm"):
        reply = await ask(fake, USER, wrong)
        assert "Asia/Baku" in reply.visible_text, wrong
    subscriber = await store.subscriber(USER)
    assert subscriber is not None and subscriber.digest_time == "08:05"

    reply = await ask(fake, USER, "/digest off")
    assert reply.visible_text == "Digest off: alerts come as they happen."
    subscriber = await store.subscriber(USER)
    assert subscriber is not None and (subscriber.digest, subscriber.digest_time) == ("off", None)


# --------------------------------------------------------------------------- admins, access


async def test_status_and_stats_for_admins(world: World) -> None:
    fake = world.fake
    await world.store.sync_feeds(world.config.settings().feeds, NOW)
    await ask(fake, USER, "/subscribe peacekeepers")
    status = await ask(fake, ADMIN, "/status")
    assert status.visible_text.startswith("1 feeds: ")
    assert "Outbox: 0 pending, 0 given up" in status.visible_text
    stats = await ask(fake, ADMIN, "/stats")
    assert "Subscribers: 1 active" in stats.visible_text
    assert "1 rule follows" in stats.visible_text
    assert "Rules: 4" in stats.visible_text


async def test_admin_commands_politely_refuse_others(world: World) -> None:
    for command in ("/status", "/stats"):
        reply = await ask(world.fake, USER, command)
        assert reply.visible_text == f"Sorry, {command} is only for the bot's operators."
    # Admin rights follow the user, not the chat: an admin in a group may ask.
    reply = await ask(world.fake, GROUP, "/stats@watcher_test_bot", from_id=ADMIN)
    assert reply.visible_text.startswith("Subscribers:")


async def test_unknown_commands_get_the_help_text(world: World) -> None:
    fake = world.fake
    reply = await ask(fake, USER, "/frobnicate now")
    assert reply.visible_text.startswith("I don't know /frobnicate.\n\nWhat I understand")
    assert "/unsubscribe NAME" in reply.visible_text

    # In a group, only what is addressed to this bot is answered.
    fake.inject_message(GROUP, "/frobnicate")
    fake.inject_message(GROUP, "/rules@some_other_bot")
    reply = await ask(fake, GROUP, "/frobnicate@watcher_test_bot")
    assert reply.visible_text.startswith("I don't know /frobnicate.")
    assert [m.chat_id for m in fake.sent].count(GROUP) == 1


async def test_commands_addressed_to_the_bot_in_a_group(world: World) -> None:
    fake = world.fake
    fake.make_admin(GROUP, 1001)  # the member the fake sends group messages from
    page = await ask(fake, GROUP, "/rules@watcher_test_bot")
    assert page.chat_id == GROUP and "➕ peacekeepers" in [t for t, _ in buttons(page)]
    await press(fake, GROUP, button(page, "➕ peacekeepers"), page.message_id)
    assert await followed(world.store, GROUP) == ("peacekeepers",)  # the group follows
    assert await followed(world.store, 1001) == ()

    reply = await ask(fake, GROUP, "/subscribe@watcher_test_bot Tripartite")
    assert reply.visible_text == "✅ You now follow Tripartite."
    reply = await ask(fake, GROUP, "/rules@Watcher_Test_Bot")
    assert page.visible_text == reply.visible_text


async def test_in_a_group_only_its_administrators_change_what_it_follows(world: World) -> None:
    fake, store = world.fake, world.store
    refused = commands.GROUP_ADMINS_ONLY
    # A plain member may look, not change.
    page = await ask(fake, GROUP, "/rules@watcher_test_bot", from_id=USER)
    assert "➕ peacekeepers" in [t for t, _ in buttons(page)]
    for command in (
        "/subscribe@watcher_test_bot peacekeepers",
        "/unsubscribe@watcher_test_bot peacekeepers",
        "/mute@watcher_test_bot 2h",
        "/unmute@watcher_test_bot",
        "/digest@watcher_test_bot hourly",
    ):
        assert (await ask(fake, GROUP, command, from_id=USER)).visible_text == refused
    assert (
        await ask(fake, GROUP, "/digest@watcher_test_bot", from_id=USER)
    ).visible_text.startswith("Alerts come as they happen")
    before = len(fake.answered_callback_queries)
    fake.inject_callback_query(
        GROUP, button(page, "➕ peacekeepers"), message_id=page.message_id, from_id=USER
    )
    await fake.wait_until(lambda: len(fake.answered_callback_queries) > before)
    answer = fake.answered_callback_queries[before]
    assert answer["text"] == refused and answer["show_alert"] is True
    assert await followed(store, GROUP) == ()
    subscriber = await store.subscriber(GROUP)
    assert subscriber is None or (subscriber.muted_until, subscriber.digest) == (None, "off")

    # The group's owner, its administrators, an administrator posting anonymously as the
    # group, and the bot's operators may.
    fake.make_admin(GROUP, 3000, owner=True)
    fake.make_admin(GROUP, 3001)
    for sender, name in (
        ({"from_id": 3000}, "peacekeepers"),
        ({"from_id": 3001}, "Tripartite"),
        ({"as_group": True}, "peacekeepers"),
        ({"from_id": ADMIN}, "Tripartite"),
    ):
        await ask(fake, GROUP, "/unsubscribe@watcher_test_bot peacekeepers Tripartite", **sender)
        reply = await ask(fake, GROUP, f"/subscribe@watcher_test_bot {name}", **sender)
        assert reply.visible_text == f"✅ You now follow {name}.", sender
        assert await followed(store, GROUP) == (name,)
    # Telegram is asked once per user and minute, and never about an operator.
    asked = [(c["chat_id"], c["user_id"]) for c in fake.calls_to("getChatMember")]
    assert sorted(asked) == [(GROUP, USER), (GROUP, 3000), (GROUP, 3001)]


async def test_a_group_administrator_demoted_loses_the_right_once_the_check_expires(
    fake: FakeTelegram, backend: StoreBackend, store: Store
) -> None:
    # Checks are kept a minute (GROUP_ADMIN_TTL_S); here none is kept, so the next
    # command asks Telegram again and sees the demotion.
    bot = make_bot(fake, backend, group_admin_ttl_s=0.0)
    await bot.start()
    try:
        fake.make_admin(GROUP, 3001)
        reply = await ask(fake, GROUP, "/subscribe@watcher_test_bot peacekeepers", from_id=3001)
        assert reply.visible_text == "✅ You now follow peacekeepers."
        fake.demote(GROUP, 3001)
        reply = await ask(fake, GROUP, "/unsubscribe@watcher_test_bot peacekeepers", from_id=3001)
        assert reply.visible_text == commands.GROUP_ADMINS_ONLY
        assert await followed(store, GROUP) == ("peacekeepers",)
        assert len(fake.calls_to("getChatMember")) == 2
    finally:
        await bot.stop()


async def test_a_group_administrator_that_cannot_be_checked_is_refused(world: World) -> None:
    fake = world.fake
    fake.make_admin(GROUP, 3001)
    fake.fail_next(1, 500, methods=["getChatMember"])
    reply = await ask(fake, GROUP, "/subscribe@watcher_test_bot peacekeepers", from_id=3001)
    assert reply.visible_text == commands.GROUP_ADMINS_UNKNOWN
    assert await followed(world.store, GROUP) == ()
    reply = await ask(fake, GROUP, "/subscribe@watcher_test_bot peacekeepers", from_id=3001)
    assert reply.visible_text == "✅ You now follow peacekeepers."


async def test_replies_take_turns_with_alerts_under_the_chat_limit(
    fake: FakeTelegram, store: Store, backend: StoreBackend
) -> None:
    # Telegram allows a private chat one message per 0.25 s here, with no burst; replies
    # and alerts share our limiter, which spaces them 0.6 s apart (room for a slow run).
    fake.set_rate_limits(RateLimits(per_private_chat=Bucket(capacity=1, per_second=4.0)))
    sender = TelegramSender(TOKEN, api_base_url=fake.base_url, timeout_s=3)
    limits = Limits(private_per_period=1, private_period_s=0.6)
    delivery = Delivery(store, sender, clock=lambda: NOW, limits=limits)
    async with store.write() as tx:
        await tx.enqueue([Alert(None, USER, f"alert {n}") for n in range(3)], NOW)
    bot = make_bot(fake, backend, reply_slot=delivery.reply_slot)
    await bot.start()
    try:
        for _ in range(3):
            fake.inject_message(USER, "/help")
        delivered = await delivery.drain()
        await fake.wait_for_messages(6, timeout=15)
    finally:
        await bot.stop()
        await sender.close()
    # Three alerts and three replies, not one refused.
    assert (delivered, fake.count_429, len(fake.sent)) == (3, 0, 6)


async def test_a_reply_to_a_chat_on_hold_is_dropped_and_logged_not_apologised_for(
    fake: FakeTelegram, backend: StoreBackend, caplog: pytest.LogCaptureFixture
) -> None:
    @contextlib.asynccontextmanager
    async def held_user(chat_id: int) -> AsyncIterator[None]:
        if chat_id == USER:  # as Delivery.reply_slot says while Telegram's pause lasts
            raise ChatOnHold(chat_id, 30.0)
        yield

    bot = make_bot(fake, backend, reply_slot=held_user)
    caplog.set_level(logging.INFO, logger="watcher")
    await bot.start()
    try:
        fake.inject_message(USER, "/help")
        reply = await ask(fake, 3000, "/help")  # handled after the first: the bot goes on
    finally:
        await bot.stop()
    assert [m.chat_id for m in fake.sent] == [3000] and reply.chat_id == 3000
    notes = [r for r in caplog.records if "bot reply not sent chat=2000" in r.getMessage()]
    assert notes and notes[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_allowlist_refuses_other_chats_and_shows_their_id(
    fake: FakeTelegram, store: Store, config: Config, backend: StoreBackend
) -> None:
    config.write(telegram='subscribers = "allowlist"\nallow = [3000]')
    bot = make_bot(fake, backend)
    await bot.start()
    try:
        for command in ("/start", "/rules", "/subscribe peacekeepers", "/mute 2h"):
            reply = await ask(fake, USER, command)
            assert reply.visible_text == (
                "🔒 Sorry, this bot is private. Ask its operator to add this chat's id, "
                "2000, to the allow list."
            ), command
            code = utf16_len(reply.visible_text[: reply.visible_text.index("2000")])
            assert reply.entities == [{"type": "code", "offset": code, "length": 4}]
        assert await store.subscriber(USER) is None

        data = commands.encode_button(commands.Toggle(True, 0, commands.rule_key("peacekeepers")))
        fake.inject_callback_query(USER, data, message_id=1)
        await fake.wait_until(lambda: bool(fake.answered_callback_queries))
        assert fake.answered_callback_queries[0]["show_alert"] is True
        assert await store.subscriber(USER) is None

        allowed = await ask(fake, 3000, "/start")
        assert allowed.visible_text.startswith("👋 Welcome to Watcher.")
        admin = await ask(fake, ADMIN, "/subscribe peacekeepers")  # admins are always allowed
        assert admin.visible_text == "✅ You now follow peacekeepers."
    finally:
        await bot.stop()


async def test_a_chat_the_allow_list_dropped_may_still_see_and_leave_its_rules(
    fake: FakeTelegram, store: Store, config: Config, backend: StoreBackend
) -> None:
    bot = make_bot(fake, backend)
    await bot.start()
    try:
        await ask(fake, USER, "/subscribe peacekeepers")  # while the bot was open
        config.write(telegram='subscribers = "allowlist"\nallow = [3000]')
        assert "private" in (await ask(fake, USER, "/mute 2h")).visible_text
        assert "peacekeepers" in (await ask(fake, USER, "/list")).visible_text
        reply = await ask(fake, USER, "/unsubscribe peacekeepers")
        assert "private" not in reply.visible_text
        assert await followed(store, USER) == ()
    finally:
        await bot.stop()


async def test_a_press_answered_too_late_still_redraws_the_buttons(world: World) -> None:
    fake, store = world.fake, world.store
    page = await ask(fake, USER, "/rules")
    fake.inject_callback_query(USER, button(page, "➕ peacekeepers"), message_id=page.message_id)
    fake.expire_callback_queries()  # Telegram refuses the answer: "query is too old"
    await ask(fake, USER, "/help")  # handled after the press
    assert await followed(store, USER) == ("peacekeepers",)
    labels = [label for label, _ in buttons(fake.message(USER, page.message_id))]
    assert "✅ peacekeepers" in labels


async def test_more_names_than_one_subscribe_takes_are_said_to_be_left_out(
    world: World,
) -> None:
    fake, store, config = world.fake, world.store, world.config
    config.write(
        rules="".join(f'[[rules]]\nname = "r{i:02d}"\nquery = "w{i}"\n' for i in range(25))
    )
    reply = await ask(fake, USER, "/subscribe " + " ".join(f"r{i:02d}" for i in range(25)))
    assert len(await followed(store, USER)) == 20
    assert "send the other 5 in another message" in reply.visible_text


async def test_a_reply_about_many_unknown_long_names_stays_within_the_limit(
    world: World,
) -> None:
    fake, config = world.fake, world.config
    long_name = "rule_" + "abcdefghij" * 15
    config.write(rules=f'[[rules]]\nname = "{long_name}"\nquery = "w"\n')
    names = [("😀" * n) + long_name[:90] for n in range(30, 50)]  # near misses: suggestions
    reply = await ask(fake, USER, "/subscribe " + " ".join(names))
    assert 0 < utf16_len(reply.visible_text) <= 4096


@pytest.mark.parametrize("status", [401, 404])
async def test_the_bot_restarts_when_telegram_bot_stops_polling(
    fake: FakeTelegram, backend: StoreBackend, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    # PTB ends its polling loop for good on a 401 or 404 from getUpdates (it takes either
    # for a rejected token): a self-hosted Bot API server restarting, say.
    bot = make_bot(fake, backend, polling_stall_s=2.0)
    await bot.start()
    try:
        polls = len(fake.calls_to("getUpdates"))
        fake.fail_next(1, status, methods=["getUpdates"])
        await fake.wait_for_calls("getUpdates", polls + 1)
        before = len(fake.sent)
        fake.inject_message(USER, "/help")
        (reply,) = (await fake.wait_for_messages(before + 1, timeout=15))[before:]
        assert reply.chat_id == USER
        assert "bot polling stopped" in caplog.text
    finally:
        await bot.stop()


async def test_list_of_a_chat_that_blocked_the_bot_says_nothing_is_sent(world: World) -> None:
    fake, store = world.fake, world.store
    await ask(fake, USER, "/subscribe peacekeepers")
    await store.deactivate_subscriber(USER)  # it blocked the bot, then unblocked it
    shown = (await ask(fake, USER, "/list")).visible_text
    assert "peacekeepers" in shown and "Send /start" in shown
    assert "Alerts come as they happen" not in shown
    await ask(fake, USER, "/start")
    assert "Alerts come as they happen" in (await ask(fake, USER, "/list")).visible_text


async def test_a_wait_telegram_asks_of_polling_is_not_taken_for_a_stop(
    fake: FakeTelegram, backend: StoreBackend, caplog: pytest.LogCaptureFixture
) -> None:
    # A 429 on getUpdates: PTB sleeps retry_after, longer here than the stall allowance.
    bot = make_bot(fake, backend, polling_stall_s=2.0)
    await bot.start()
    try:
        polls = len(fake.calls_to("getUpdates"))
        fake.fault_retry_after = 5
        fake.fail_next(1, 429, methods=["getUpdates"])
        await fake.wait_for_calls("getUpdates", polls + 1)
        await asyncio.sleep(4)  # still inside the wait Telegram asked for
        assert "bot polling stopped" not in caplog.text
        assert bot.running
    finally:
        await bot.stop()


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), timedelta(hours=1)),
        (("30m",), timedelta(minutes=30)),
        (("2h",), timedelta(hours=2)),
        (("1d",), timedelta(days=1)),
        (("1h30m",), timedelta(minutes=90)),
        (("1h", "30min"), timedelta(minutes=90)),
        (("2H",), timedelta(hours=2)),
        (("30d",), timedelta(days=30)),
    ],
)
def test_mute_durations(args: tuple[str, ...], expected: timedelta) -> None:
    assert commands.parse_mute(args) == expected


@pytest.mark.parametrize("args", [("soon",), ("2",), ("h",), ("0m",), ("31d",), ("2h", "x")])
def test_mute_durations_refused(args: tuple[str, ...]) -> None:
    with pytest.raises(commands.Invalid):
        commands.parse_mute(args)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8:00", "08:00"), ("08:00", "08:00"), ("23:59", "23:59"), ("7.30", "07:30")],
)
def test_clock_times(text: str, expected: str) -> None:
    assert commands.parse_clock(text) == expected


@pytest.mark.parametrize(
    "text", ["24:00", "12:60", "8", "8pm", "08:00:00", "-1:00", "٠٨:٣٠", "０８:００", "08:٣٠"]
)
def test_clock_times_refused(text: str) -> None:
    with pytest.raises(commands.Invalid):
        commands.parse_clock(text)


def test_buttons_round_trip_and_foreign_data_is_refused() -> None:
    toggle = commands.Toggle(False, 12, commands.rule_key("é" * 500))
    data = commands.encode_button(toggle)
    assert len(data.encode()) <= 64
    assert commands.decode_button(data) == toggle
    assert commands.decode_button("p:3") == commands.ShowPage(3)
    for foreign in ("", "x", "f:1", "f:a:0123456789abcdef", "p:-1", "f:1:XYZ", "p:٣"):
        assert commands.decode_button(foreign) is None, foreign


def test_long_admin_texts_are_split_at_line_ends() -> None:
    text = "\n".join(f"feed-{i} <failing> & more" + " x" * 40 for i in range(200))
    parts = commands.split_html(text)
    assert len(parts) > 1
    assert all(len(part) <= MESSAGE_LIMIT for part in parts)
    assert "&lt;failing&gt; &amp; more" in parts[0]
    assert sum(part.count("\n") + 1 for part in parts) == 200


def test_rule_pages_are_clamped_and_empty_rules_say_so() -> None:
    rules = [RuleDef(f"r{i}", "q") for i in range(9)]
    last = commands.render_rules_page(rules, ["r8"], page=7)
    assert last.page == 1 and last.keyboard[0][0][0] == "✅ r8"
    assert commands.render_rules_page([], [], 0).visible == "No rules are configured yet."


async def test_a_failing_command_is_apologised_for_and_polling_goes_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watcher")
    page = await ask(world.fake, USER, "/rules")
    await world.store.close()  # every store call fails from now on
    reply = await ask(world.fake, USER, "/list")
    assert reply.visible_text == commands.SORRY
    answer = await press(world.fake, USER, button(page, "➕ Tripartite"), page.message_id)
    assert answer == {
        "callback_query_id": answer["callback_query_id"],
        "text": commands.SORRY,
        "show_alert": True,
    }
    assert "/subscribe NAME" in (await ask(world.fake, USER, "/help")).visible_text
    assert "bot command failed chat=2000" in caplog.text
