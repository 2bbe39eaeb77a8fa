"""Sending one message through python-telegram-bot, with every Telegram error mapped to an
outcome the delivery loop knows how to act on. Nothing here touches the outbox."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest

from watcher.telegram.format import html_to_console

log = logging.getLogger(__name__)

# A token Telegram rejects will not fix itself; retry rarely until the operator fixes it.
_INVALID_TOKEN_RETRY_S = 300.0


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: int
    plain_text: bool = False  # Telegram refused our HTML, so it went without formatting


@dataclass(frozen=True, slots=True)
class RetryLater:
    """A transient failure. `after_s` is Telegram's own retry_after when it gave one."""

    reason: str
    after_s: float | None = None
    whole_bot: bool = False  # the wait applies to every chat, not just this one


@dataclass(frozen=True, slots=True)
class Rejected:
    """Telegram will never accept this message for this chat (blocked, bad request)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Migrated:
    new_chat_id: int


SendOutcome = Sent | RetryLater | Rejected | Migrated


@dataclass(frozen=True, slots=True)
class Edited:
    """The message reads as asked: edited now, or already (`unchanged`)."""

    unchanged: bool = False
    plain_text: bool = False  # Telegram refused our HTML, so it went without formatting


@dataclass(frozen=True, slots=True)
class EditGone:
    """The message cannot be edited any more (deleted, or too old to edit): nothing to do."""

    reason: str


EditOutcome = Edited | EditGone | RetryLater | Rejected | Migrated

# Telegram's answers (lowercased) when the message to edit is not there to edit.
_EDIT_GONE = ("message to edit not found", "message can't be edited")
_NOT_MODIFIED = "message is not modified"


_REASON_CHARS = 160


def _reason(exc: TelegramError) -> str:
    """One short line: PTB puts a whole HTML error page into some messages."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


def _unexpected(what: str, chat_id: int, exc: Exception) -> RetryLater:
    """An answer python-telegram-bot could not read (a Bot API server of another make, a
    proxy): the row is retried with backoff and given up in the end, as for a network
    error, instead of escaping the delivery loop, which would send it again at once."""
    log.error("telegram %s failed chat=%s: %s: %s", what, chat_id, type(exc).__name__, exc)
    return RetryLater(reason=f"unexpected answer: {type(exc).__name__}: {exc}")


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramSender:
    """Owns one `telegram.Bot` pointed at `api_base_url` (Telegram or a self-hosted server)."""

    def __init__(
        self,
        token: str,
        *,
        api_base_url: str,
        disable_link_preview: bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        # Opt in to PTB's timedelta retry_after now; otherwise every 429 logs a warning.
        os.environ.setdefault("PTB_TIMEDELTA", "1")
        request = HTTPXRequest(
            connect_timeout=timeout_s, read_timeout=timeout_s, write_timeout=timeout_s
        )
        self._bot = Bot(
            token,
            base_url=api_base_url.rstrip("/") + "/bot",
            request=request,
            get_updates_request=HTTPXRequest(read_timeout=timeout_s),
        )
        self._link_preview = LinkPreviewOptions(is_disabled=disable_link_preview)
        self._ready = False

    async def close(self) -> None:
        # Also after a failed initialize(): its HTTP client may already be open.
        await self._bot.shutdown()
        self._ready = False

    async def send(self, chat_id: int, html_text: str) -> SendOutcome:
        try:
            if not self._ready:
                # initialize() calls getMe: it checks the token before the first send.
                await self._bot.initialize()
                self._ready = True
            return await self._send(chat_id, html_text, parse_mode=ParseMode.HTML)
        except BadRequest as exc:
            if "can't parse entities" in str(exc).lower():
                # Our formatter escapes everything, so this is our bug: log it and still
                # deliver the alert, as plain text.
                log.error("telegram rejected our HTML chat=%s error=%s", chat_id, exc)
                return await self._send_plain(chat_id, html_text)
            return self._classify(exc)
        except TelegramError as exc:
            return self._classify(exc)
        except Exception as exc:  # whatever it is, the row must be retried
            return _unexpected("send", chat_id, exc)

    async def edit(self, chat_id: int, message_id: int, html_text: str) -> EditOutcome:
        """Replace the text of a message sent before. Telegram answers "message is not
        modified" when it already reads so (a repeated edit): that is success."""
        try:
            if not self._ready:
                await self._bot.initialize()
                self._ready = True
            return await self._edit(chat_id, message_id, html_text, parse_mode=ParseMode.HTML)
        except BadRequest as exc:
            if "can't parse entities" in str(exc).lower():
                log.error("telegram rejected our HTML chat=%s error=%s", chat_id, exc)
                return await self._edit_plain(chat_id, message_id, html_text)
            return self._classify_edit(exc)
        except TelegramError as exc:
            return self._classify_edit(exc)
        except Exception as exc:
            return _unexpected("edit", chat_id, exc)

    async def _edit(
        self, chat_id: int, message_id: int, text: str, *, parse_mode: str | None
    ) -> EditOutcome:
        await self._bot.edit_message_text(
            text,
            chat_id=chat_id,
            message_id=message_id,
            parse_mode=parse_mode,
            link_preview_options=self._link_preview,
        )
        return Edited()

    async def _edit_plain(self, chat_id: int, message_id: int, html_text: str) -> EditOutcome:
        try:
            await self._edit(chat_id, message_id, html_to_console(html_text), parse_mode=None)
        except TelegramError as exc:
            outcome = self._classify_edit(exc)
            if isinstance(outcome, Edited):
                return Edited(unchanged=True, plain_text=True)
            return outcome
        return Edited(plain_text=True)

    @classmethod
    def _classify_edit(cls, exc: TelegramError) -> EditOutcome:
        if isinstance(exc, BadRequest):
            text = str(exc).lower()
            if _NOT_MODIFIED in text:
                return Edited(unchanged=True)
            if any(gone in text for gone in _EDIT_GONE):
                return EditGone(reason=str(exc))
        return cls._classify(exc)

    async def _send(self, chat_id: int, text: str, *, parse_mode: str | None) -> SendOutcome:
        message = await self._bot.send_message(
            chat_id=chat_id,
            text=text,
            parse_mode=parse_mode,
            link_preview_options=self._link_preview,
        )
        return Sent(message_id=message.message_id)

    async def _send_plain(self, chat_id: int, html_text: str) -> SendOutcome:
        try:
            sent = await self._send(chat_id, html_to_console(html_text), parse_mode=None)
        except TelegramError as exc:
            return self._classify(exc)
        return Sent(message_id=sent.message_id, plain_text=True) if isinstance(sent, Sent) else sent

    @staticmethod
    def _classify(exc: TelegramError) -> RetryLater | Rejected | Migrated:
        # Order matters: BadRequest and TimedOut are NetworkErrors, and must not be retried
        # as if the network had failed.
        if isinstance(exc, RetryAfter):
            return RetryLater(reason=str(exc), after_s=_seconds(exc.retry_after))
        if isinstance(exc, ChatMigrated):
            return Migrated(new_chat_id=int(exc.new_chat_id))
        if isinstance(exc, InvalidToken):
            return RetryLater(
                reason="the bot token was rejected by the Bot API server",
                after_s=_INVALID_TOKEN_RETRY_S,
                whole_bot=True,
            )
        if isinstance(exc, Forbidden | BadRequest):
            return Rejected(reason=str(exc))
        return RetryLater(reason=_reason(exc))  # network errors, timeouts, 5xx
