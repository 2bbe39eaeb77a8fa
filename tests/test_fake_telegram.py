"""The fake Bot API server answers like Telegram, to raw HTTP clients and to PTB's real Bot."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import telegram
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.request import HTTPXRequest

from tests.fakes.telegram_api import (
    DROP,
    Bucket,
    FakeTelegram,
    HtmlParseError,
    ManualClock,
    RateLimits,
    parse_telegram_html,
    utf16_len,
)

TOKEN = "123456:TEST-token_abc"
OTHER_TOKEN = "123456:WRONG-token_xyz"
USER = 42
GROUP = -4012345
SUPERGROUP = -1001234567890


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN, clock=clock) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def bot(fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bot]:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    async with Bot(TOKEN, base_url=fake.base_url + "/bot") as real_bot:
        yield real_bot


async def call(
    http: aiohttp.ClientSession, fake: FakeTelegram, method: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{fake.api_url}/{method}", **kwargs) as response:
        return response.status, await response.json()


# ---------------------------------------------------------------------------------------------
# Protocol, seen from a raw HTTP client


async def test_get_me_over_get_and_post_with_any_method_case(
    fake: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{fake.api_url}/GETME") as response:
        assert response.status == 200
        body = await response.json()
    assert body["ok"] is True
    assert body["result"]["id"] == 123456
    assert body["result"]["is_bot"] is True
    assert body["result"]["username"] == "watcher_test_bot"
    assert await call(http, fake, "getme") == (200, body)
    assert [c.method for c in fake.calls] == ["getMe", "getMe"]


async def test_wrong_token_is_401_and_malformed_token_404(
    fake: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{fake.base_url}/bot{OTHER_TOKEN}/getMe") as response:
        assert response.status == 401
        assert await response.json() == {
            "ok": False,
            "error_code": 401,
            "description": "Unauthorized",
        }
    async with http.post(f"{fake.base_url}/botnot-a-token/getMe") as response:
        assert response.status == 404
    assert fake.unauthorized_requests == 2
    assert fake.calls == []


async def test_unknown_method_and_path_are_404(
    fake: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    not_found = {"ok": False, "error_code": 404, "description": "Not Found"}
    assert await call(http, fake, "sendTelepathy") == (404, not_found)
    async with http.get(f"{fake.base_url}/elsewhere") as response:
        assert (response.status, await response.json()) == (404, not_found)


async def test_form_json_query_and_multipart_bodies_are_equivalent(
    fake: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    fake.set_rate_limits(None)
    markup = {"inline_keyboard": [[{"text": "Mute", "callback_data": "mute:7"}]]}
    form = {
        "chat_id": "42",
        "text": "<b>one</b>",
        "parse_mode": "HTML",
        "reply_markup": '{"inline_keyboard": [[{"text": "Mute", "callback_data": "mute:7"}]]}',
        "link_preview_options": '{"is_disabled": true}',
    }
    status, body = await call(http, fake, "sendMessage", data=form)
    assert status == 200
    assert body["result"]["text"] == "one"
    assert body["result"]["reply_markup"] == markup

    as_json = {"chat_id": 42, "text": "<b>one</b>", "parse_mode": "HTML", "reply_markup": markup}
    assert (await call(http, fake, "sendMessage", json=as_json))[0] == 200
    query = {"chat_id": "42", "text": "two", "disable_web_page_preview": "true"}
    assert (await call(http, fake, "sendMessage", params=query))[0] == 200
    multipart = aiohttp.FormData()
    multipart.add_field("chat_id", "42")
    multipart.add_field("text", "three")
    multipart.add_field("unused", b"bytes", filename="x.bin")
    assert (await call(http, fake, "sendMessage", data=multipart))[0] == 200

    first, second, third, _ = fake.sent
    assert first.reply_markup == second.reply_markup == markup
    assert first.link_preview_disabled and not second.link_preview_disabled
    assert third.link_preview_disabled
    assert [m.visible_text for m in fake.sent] == ["one", "one", "two", "three"]
    assert [m.message_id for m in fake.sent] == [1, 2, 3, 4]
    # Form strings are decoded, so assertions do not depend on the encoding the client chose.
    assert fake.calls[0].params["chat_id"] == fake.calls[1].params["chat_id"] == 42
    assert fake.calls[0].params["reply_markup"] == markup


async def test_errors_are_telegram_shaped(fake: FakeTelegram, http: aiohttp.ClientSession) -> None:
    status, body = await call(
        http,
        fake,
        "sendMessage",
        data={"chat_id": "42", "text": "Hello, <div>", "parse_mode": "HTML"},
    )
    assert status == 400
    assert body == {
        "ok": False,
        "error_code": 400,
        "description": (
            'Bad Request: can\'t parse entities: Unsupported start tag "div" at byte offset 7'
        ),
    }
    assert fake.sent == []
    assert (await call(http, fake, "sendMessage", data={"text": "x"}))[1]["description"] == (
        "Bad Request: chat_id is empty"
    )
    bad_data = {"inline_keyboard": [[{"text": "b", "callback_data": "x" * 65}]]}
    status, body = await call(
        http, fake, "sendMessage", json={"chat_id": 1, "text": "t", "reply_markup": bad_data}
    )
    assert (status, body["description"]) == (400, "Bad Request: BUTTON_DATA_INVALID")


# ---------------------------------------------------------------------------------------------
# HTML parse mode


def test_all_supported_tags_give_visible_text_and_entities() -> None:
    html = (
        "<b>b</b><strong>s</strong> <i>i</i><em>e</em> <u>u</u><ins>n</ins> "
        "<s>s</s><strike>k</strike><del>d</del> <tg-spoiler>p</tg-spoiler>"
        '<span class="tg-spoiler">q</span> <code>c</code> '
        '<pre><code class="language-python">x = 1</code></pre> '
        '<a href="https://e.example/?a=1&amp;b=2">link</a> '
        "<blockquote>quote</blockquote><blockquote expandable>more</blockquote> "
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji> &lt;&gt;&amp;&quot;&#65;&#x42;'
    )
    parsed = parse_telegram_html(html)
    assert parsed.text == 'bs ie un skd pq c x = 1 link quotemore 👍 <>&"AB'
    kinds = [e["type"] for e in parsed.entities]
    assert kinds.count("bold") == 2
    assert kinds.count("spoiler") == 2
    assert {"italic", "underline", "strikethrough", "code", "text_link", "blockquote"} <= set(kinds)
    assert "expandable_blockquote" in kinds
    pre = next(e for e in parsed.entities if e["type"] == "pre")
    assert pre["language"] == "python"
    link = next(e for e in parsed.entities if e["type"] == "text_link")
    assert link["url"] == "https://e.example/?a=1&b=2"
    emoji = next(e for e in parsed.entities if e["type"] == "custom_emoji")
    assert emoji["custom_emoji_id"] == "5368324170671202286"


def test_entity_offsets_count_utf16_code_units() -> None:
    parsed = parse_telegram_html("😀 Ханкенди <b>Xəlfəli</b>")
    assert parsed.entities == [{"type": "bold", "offset": 12, "length": 7}]
    assert utf16_len("😀") == 2


EXPECTED_EQUAL_SIGN = (
    'Expected equal sign in declaration of an attribute of the tag "b" at byte offset 0'
)
SURROGATE = (
    "Text contains invalid Unicode characters after decoding HTML entities, "
    "check for unmatched surrogate code units"
)


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("Hello, <div>x</div>", 'Unsupported start tag "div" at byte offset 7'),
        ("Привет <p>", 'Unsupported start tag "p" at byte offset 13'),  # bytes, not chars
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("a<b", "Unclosed start tag at byte offset 1"),
        ("x <b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ('<a href="https://x', "Unclosed start tag at byte offset 0"),
        ("<a href=https://x>y</a>", "Unexpected end of name token at byte offset 8"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<b bold>x</b>", EXPECTED_EQUAL_SIGN),
        ("Tom & Jerry", "Unsupported character entity at byte offset 4"),
        ("a&nbsp;b", "Unsupported character entity at byte offset 1"),
        ("fish &amp chips", "Unterminated character entity at byte offset 5"),
        ("&#xD800;", SURROGATE),
    ],
)
def test_invalid_html_is_rejected_with_telegrams_reason(html: str, reason: str) -> None:
    with pytest.raises(HtmlParseError) as caught:
        parse_telegram_html(html)
    assert caught.value.reason == reason


def test_lenient_entities_show_unknown_ones_literally_as_telegram_does() -> None:
    assert parse_telegram_html("a&nbsp;b &amp c & d", strict_entities=False).text == (
        "a&nbsp;b & c & d"
    )


# ---------------------------------------------------------------------------------------------
# Text limits


async def test_text_length_counts_visible_utf16_units(
    fake: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    fake.set_rate_limits(None)

    async def send(text: str) -> tuple[int, dict[str, Any]]:
        return await call(
            http, fake, "sendMessage", json={"chat_id": USER, "text": text, "parse_mode": "HTML"}
        )

    assert (await send("<b>" + "x" * 4096 + "</b>"))[0] == 200  # tags are not counted
    assert (await send("😀" * 2048))[0] == 200
    for too_long in ("x" * 4097, "😀" * 2048 + "x", "&amp;" * 4097):
        status, body = await send(too_long)
        assert (status, body["description"]) == (400, "Bad Request: message is too long")
    for empty in ("", "  \n ", "<b></b>"):
        status, body = await send(empty)
        assert (status, body["description"]) == (400, "Bad Request: message text is empty")
    assert len(fake.sent) == 2


async def test_surrounding_whitespace_is_trimmed_and_entities_follow(
    fake: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    data = {"chat_id": USER, "text": "\n  <b> hi</b> there \n", "parse_mode": "HTML"}
    status, body = await call(http, fake, "sendMessage", json=data)
    assert status == 200
    assert body["result"]["text"] == "hi there"
    assert body["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 2}]


# ---------------------------------------------------------------------------------------------
# Through python-telegram-bot


async def test_ptb_get_me_and_html_send(bot: Bot, fake: FakeTelegram) -> None:
    me = await bot.get_me()
    assert me.username == "watcher_test_bot"
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Mute", callback_data="mute:1")]])
    message = await bot.send_message(
        USER,
        '<b>Peacekeepers</b> left <a href="https://turan.az/x">Khankendi</a> &amp; Turshsu',
        parse_mode="HTML",
        reply_markup=keyboard,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    assert message.text == "Peacekeepers left Khankendi & Turshsu"
    assert message.chat.type == "private"
    assert message.from_user is not None and message.from_user.id == me.id
    assert message.reply_markup == keyboard
    assert message.entities[1].url == "https://turan.az/x"
    [sent] = fake.sent
    assert sent.visible_text == message.text
    assert sent.parse_mode == "HTML"
    assert sent.link_preview_disabled is True
    assert sent.reply_markup == keyboard.to_dict()


@pytest.mark.parametrize("text", ["1 < 2", "<div>news</div>"])
async def test_ptb_raises_bad_request_on_invalid_html(bot: Bot, text: str) -> None:
    # PTB drops "Bad Request: " and capitalizes the rest.
    with pytest.raises(BadRequest, match="Can't parse entities: unsupported start tag"):
        await bot.send_message(USER, text, parse_mode="HTML")


async def test_ptb_raises_bad_request_on_too_long(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(USER, "x" * 4097)


async def test_ptb_raises_forbidden_for_blocked_chat(bot: Bot, fake: FakeTelegram) -> None:
    fake.block_chat(USER)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(USER, "hello")
    assert fake.sent == []


async def test_ptb_raises_chat_migrated_with_new_id(bot: Bot, fake: FakeTelegram) -> None:
    fake.migrate_chat(GROUP, SUPERGROUP)
    with pytest.raises(ChatMigrated) as caught:
        await bot.send_message(GROUP, "hello")
    assert caught.value.new_chat_id == SUPERGROUP
    message = await bot.send_message(SUPERGROUP, "hello")
    assert message.chat.type == "supergroup"


async def test_ptb_raises_bad_request_for_unknown_chat(bot: Bot, fake: FakeTelegram) -> None:
    fake.unknown_chats.add(777)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(777, "hello")


async def test_ptb_raises_retry_after_as_timedelta(bot: Bot, fake: FakeTelegram) -> None:
    for _ in range(3):
        await bot.send_message(USER, "burst")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "one too many")
    assert caught.value.retry_after == dt.timedelta(seconds=1)
    assert fake.count_429 == 1
    assert fake.count_429_by_chat[USER] == 1


async def test_ptb_raises_invalid_token(
    fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    request = HTTPXRequest()  # ours to close: Bot.shutdown() skips a bot never initialized
    wrong = Bot(OTHER_TOKEN, base_url=fake.base_url + "/bot", request=request)
    try:
        with pytest.raises(InvalidToken):
            await wrong.get_me()
    finally:
        await request.shutdown()
    with pytest.raises(InvalidToken, match="rejected by the server"):
        async with Bot(OTHER_TOKEN, base_url=fake.base_url + "/bot"):
            pass  # initialize() calls getMe


async def test_injected_message_and_callback_arrive_through_get_updates(
    bot: Bot, fake: FakeTelegram
) -> None:
    raw = fake.inject_message(USER, "/subscribe peacekeepers", username="anna")
    direct = Update.de_json(raw, bot)
    assert direct is not None and direct.message is not None

    [update] = await bot.get_updates(timeout=0)
    assert update.update_id == raw["update_id"]
    assert update.message is not None
    assert update.message.text == "/subscribe peacekeepers"
    assert update.message.from_user is not None and update.message.from_user.username == "anna"
    assert update.message.parse_entities([telegram.MessageEntity.BOT_COMMAND]) == {
        update.message.entities[0]: "/subscribe"
    }

    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Mute", callback_data="mute:3")]])
    sent = await bot.send_message(USER, "Alert", reply_markup=keyboard)
    fake.inject_callback_query(USER, "mute:3")
    [press] = await bot.get_updates(offset=update.update_id + 1)
    query = press.callback_query
    assert query is not None and query.data == "mute:3"
    assert query.message is not None and query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(query.id, text="Muted") is True
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query.id)


async def test_long_poll_returns_as_soon_as_an_update_is_injected(
    bot: Bot, fake: FakeTelegram
) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await fake.wait_for_calls("getUpdates", n=1)
    await asyncio.sleep(0.05)
    assert not poll.done()
    fake.inject_message(USER, "/start")
    updates = await asyncio.wait_for(poll, 10)
    assert len(updates) == 1
    assert time.monotonic() - started < 10  # not the 30 s the poll could last


async def test_long_poll_times_out_empty(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 < time.monotonic() - started < 10


async def test_downtime_and_dropped_connections_raise_network_errors(
    bot: Bot, fake: FakeTelegram
) -> None:
    fake.start_downtime()
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(USER, "during the outage")
    with pytest.raises(NetworkError):
        await bot.get_me()
    fake.end_downtime()
    fake.start_downtime(DROP)
    with pytest.raises(NetworkError, match="disconnected"):
        await bot.send_message(USER, "connection dropped")
    fake.end_downtime()
    await bot.send_message(USER, "back")
    assert [m.visible_text for m in fake.sent] == ["back"]


async def test_delay_longer_than_the_read_timeout_raises_timed_out(
    bot: Bot, fake: FakeTelegram
) -> None:
    fake.set_delay(1.0, methods=["sendMessage"])
    with pytest.raises(TimedOut):
        await bot.send_message(USER, "slow", read_timeout=0.2)
    fake.set_delay(0)
    await bot.send_message(USER, "fast")


async def test_ptb_edit_message_text(bot: Bot, fake: FakeTelegram) -> None:
    sent = await bot.send_message(USER, "Draft")
    edited = await bot.edit_message_text("<i>Final</i>", USER, sent.message_id, parse_mode="HTML")
    assert isinstance(edited, telegram.Message)
    assert edited.text == "Final"
    assert edited.edit_date is not None
    [edit] = fake.edits
    assert (edit.chat_id, edit.message_id, edit.visible_text) == (USER, sent.message_id, "Final")
    current = fake.message(USER, sent.message_id)
    assert current is not None and current.visible_text == "Final"
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text("<i>Final</i>", USER, sent.message_id, parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", USER, 999)


async def test_ptb_bot_commands_round_trip(bot: Bot, fake: FakeTelegram) -> None:
    assert await bot.get_my_commands() == ()
    await bot.set_my_commands([("start", "Start alerts"), ("rules", "List rules")])
    commands = await bot.get_my_commands()
    assert [(c.command, c.description) for c in commands] == [
        ("start", "Start alerts"),
        ("rules", "List rules"),
    ]
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([("Start!", "bad")])
    await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()


# ---------------------------------------------------------------------------------------------
# Rate limits (ManualClock)


async def test_private_chat_bucket_bursts_three_then_one_per_second(
    fake: FakeTelegram, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async def send(chat_id: int) -> tuple[int, dict[str, Any]]:
        return await call(http, fake, "sendMessage", json={"chat_id": chat_id, "text": "x"})

    assert [(await send(USER))[0] for _ in range(3)] == [200, 200, 200]
    status, body = await send(USER)
    assert status == 429
    assert body["description"] == "Too Many Requests: retry after 1"
    assert body["parameters"] == {"retry_after": 1}
    assert (await send(USER + 1))[0] == 200  # other chats are not affected
    clock.advance(1.0)
    assert (await send(USER))[0] == 200
    assert (await send(USER))[0] == 429
    assert fake.count_429_by_chat == {USER: 2}


async def test_group_bucket_is_twenty_per_minute(
    fake: FakeTelegram, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    statuses = []
    for _ in range(21):
        status, body = await call(http, fake, "sendMessage", json={"chat_id": GROUP, "text": "x"})
        statuses.append(status)
    assert statuses == [200] * 20 + [429]
    assert body["parameters"] == {"retry_after": 3}
    clock.advance(3.0)
    assert (await call(http, fake, "sendMessage", json={"chat_id": GROUP, "text": "x"}))[0] == 200


async def test_overall_bucket_and_disabling(
    fake: FakeTelegram, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    statuses = []
    for chat_id in range(1, 32):
        statuses.append(
            (await call(http, fake, "sendMessage", data={"chat_id": chat_id, "text": "x"}))[0]
        )
    assert statuses == [200] * 30 + [429]
    assert fake.count_429 == 1

    fake.set_rate_limits(
        RateLimits(per_private_chat=Bucket(capacity=1, per_second=0.5), overall=None)
    )
    first = await call(http, fake, "sendMessage", json={"chat_id": USER, "text": "x"})
    second = await call(http, fake, "sendMessage", json={"chat_id": USER, "text": "x"})
    assert (first[0], second[0], second[1]["parameters"]) == (200, 429, {"retry_after": 2})

    fake.set_rate_limits(None)
    for _ in range(50):
        assert (await call(http, fake, "sendMessage", json={"chat_id": USER, "text": "x"}))[
            0
        ] == 200


# ---------------------------------------------------------------------------------------------
# Faults, updates and records


async def test_fail_next_counts_down_and_filters_methods(
    fake: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    fake.fail_next(2, 500, methods=["sendMessage"])
    assert (await call(http, fake, "getMe"))[0] == 200
    status, body = await call(http, fake, "sendMessage", json={"chat_id": USER, "text": "x"})
    assert (status, body["description"]) == (500, "Internal Server Error")
    assert (await call(http, fake, "sendMessage", json={"chat_id": USER, "text": "x"}))[0] == 500
    assert (await call(http, fake, "sendMessage", json={"chat_id": USER, "text": "x"}))[0] == 200
    fake.fail_next(1, 429)
    status, body = await call(http, fake, "sendMessage", json={"chat_id": USER, "text": "x"})
    assert (status, body["parameters"]) == (429, {"retry_after": 1})
    assert fake.count_429 == 1
    assert len(fake.calls_to("sendMessage")) == 4
    assert len(fake.sent) == 1


async def test_get_updates_offset_limit_and_allowed_updates(
    fake: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    for n in range(5):
        fake.inject_message(USER, f"m{n}")
    body = (await call(http, fake, "getUpdates", data={"limit": "2"}))[1]
    first_ids = [u["update_id"] for u in body["result"]]
    assert first_ids == [1, 2]
    # Not confirmed yet: asked again, the same updates come back.
    body = (await call(http, fake, "getUpdates"))[1]
    assert [u["update_id"] for u in body["result"]] == [1, 2, 3, 4, 5]
    body = (await call(http, fake, "getUpdates", json={"offset": 4}))[1]
    assert [u["message"]["text"] for u in body["result"]] == ["m3", "m4"]
    body = (await call(http, fake, "getUpdates", json={"offset": -1}))[1]
    assert [u["update_id"] for u in body["result"]] == [5]

    fake.block_chat(USER, notify=True)
    fake.inject_message(USER, "kept out")
    only_members = {"offset": 6, "allowed_updates": ["my_chat_member"]}
    body = (await call(http, fake, "getUpdates", json=only_members))[1]
    [member] = body["result"]
    assert member["my_chat_member"]["new_chat_member"]["status"] == "kicked"
    update = Update.de_json(member, None)
    assert update is not None and update.my_chat_member is not None
    assert fake.pending_updates() == [member]  # the filtered-out message is gone


async def test_second_poll_ends_the_first_with_conflict(
    fake: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    first = asyncio.create_task(call(http, fake, "getUpdates", json={"timeout": 5}))
    await fake.wait_for_calls("getUpdates", n=1)
    second = asyncio.create_task(call(http, fake, "getUpdates", json={"timeout": 0}))
    status, body = await asyncio.wait_for(first, 2)
    assert status == 409
    assert body["description"].startswith("Conflict: terminated by other getUpdates request")
    assert (await second)[0] == 200


async def test_chat_types_follow_the_id(fake: FakeTelegram, http: aiohttp.ClientSession) -> None:
    fake.channel_chats.add(-1009999)
    types = {}
    for chat_id in (USER, GROUP, SUPERGROUP, -1009999):
        body = (await call(http, fake, "sendMessage", json={"chat_id": chat_id, "text": "x"}))[1]
        types[chat_id] = body["result"]["chat"]["type"]
        assert Update.de_json({"update_id": 1, "message": body["result"]}, None) is not None
    assert types == {USER: "private", GROUP: "group", SUPERGROUP: "supergroup", -1009999: "channel"}


async def test_wait_for_messages(fake: FakeTelegram, http: aiohttp.ClientSession) -> None:
    async def send_later() -> None:
        await asyncio.sleep(0.05)
        for text in ("a", "b"):
            await call(http, fake, "sendMessage", json={"chat_id": USER, "text": text})

    task = asyncio.create_task(send_later())
    messages = await fake.wait_for_messages(2, timeout=2)
    assert [m.visible_text for m in messages] == ["a", "b"]
    await task
    with pytest.raises(TimeoutError, match="2 of 3 messages"):
        await fake.wait_for_messages(3, timeout=0.1)


async def test_stop_answers_pending_long_polls(http: aiohttp.ClientSession) -> None:
    server = FakeTelegram(TOKEN)
    await server.start()
    poll = asyncio.create_task(call(http, server, "getUpdates", json={"timeout": 30}))
    await server.wait_for_calls("getUpdates")
    started = time.monotonic()
    await server.stop()
    assert await asyncio.wait_for(poll, 10) == (200, {"ok": True, "result": []})
    assert time.monotonic() - started < 10  # not the 30 s the poll could last
