"""A fake Telegram Bot API server for tests.

`FakeTelegram` is an aiohttp server on 127.0.0.1 that answers the Bot API methods Watcher uses
the way api.telegram.org does, so python-telegram-bot (``Bot(token, base_url=fake.base_url +
"/bot")``) and plain HTTP clients cannot tell the difference. It runs inside the test's event loop
and records what it received (`sent`, `edits`, `calls`) for assertions.

Behaviour worth knowing when writing tests:

* **HTML** (``parse_mode=HTML``) is parsed by `parse_telegram_html`, a port of TDLib's parser: same
  tags, same error texts and UTF-8 byte offsets. One deliberate difference, on by default
  (``strict_entities=True``): Telegram shows an unknown entity (``&nbsp;``) or one without ``;``
  literally, the fake rejects it, because it always means our formatter forgot to escape ``&``.
  Pass ``strict_entities=False`` for Telegram's lenient behaviour.
* Like Telegram, leading and trailing whitespace of the visible text is trimmed; empty → "message
  text is empty"; more than 4096 UTF-16 code units → "message is too long".
* **Rate limits** are token buckets (`RateLimits`): per private chat a burst of 3 then 1 message/s;
  per group/supergroup/channel (negative id) a burst of 20 then 20/minute; overall a burst of 30
  then 30/s. sendMessage and editMessageText consume tokens; a rejected call consumes none. The
  429 answer carries ``retry_after`` = whole seconds until a token is free (at least 1).
  Buckets read ``clock`` (default `time.monotonic`; pass a `ManualClock` to control time).
  Long-poll timeouts and `set_delay` always use real time.
* Order of checks for a send: parameters and HTML, then chat not found / migrated, then rate
  limits, then blocked (a send to a blocked chat still costs a token, as on Telegram).
* **Edits** (editMessageText) answer as Telegram does: "message to edit not found" for a message
  the bot never sent or the user deleted (`user_deletes`), "message can't be edited" for one in
  `uneditable`, "message is not modified" when text, entities and markup are all the same; then
  rate limits and blocked, like a send.
* **Faults**: `fail_next` (the next N calls), `start_downtime`/`end_downtime` (every call), each
  answering an HTTP status (500 JSON like Telegram's; 502/503/504 as nginx's HTML page) or
  `DROP` (connection closed without an answer) or `GARBLED` (200 with `"ok": true` and a
  result that is no Message, as a Bot API server of another make or a broken proxy may
  answer); `set_delay` slows answers down.
* **Updates**: `inject_message`, `inject_callback_query`, `inject_update` queue updates for
  getUpdates (long polling with offset/limit/timeout/allowed_updates). Updates are forgotten only
  when a later call confirms them with ``offset``, as on Telegram. A second concurrent getUpdates
  ends the first with 409 Conflict.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Literal, NamedTuple, Self

from aiohttp import web

JSONDict = dict[str, Any]

DROP: Final = "drop"
"""Fault kind: close the connection without answering."""

GARBLED: Final = "garbled"
"""Fault kind: answer success with a result python-telegram-bot cannot read."""

Fault = int | Literal["drop", "garbled"]

MAX_MESSAGE_LENGTH: Final = 4096
MAX_CALLBACK_DATA_BYTES: Final = 64

_TOKEN_FORMAT = re.compile(r"\d+:[A-Za-z0-9_-]+")
_SUPERGROUP_ID_LIMIT: Final = -1_000_000_000_000
_DEFAULT_GROUP_MEMBER_ID: Final = 1001
# Who sends a message an anonymous group administrator posts as the group.
_GROUP_ANONYMOUS_BOT: Final = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
_TRIMMED = " \t\r\n"
_BOT_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")

# Update types Telegram sends when allowed_updates is empty or was never set.
_NOT_SENT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)

_NGINX_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------------------------
# HTML parse mode


class HtmlParseError(ValueError):
    """The text is not valid Telegram HTML; `reason` is Telegram's wording."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ParsedText:
    """Visible text (untrimmed) and Bot API MessageEntity dicts (UTF-16 offsets)."""

    text: str
    entities: list[JSONDict]


_SUPPORTED_TAGS = frozenset(
    {
        "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler",
        "tg-emoji", "span", "pre", "code", "blockquote",
    }
)  # fmt: skip

_SIMPLE_ENTITY_TYPES: Final = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
}

_NAMED_ENTITIES: Final = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}
_SPACES = frozenset(b" \t\r\n\v\x00")
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_DEC_DIGITS = frozenset(b"0123456789")
_NAME_TOKEN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_ASCII_LETTERS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass
class _OpenTag:
    name: str
    argument: str
    utf16_start: int
    byte_start: int  # in the visible text, for <a> without href
    expandable: bool = False


class _HtmlParser:
    """Walks the UTF-8 bytes as TDLib does, so byte offsets in errors match Telegram's."""

    def __init__(self, text: str, *, strict_entities: bool) -> None:
        self.src = text.encode("utf-8")
        self.strict = strict_entities
        self.out = bytearray()
        self.utf16 = 0
        self.entities: list[JSONDict] = []
        self.stack: list[_OpenTag] = []

    def at(self, i: int) -> int:
        # TDLib reads a NUL-terminated string: past the end is 0, which it treats as a space.
        return self.src[i] if i < len(self.src) else 0

    def decode_entity(self, pos: int) -> tuple[str, int] | None:
        """The character of the entity at `pos` and the position after it, or None."""
        src, end = self.src, pos + 1
        if self.at(end) == ord("#"):
            end += 1
            hexadecimal = self.at(end) == ord("x")
            if hexadecimal:
                end += 1
            digits, base = (_HEX_DIGITS, 16) if hexadecimal else (_DEC_DIGITS, 10)
            start = end
            while self.at(end) in digits:
                end += 1
            code = int(src[start:end], base) if end > start else 0
            if code == 0 or code >= 0x10FFFF or end - pos >= 10:
                self.reject_entity(pos)
                return None
            if 0xD800 <= code <= 0xDFFF:
                raise HtmlParseError(
                    "Text contains invalid Unicode characters after decoding HTML entities, "
                    "check for unmatched surrogate code units"
                )
            char = chr(code)
        else:
            while end < len(src) and src[end] in _ASCII_LETTERS:
                end += 1
            named = _NAMED_ENTITIES.get(src[pos + 1 : end])
            if named is None:
                self.reject_entity(pos)
                return None
            char = named
        if self.at(end) == ord(";"):
            return char, end + 1
        if self.strict:
            raise HtmlParseError(f"Unterminated character entity at byte offset {pos}")
        return char, end

    def reject_entity(self, pos: int) -> None:
        """Telegram keeps an unknown entity as literal text; strict mode refuses it."""
        if self.strict:
            raise HtmlParseError(f"Unsupported character entity at byte offset {pos}")

    def emit(self, char: str) -> None:
        self.out += char.encode("utf-8")
        self.utf16 += utf16_len(char)

    def parse(self) -> ParsedText:
        i, src = 0, self.src
        while i < len(src):
            c = src[i]
            if c == ord("&"):
                decoded = self.decode_entity(i)
                if decoded is not None:
                    self.emit(decoded[0])
                    i = decoded[1]
                    continue
            if c != ord("<"):
                self.out.append(c)
                if c & 0xC0 != 0x80:  # first byte of a character
                    self.utf16 += 2 if c >= 0xF0 else 1
                i += 1
                continue
            i = self.end_tag(i) if self.at(i + 1) == ord("/") else self.start_tag(i)
        if self.stack:
            raise HtmlParseError(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"'
            )
        for entity in self.entities:
            if entity["type"] == "code":
                entity.pop("language", None)
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return ParsedText(self.out.decode("utf-8"), self.entities)

    def start_tag(self, begin: int) -> int:
        i = begin + 1
        while self.at(i) not in _SPACES and self.at(i) != ord(">"):
            i += 1
        if i >= len(self.src):
            raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
        name = self.src[begin + 1 : i].decode("utf-8", "replace").lower()
        if name not in _SUPPORTED_TAGS:
            raise HtmlParseError(f'Unsupported start tag "{name}" at byte offset {begin}')
        argument, expandable = "", False
        while self.at(i) != ord(">"):
            while i < len(self.src) and self.at(i) in _SPACES:
                i += 1
            if self.at(i) == ord(">"):
                break
            attr_begin = i
            while self.at(i) not in _SPACES and self.at(i) not in b"=>":
                i += 1
            attr = self.src[attr_begin:i].decode("utf-8", "replace")
            if not attr:
                raise HtmlParseError(
                    f'Empty attribute name in the tag "{name}" at byte offset {begin}'
                )
            while i < len(self.src) and self.at(i) in _SPACES:
                i += 1
            if self.at(i) != ord("="):
                if name == "blockquote" and attr == "expandable":
                    expandable = True
                    continue
                raise HtmlParseError(
                    "Expected equal sign in declaration of an attribute of the tag "
                    f'"{name}" at byte offset {begin}'
                )
            i += 1
            while i < len(self.src) and self.at(i) in _SPACES:
                i += 1
            if i >= len(self.src):
                raise HtmlParseError(f'Unclosed start tag "{name}" at byte offset {begin}')
            value, i = self.attribute_value(i)
            if i >= len(self.src):
                raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
            if name == "a" and attr == "href":
                argument = value
            elif name == "code" and attr == "class" and value.startswith("language-"):
                argument = value.removeprefix("language-")
            elif name == "span" and attr == "class" and value.startswith("tg-"):
                argument = value.removeprefix("tg-")
            elif name == "tg-emoji" and attr == "emoji-id":
                argument = value
        if name == "span" and argument != "spoiler":
            raise HtmlParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
        self.stack.append(_OpenTag(name, argument, self.utf16, len(self.out), expandable))
        return i + 1

    def attribute_value(self, i: int) -> tuple[str, int]:
        quote = self.at(i)
        if quote not in b"'\"":
            # An unquoted name token: letters, digits, '.', '-'; case-insensitive.
            start = i
            while i < len(self.src) and self.at(i) in _NAME_TOKEN:
                i += 1
            if self.at(i) not in _SPACES and self.at(i) != ord(">"):
                raise HtmlParseError(f"Unexpected end of name token at byte offset {start}")
            return self.src[start:i].decode("ascii").lower(), i
        i += 1
        value = bytearray()
        while i < len(self.src) and self.at(i) != quote:
            if self.at(i) == ord("&"):
                decoded = self.decode_entity(i)
                if decoded is not None:
                    value += decoded[0].encode("utf-8")
                    i = decoded[1]
                    continue
            value.append(self.at(i))
            i += 1
        if self.at(i) == quote:
            i += 1
        return value.decode("utf-8", "replace"), i

    def end_tag(self, begin: int) -> int:
        if not self.stack:
            raise HtmlParseError(f"Unexpected end tag at byte offset {begin}")
        i = begin + 2
        while self.at(i) not in _SPACES and self.at(i) != ord(">"):
            i += 1
        end_name = self.src[begin + 2 : i].decode("utf-8", "replace")
        while i < len(self.src) and self.at(i) in _SPACES:
            i += 1
        if self.at(i) != ord(">"):
            raise HtmlParseError(f"Unclosed end tag at byte offset {begin}")
        tag = self.stack[-1]
        if end_name and end_name != tag.name:
            raise HtmlParseError(
                f'Unmatched end tag at byte offset {begin}, expected "</{tag.name}>", '
                f'found "</{end_name}>"'
            )
        self.stack.pop()
        if self.utf16 > tag.utf16_start:
            self.add_entity(tag)
        return i + 1

    def add_entity(self, tag: _OpenTag) -> None:
        entity: JSONDict = {"offset": tag.utf16_start, "length": self.utf16 - tag.utf16_start}
        if tag.name in _SIMPLE_ENTITY_TYPES:
            entity["type"] = _SIMPLE_ENTITY_TYPES[tag.name]
        elif tag.name == "a":
            url = tag.argument or self.out[tag.byte_start :].decode("utf-8")
            entity.update(type="text_link", url=url)
        elif tag.name == "blockquote":
            entity["type"] = "expandable_blockquote" if tag.expandable else "blockquote"
        elif tag.name == "tg-emoji":
            entity.update(type="custom_emoji", custom_emoji_id=tag.argument)
        else:
            # <pre><code class="language-x"> is one pre entity with a language, whichever of the
            # two tags closes first; a lone <code> keeps no language.
            last = self.entities[-1] if self.entities else None
            other = "pre" if tag.name == "code" else "code"
            if last and last["type"] == other and _same_span(last, entity):
                language = tag.argument if tag.name == "code" else last.get("language", "")
                if language:
                    last.update(type="pre", language=language)
                    return
            entity["type"] = tag.name
            if tag.name == "code" and tag.argument:
                entity["language"] = tag.argument
        self.entities.append(entity)


def _same_span(a: JSONDict, b: JSONDict) -> bool:
    return bool(a["offset"] == b["offset"] and a["length"] == b["length"])


def parse_telegram_html(text: str, *, strict_entities: bool = True) -> ParsedText:
    """Parse `text` as Telegram's HTML parse mode does; raise `HtmlParseError` if Telegram would.

    Usable on its own, e.g. to check a formatter's output without a server.
    """
    return _HtmlParser(text, strict_entities=strict_entities).parse()


def telegram_length(message: str) -> int:
    """The length Telegram checks against 4096: the text left once it parsed the HTML, in
    UTF-16 units."""
    return utf16_len(parse_telegram_html(message).text.strip())


def _trim(parsed: ParsedText) -> ParsedText:
    """Strip surrounding whitespace as Telegram does, moving and clipping entities."""
    text = parsed.text
    stripped = text.strip(_TRIMMED)
    if not stripped:
        return ParsedText("", [])
    lead = utf16_len(text[: len(text) - len(text.lstrip(_TRIMMED))])
    end = lead + utf16_len(stripped)
    entities = []
    for entity in parsed.entities:
        start = max(entity["offset"], lead)
        stop = min(entity["offset"] + entity["length"], end)
        if stop > start:
            entities.append({**entity, "offset": start - lead, "length": stop - start})
    return ParsedText(stripped, entities)


# --------------------------------------------------------------------------------------------
# Rate limits and clocks


class ManualClock:
    """A clock that only moves when told to; pass it as ``FakeTelegram(clock=...)``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Bucket:
    """A token bucket: `capacity` calls at once, refilled at `per_second`."""

    capacity: float
    per_second: float


@dataclass(frozen=True)
class RateLimits:
    """Telegram's documented limits as token buckets; None disables one of them."""

    per_private_chat: Bucket | None = Bucket(capacity=3, per_second=1.0)
    per_group_chat: Bucket | None = Bucket(capacity=20, per_second=20 / 60)
    overall: Bucket | None = Bucket(capacity=30, per_second=30.0)


@dataclass
class _TokenBucket:
    spec: Bucket
    tokens: float
    updated: float

    def wait(self, now: float) -> float:
        """Seconds until one token is available (0 if one is now)."""
        self.tokens = min(
            self.spec.capacity, self.tokens + (now - self.updated) * self.spec.per_second
        )
        self.updated = now
        missing = 1 - self.tokens
        return 0.0 if missing <= 1e-9 else missing / self.spec.per_second  # float-safe


# --------------------------------------------------------------------------------------------
# Records


class ApiCall(NamedTuple):
    """One request with the right token, whatever the answer (errors and faults included).

    `method` is the canonical name (``sendMessage``) or, if unknown, the name as requested;
    `params` are decoded: JSON-string fields parsed, ids and flags as int/bool.
    """

    method: str
    params: JSONDict


@dataclass(frozen=True)
class SentMessage:
    """A message the fake accepted (in `sent`) or an accepted text edit (in `edits`)."""

    chat_id: int
    message_id: int
    text: str  # as the client sent it
    visible_text: str  # after HTML parsing and trimming: what the user sees
    parse_mode: str | None
    link_preview_disabled: bool
    reply_markup: JSONDict | None
    entities: list[JSONDict]
    time: float  # the fake's clock
    date: int  # Unix time, as in the Message object


@dataclass
class _FaultRule:
    fault: Fault
    methods: frozenset[str] | None
    remaining: int | None  # None: until cleared

    def applies(self, method: str) -> bool:
        return self.methods is None or method.lower() in self.methods


class _ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _bad_request(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


_JSON_PARAMS = frozenset(
    {
        "reply_markup", "link_preview_options", "allowed_updates", "commands", "scope",
        "entities", "reply_parameters",
    }
)  # fmt: skip
_INT_PARAMS = frozenset(
    {
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "timeout",
        "message_thread_id",
        "cache_time",
        "user_id",
    }
)
_BOOL_PARAMS = frozenset(
    {
        "disable_web_page_preview", "disable_notification", "protect_content",
        "drop_pending_updates", "show_alert",
    }
)  # fmt: skip


def _normalize(params: JSONDict) -> JSONDict:
    """Decode form strings so that form and JSON requests record the same values."""
    out: JSONDict = {}
    for key, value in params.items():
        if key in _JSON_PARAMS and isinstance(value, str):
            with contextlib.suppress(ValueError):  # kept raw; the method handler reports it
                value = json.loads(value)
        elif key in _INT_PARAMS and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = int(value)
        elif key in _BOOL_PARAMS and isinstance(value, str):
            value = value.strip().lower() in ("true", "1")
        out[key] = value
    return out


# --------------------------------------------------------------------------------------------
# The server

Handler = Callable[[JSONDict], Awaitable[Any]]


class FakeTelegram:
    """A Bot API server for one bot token. See the module docstring for its behaviour."""

    def __init__(
        self,
        token: str,
        *,
        bot_username: str = "watcher_test_bot",
        bot_first_name: str = "Watcher Test Bot",
        rate_limits: RateLimits | None = RateLimits(),
        clock: Callable[[], float] = time.monotonic,
        strict_entities: bool = True,
        max_message_length: int = MAX_MESSAGE_LENGTH,
        first_update_id: int = 1,
    ) -> None:
        self.token = token
        bot_id = int(token.split(":", 1)[0]) if _TOKEN_FORMAT.fullmatch(token) else 1
        self.bot_user: JSONDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.clock = clock
        self.strict_entities = strict_entities
        self.max_message_length = max_message_length

        # Chat behaviours; tests may change these at any time.
        self.blocked_chats: set[int] = set()
        self.unknown_chats: set[int] = set()
        self.migrated_chats: dict[int, int] = {}
        self.channel_chats: set[int] = set()
        self.uneditable: set[tuple[int, int]] = set()  # (chat, message): "can't be edited"
        # Group and channel administrators: chat → user → "creator" or "administrator".
        # Everyone else in a group is a plain member.
        self.chat_admins: dict[int, dict[int, str]] = {}

        # Records.
        self.calls: list[ApiCall] = []
        self.sent: list[SentMessage] = []
        self.edits: list[SentMessage] = []
        self.deleted: list[tuple[int, int]] = []
        self.answered_callback_queries: list[JSONDict] = []
        self.count_429_by_chat: collections.Counter[int] = collections.Counter()
        self.fault_retry_after = 1  # the retry_after that a 429 of fail_next carries
        self.unauthorized_requests = 0
        self.commands: dict[tuple[str, str], list[JSONDict]] = {}

        self._rate_limits = rate_limits
        self._buckets: dict[int | None, _TokenBucket] = {}
        self._faults: list[_FaultRule] = []
        self._delay = 0.0
        self._delay_methods: frozenset[str] | None = None

        self._messages: dict[tuple[int, int], SentMessage] = {}
        self._next_message_id: collections.Counter[int] = collections.Counter()
        self._updates: list[JSONDict] = []
        self._next_update_id = first_update_id
        self._allowed_updates: frozenset[str] | None = None
        self._poll_generation = 0
        self._open_callback_queries: dict[str, JSONDict] = {}
        self._next_callback_query = 1

        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "sendChatAction": self._send_chat_action,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "answerCallbackQuery": self._answer_callback_query,
            "getChatMember": self._get_chat_member,
            "close": self._always_true,
            "logOut": self._always_true,
        }
        self._method_names = {name.lower(): name for name in self._handlers}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeTelegram is already running")
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._closing = asyncio.Event()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving; pending long polls answer an empty list first."""
        if self._runner is None:
            return
        self._closing.set()
        self._bump()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:41234``; PTB wants ``base_url + "/bot"``."""
        if self._port is None:
            raise RuntimeError("FakeTelegram is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """``base_url/bot<token>``: append ``/methodName`` for a raw HTTP call."""
        return f"{self.base_url}/bot{self.token}"

    # -- configuration -----------------------------------------------------------------------

    def set_rate_limits(self, limits: RateLimits | None) -> None:
        """Replace the limits (None disables all) and refill every bucket."""
        self._rate_limits = limits
        self._buckets.clear()

    def block_chat(self, chat_id: int, *, notify: bool = False) -> None:
        """Make sends answer 403; with `notify`, queue the my_chat_member update Telegram sends."""
        self.blocked_chats.add(chat_id)
        if notify:
            self._queue_update("my_chat_member", self._member_change(chat_id, "member", "kicked"))

    def make_admin(self, chat_id: int, user_id: int, *, owner: bool = False) -> None:
        """Make a user an administrator (or the owner) of a group or channel."""
        self.chat_admins.setdefault(chat_id, {})[user_id] = "creator" if owner else "administrator"

    def demote(self, chat_id: int, user_id: int) -> None:
        """An administrator of a group becomes a plain member."""
        self.chat_admins.get(chat_id, {}).pop(user_id, None)

    def user_deletes(self, chat_id: int, message_id: int) -> None:
        """The user deleted a bot message (for both sides): edits of it are not found."""
        del self._messages[(chat_id, message_id)]

    def migrate_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        self.migrated_chats[old_chat_id] = new_chat_id

    def fail_next(
        self, n: int = 1, fault: Fault = 500, *, methods: Iterable[str] | None = None
    ) -> None:
        """The next `n` calls (of `methods`, default all) answer `fault`: a status or DROP."""
        self._faults.append(_FaultRule(fault, _lower_set(methods), n))

    def start_downtime(self, fault: Fault = 502, *, methods: Iterable[str] | None = None) -> None:
        """Every call (of `methods`) answers `fault` until `end_downtime`."""
        self._faults.append(_FaultRule(fault, _lower_set(methods), None))

    def end_downtime(self) -> None:
        """Clear every fault, counted or not."""
        self._faults.clear()

    def set_delay(self, seconds: float, *, methods: Iterable[str] | None = None) -> None:
        """Delay answers (real time) of `methods` (default all) by `seconds`; 0 clears."""
        self._delay = seconds
        self._delay_methods = _lower_set(methods)

    # -- inspection --------------------------------------------------------------------------

    @property
    def count_429(self) -> int:
        """Number of 429 answers sent, all chats together."""
        return sum(self.count_429_by_chat.values())

    def calls_to(self, method: str) -> list[JSONDict]:
        """Parameters of every recorded call of `method` (case-insensitive)."""
        return [call.params for call in self.calls if call.method.lower() == method.lower()]

    def message(self, chat_id: int, message_id: int) -> SentMessage | None:
        """A bot message as it is now (after edits), or None if unknown or deleted."""
        return self._messages.get((chat_id, message_id))

    def pending_updates(self) -> list[JSONDict]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once `predicate()` is true (checked after every recorded change)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                changed = self._changed
                await changed.wait()

    async def wait_for_messages(self, n: int, timeout: float = 5.0) -> list[SentMessage]:  # noqa: ASYNC109
        """Return the accepted messages once there are at least `n`; TimeoutError otherwise."""
        try:
            await self.wait_until(lambda: len(self.sent) >= n, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{len(self.sent)} of {n} messages accepted after {timeout} s; "
                f"last calls: {self.calls[-5:]}"
            ) from None
        return list(self.sent)

    async def wait_for_calls(self, method: str, n: int = 1, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once `method` was called at least `n` times."""
        await self.wait_until(lambda: len(self.calls_to(method)) >= n, timeout)

    # -- update injection --------------------------------------------------------------------

    def inject_update(self, update: JSONDict) -> JSONDict:
        """Queue a raw update; an ``update_id`` is assigned if missing. Returns the update."""
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, int(update["update_id"])) + 1
        self._updates.append(update)
        self._bump()
        return update

    def inject_message(
        self,
        chat_id: int,
        text: str,
        *,
        from_id: int | None = None,
        first_name: str = "Tester",
        username: str | None = None,
        language_code: str | None = "en",
        as_group: bool = False,
    ) -> JSONDict:
        """Queue a text message from a user; ``/commands`` get bot_command entities.

        `as_group`: an anonymous administrator posts it as the group itself (Telegram then
        names GroupAnonymousBot as the sender and the group as `sender_chat`)."""
        if from_id is None:
            from_id = chat_id if chat_id > 0 else _DEFAULT_GROUP_MEMBER_ID
        user: JSONDict = {"id": from_id, "is_bot": False, "first_name": first_name}
        if username is not None:
            user["username"] = username
        if language_code is not None:
            user["language_code"] = language_code
        message: JSONDict = {
            "message_id": self._new_message_id(chat_id),
            "from": dict(_GROUP_ANONYMOUS_BOT) if as_group else user,
            "chat": self._chat(chat_id),
            "date": int(time.time()),
            "text": text,
        }
        if as_group:
            message["sender_chat"] = self._chat(chat_id)
        entities = [
            {
                "type": "bot_command",
                "offset": utf16_len(text[: m.start()]),
                "length": utf16_len(m[0]),
            }
            for m in re.finditer(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?", text)
        ]
        if entities:
            message["entities"] = entities
        return self._queue_update("message", message)

    def expire_callback_queries(self) -> None:
        """The presses queued so far become too old to answer, as on Telegram once its
        timeout has passed (a press queued while the bot was busy or down)."""
        self._open_callback_queries.clear()

    def inject_callback_query(
        self,
        chat_id: int,
        data: str,
        *,
        message_id: int | None = None,
        from_id: int | None = None,
        first_name: str = "Tester",
    ) -> JSONDict:
        """Queue a button press on a bot message (default: the latest one in the chat).

        An unknown `message_id` gives an inaccessible message (date 0), as Telegram does for
        messages it no longer has.
        """
        if message_id is None:
            ids = [m for (c, m) in self._messages if c == chat_id]
            if not ids:
                raise ValueError(f"no bot message in chat {chat_id}; pass message_id")
            message_id = max(ids)
        if from_id is None:
            from_id = chat_id if chat_id > 0 else _DEFAULT_GROUP_MEMBER_ID
        stored = self._messages.get((chat_id, message_id))
        message = (
            self._message_object(stored)
            if stored is not None
            else {"chat": self._chat(chat_id), "message_id": message_id, "date": 0}
        )
        query_id = str(4_000_000_000 + self._next_callback_query)
        self._next_callback_query += 1
        query: JSONDict = {
            "id": query_id,
            "from": {"id": from_id, "is_bot": False, "first_name": first_name},
            "message": message,
            "chat_instance": str(abs(chat_id) * 7 + 3),
            "data": data,
        }
        self._open_callback_queries[query_id] = query
        return self._queue_update("callback_query", query)

    # -- HTTP layer --------------------------------------------------------------------------

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        return _error_response(_ApiError(404, "Not Found"))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if token != self.token:
            self.unauthorized_requests += 1
            if not _TOKEN_FORMAT.fullmatch(token):
                return _error_response(_ApiError(404, "Not Found"))
            return _error_response(_ApiError(401, "Unauthorized"))
        requested = request.match_info["method"]
        method = self._method_names.get(requested.lower())
        try:
            params = _normalize(await _read_params(request))
        except _ApiError as exc:
            return _error_response(exc)
        self.calls.append(ApiCall(method or requested, params))
        self._bump()

        fault = self._take_fault(requested)
        if self._delay > 0 and (
            self._delay_methods is None or requested.lower() in self._delay_methods
        ):
            await self._sleep_unless_closing(self._delay)
        if fault is not None:
            return self._fault_response(request, fault, params)
        if method is None:
            return _error_response(_ApiError(404, "Not Found"))
        try:
            result = await self._handlers[method](params)
        except _ApiError as exc:
            return _error_response(exc)
        return web.json_response({"ok": True, "result": result})

    def _take_fault(self, method: str) -> Fault | None:
        for rule in self._faults:
            if rule.applies(method):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._faults.remove(rule)
                return rule.fault
        return None

    def _fault_response(
        self, request: web.Request, fault: Fault, params: JSONDict
    ) -> web.StreamResponse:
        if fault == DROP:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        if fault == GARBLED:
            return web.json_response({"ok": True, "result": {"message_id": "not a message"}})
        status = int(fault)
        if status == 429:
            chat_id = params.get("chat_id")
            self.count_429_by_chat[chat_id if isinstance(chat_id, int) else 0] += 1
            after = self.fault_retry_after
            return _error_response(
                _ApiError(429, f"Too Many Requests: retry after {after}", {"retry_after": after})
            )
        reason = _reason(status)
        if status in (502, 503, 504):
            page = _NGINX_PAGE.format(status=status, reason=reason)
            return web.Response(status=status, text=page, content_type="text/html")
        return _error_response(_ApiError(status, reason))

    async def _sleep_unless_closing(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            pass

    def _bump(self) -> None:
        """Wake everyone waiting for a change (new call, message or update)."""
        self._changed.set()
        self._changed = asyncio.Event()

    # -- chats -------------------------------------------------------------------------------

    def _chat(self, chat_id: int) -> JSONDict:
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
        if chat_id in self.channel_chats:
            kind = "channel"
        elif chat_id <= _SUPERGROUP_ID_LIMIT:
            kind = "supergroup"
        else:
            kind = "group"
        return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}

    def _chat_id(self, params: JSONDict) -> int:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad_request("chat_id is empty")
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _bad_request("chat not found")  # we know no @usernames
        return raw

    def _check_chat(self, chat_id: int) -> None:
        if chat_id in self.unknown_chats:
            raise _bad_request("chat not found")
        if chat_id in self.migrated_chats:
            raise _ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self.migrated_chats[chat_id]},
            )

    def _check_blocked(self, chat_id: int) -> None:
        if chat_id in self.blocked_chats:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")

    def _take_rate_token(self, chat_id: int) -> None:
        limits = self._rate_limits
        if limits is None:
            return
        chat_spec = limits.per_private_chat if chat_id > 0 else limits.per_group_chat
        now = self.clock()
        buckets = [
            self._bucket(key, spec, now)
            for key, spec in ((None, limits.overall), (chat_id, chat_spec))
            if spec is not None
        ]
        wait = max((bucket.wait(now) for bucket in buckets), default=0.0)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            self.count_429_by_chat[chat_id] += 1
            raise _ApiError(
                429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )
        for bucket in buckets:
            bucket.tokens -= 1

    def _bucket(self, key: int | None, spec: Bucket, now: float) -> _TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.spec != spec:
            bucket = self._buckets[key] = _TokenBucket(spec, spec.capacity, now)
        return bucket

    # -- messages ----------------------------------------------------------------------------

    def _new_message_id(self, chat_id: int) -> int:
        self._next_message_id[chat_id] += 1
        return self._next_message_id[chat_id]

    def _parse_text(self, params: JSONDict) -> tuple[str, ParsedText, str | None]:
        text = params.get("text")
        if not isinstance(text, str) or not text:
            raise _bad_request("message text is empty")
        parse_mode = params.get("parse_mode")
        mode = str(parse_mode).lower() if parse_mode else ""
        if mode == "html":
            try:
                parsed = parse_telegram_html(text, strict_entities=self.strict_entities)
            except HtmlParseError as exc:
                raise _bad_request(f"can't parse entities: {exc.reason}") from None
        elif mode in ("", "none"):
            parsed = ParsedText(text, [])
        elif mode in ("markdown", "markdownv2"):
            raise _bad_request(f"the fake Telegram server does not implement {parse_mode}")
        else:
            raise _bad_request("unsupported parse_mode")
        parsed = _trim(parsed)
        if not parsed.text:
            raise _bad_request("message text is empty")
        if utf16_len(parsed.text) > self.max_message_length:
            raise _bad_request("message is too long")
        return text, parsed, str(parse_mode) if parse_mode else None

    def _message_object(self, record: SentMessage, edit_date: int | None = None) -> JSONDict:
        chat = self._chat(record.chat_id)
        message: JSONDict = {"message_id": record.message_id}
        if chat["type"] == "channel":
            message["sender_chat"] = chat
        else:
            message["from"] = self.bot_user
        message.update(chat=chat, date=record.date, text=record.visible_text)
        if edit_date is not None:
            message["edit_date"] = edit_date
        if record.entities:
            message["entities"] = record.entities
        if record.reply_markup and "inline_keyboard" in record.reply_markup:
            message["reply_markup"] = record.reply_markup
        return message

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        text, parsed, parse_mode = self._parse_text(params)
        reply_markup = _reply_markup(params)
        link_preview_disabled = _link_preview_disabled(params)
        self._check_chat(chat_id)
        self._take_rate_token(chat_id)
        self._check_blocked(chat_id)
        record = SentMessage(
            chat_id=chat_id,
            message_id=self._new_message_id(chat_id),
            text=text,
            visible_text=parsed.text,
            parse_mode=parse_mode,
            link_preview_disabled=link_preview_disabled,
            reply_markup=reply_markup,
            entities=parsed.entities,
            time=self.clock(),
            date=int(time.time()),
        )
        self.sent.append(record)
        self._messages[(chat_id, record.message_id)] = record
        self._bump()
        return self._message_object(record)

    def _stored_message(self, params: JSONDict, missing: str) -> tuple[int, SentMessage]:
        if params.get("inline_message_id"):
            raise _bad_request("the fake Telegram server does not support inline messages")
        chat_id = self._chat_id(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise _bad_request("message identifier is not specified")
        self._check_chat(chat_id)
        stored = self._messages.get((chat_id, message_id))
        if stored is None:
            raise _bad_request(missing)
        return chat_id, stored

    async def _edit_message_text(self, params: JSONDict) -> JSONDict:
        text, parsed, parse_mode = self._parse_text(params)
        reply_markup = _reply_markup(params)
        chat_id, stored = self._stored_message(params, "message to edit not found")
        if (chat_id, stored.message_id) in self.uneditable:
            raise _bad_request("message can't be edited")
        if (parsed.text, parsed.entities, reply_markup) == (
            stored.visible_text,
            stored.entities,
            stored.reply_markup,
        ):
            raise _ApiError(400, _NOT_MODIFIED)
        self._take_rate_token(chat_id)
        self._check_blocked(chat_id)
        record = dataclasses.replace(
            stored,
            text=text,
            visible_text=parsed.text,
            parse_mode=parse_mode,
            link_preview_disabled=_link_preview_disabled(params),
            reply_markup=reply_markup,
            entities=parsed.entities,
            time=self.clock(),
        )
        self.edits.append(record)
        self._messages[(chat_id, record.message_id)] = record
        self._bump()
        return self._message_object(record, edit_date=int(time.time()))

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        reply_markup = _reply_markup(params)
        chat_id, stored = self._stored_message(params, "message to edit not found")
        if reply_markup == stored.reply_markup:
            raise _ApiError(400, _NOT_MODIFIED)
        record = dataclasses.replace(stored, reply_markup=reply_markup)
        self._messages[(chat_id, record.message_id)] = record
        self._bump()
        return self._message_object(record, edit_date=int(time.time()))

    async def _delete_message(self, params: JSONDict) -> bool:
        chat_id, stored = self._stored_message(params, "message to delete not found")
        del self._messages[(chat_id, stored.message_id)]
        self.deleted.append((chat_id, stored.message_id))
        self._bump()
        return True

    async def _send_chat_action(self, params: JSONDict) -> bool:
        chat_id = self._chat_id(params)
        if not params.get("action"):
            raise _bad_request("action is empty")
        self._check_chat(chat_id)
        self._check_blocked(chat_id)
        return True

    # -- updates -----------------------------------------------------------------------------

    def _queue_update(self, kind: str, payload: JSONDict) -> JSONDict:
        return self.inject_update({kind: payload})

    def _member_change(self, chat_id: int, old: str, new: str) -> JSONDict:
        return {
            "chat": self._chat(chat_id),
            "from": {"id": chat_id, "is_bot": False, "first_name": f"User {chat_id}"},
            "date": int(time.time()),
            "old_chat_member": {"status": old, "user": self.bot_user},
            "new_chat_member": {"status": new, "user": self.bot_user, "until_date": 0},
        }

    def _deliverable(self, limit: int) -> list[JSONDict]:
        allowed = self._allowed_updates
        kept: list[JSONDict] = []
        out: list[JSONDict] = []
        for update in self._updates:
            kind = next((key for key in update if key != "update_id"), "")
            wanted = kind not in _NOT_SENT_BY_DEFAULT if allowed is None else kind in allowed
            if wanted:  # Telegram never stores updates of types the bot did not ask for
                kept.append(update)
                if len(out) < limit:
                    out.append(update)
        self._updates = kept
        return out

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        offset = _int_param(params, "offset", 0)
        limit = min(max(_int_param(params, "limit", 100), 1), 100)
        timeout = max(_int_param(params, "timeout", 0), 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(str(a) for a in allowed) if allowed else None
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

        self._poll_generation += 1
        generation = self._poll_generation
        self._bump()  # ends an older poll still waiting (409 below)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise _ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            updates = self._deliverable(limit)
            remaining = deadline - loop.time()
            if updates or remaining <= 0 or self._closing.is_set():
                return updates
            changed = self._changed
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                pass

    async def _get_chat_member(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        self._check_chat(chat_id)
        user_id = params.get("user_id")
        if isinstance(user_id, bool) or not isinstance(user_id, int):
            raise _bad_request("invalid user_id specified")
        if chat_id > 0 and user_id != chat_id:
            raise _bad_request("user not found")  # a private chat has one member
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
        status = self.chat_admins.get(chat_id, {}).get(user_id, "member")
        if status == "creator":
            return {"status": status, "user": user, "is_anonymous": False}
        if status == "administrator":
            rights = (
                "can_manage_chat can_delete_messages can_manage_video_chats "
                "can_restrict_members can_change_info can_invite_users can_post_stories "
                "can_edit_stories can_delete_stories can_pin_messages"
            )
            return {
                "status": status,
                "user": user,
                "can_be_edited": False,
                "is_anonymous": False,
                "can_promote_members": False,
                **dict.fromkeys(rights.split(), True),
            }
        return {"status": status, "user": user}

    async def _delete_webhook(self, params: JSONDict) -> bool:
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        pending = len(self._updates)
        return {"url": "", "has_custom_certificate": False, "pending_update_count": pending}

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = params.get("callback_query_id")
        if not query_id:
            raise _bad_request("callback_query_id is empty")
        if self._open_callback_queries.pop(str(query_id), None) is None:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        if isinstance(text, str) and utf16_len(text) > 200:
            raise _bad_request("MESSAGE_TOO_LONG")
        self.answered_callback_queries.append(params)
        return True

    # -- commands ----------------------------------------------------------------------------

    @staticmethod
    def _commands_key(params: JSONDict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        if not isinstance(scope, dict) or "type" not in scope:
            raise _bad_request("can't parse BotCommandScope JSON object")
        language = params.get("language_code") or ""
        return json.dumps(scope, sort_keys=True), str(language)

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad_request("BOT_COMMANDS_TOO_MUCH")
        cleaned = []
        for command in commands:
            if not isinstance(command, dict):
                raise _bad_request("can't parse BotCommand")
            name = str(command.get("command", "")).removeprefix("/")
            description = str(command.get("description", "")).strip()
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": name, "description": description})
        key = self._commands_key(params)
        if cleaned:
            self.commands[key] = cleaned
        else:
            self.commands.pop(key, None)
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return list(self.commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return self.bot_user

    async def _always_true(self, params: JSONDict) -> bool:
        return True


# --------------------------------------------------------------------------------------------
# Helpers


def _lower_set(methods: Iterable[str] | None) -> frozenset[str] | None:
    return None if methods is None else frozenset(m.lower() for m in methods)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _error_response(exc: _ApiError) -> web.Response:
    body: JSONDict = {"ok": False, "error_code": exc.status, "description": exc.description}
    if exc.parameters:
        body["parameters"] = exc.parameters
    return web.json_response(body, status=exc.status)


async def _read_params(request: web.Request) -> JSONDict:
    """Query string, then the body (form, multipart or JSON) on top, as the Bot API merges them."""
    params: JSONDict = dict(request.query)
    if not request.can_read_body:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise _bad_request("can't parse JSON object") from None
        if not isinstance(body, dict):
            raise _bad_request("JSON object expected")
        params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            params[key] = value.file.read() if isinstance(value, web.FileField) else value
    return params


def _int_param(params: JSONDict, name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_request(f"invalid {name} specified")
    return value


def _reply_markup(params: JSONDict) -> JSONDict | None:
    markup = params.get("reply_markup")
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    keyboard = markup.get("inline_keyboard")
    if keyboard is not None:
        if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
            raise _bad_request("can't parse inline keyboard button: field must be an Array")
        for button in (button for row in keyboard for button in row):
            if not isinstance(button, dict) or not button.get("text"):
                raise _bad_request("can't parse inline keyboard button: Text is empty")
            if len(button) == 1:
                raise _bad_request(
                    "can't parse inline keyboard button: "
                    "Text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
                raise _bad_request("BUTTON_DATA_INVALID")
    return markup


def _link_preview_disabled(params: JSONDict) -> bool:
    options = params.get("link_preview_options")
    if options not in (None, ""):
        if not isinstance(options, dict):
            raise _bad_request("can't parse link preview options JSON object")
        if options.get("is_disabled") is True:
            return True
    return params.get("disable_web_page_preview") is True
