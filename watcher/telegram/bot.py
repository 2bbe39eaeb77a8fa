"""The subscriber bot: Telegram commands and the /rules buttons, by long polling inside the
daemon's event loop. It reaches the rest of Watcher only through a `BotBackend`.

Lifecycle. `Application.run_polling()` owns the event loop, so it cannot run inside the
daemon: `start()` drives the pieces itself (initialize → setMyCommands → start →
updater.start_polling) and `stop()` undoes them in reverse. The first attempt runs inside
`start()`; if it fails (Telegram unreachable, 5xx, token rejected) `start()` logs a warning,
returns anyway and keeps trying in the background with exponential backoff, so a daemon
started while Telegram is down still delivers alerts and gains its bot when Telegram returns.

Replies go out directly through PTB, in HTML, with every user- or config-provided string
escaped (see `watcher.telegram.commands`). One INFO line is logged per command or button,
with the chat id and the command only: never the message text, never the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from http import HTTPStatus
from typing import Any

from telegram import (
    Bot,
    BotCommand,
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    Update,
    User,
)
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, Conflict, InvalidToken, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import HTTPXRequest

from watcher.errors import ChatOnHold
from watcher.model import RuleDef
from watcher.telegram import commands as say
from watcher.telegram.backend import BotBackend
from watcher.telegram.format import escape

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
CommandBody = Callable[[Message, Context, int], Awaitable[None]]
# A turn under Telegram's limits for a message to a chat (Delivery.reply_slot).
ReplySlot = Callable[[int], AbstractAsyncContextManager[None]]

# The menu Telegram shows next to the message field (setMyCommands). Admin commands are
# left out: they are listed in /help for admins only.
MENU: tuple[tuple[str, str], ...] = (
    ("rules", "The rules, with buttons to follow them"),
    ("list", "What you follow; mute and digest settings"),
    ("subscribe", "Follow a rule: /subscribe NAME"),
    ("unsubscribe", "Stop following a rule: /unsubscribe NAME"),
    ("mute", "Hold alerts for a while: /mute 2h"),
    ("unmute", "Alerts as they come again"),
    ("digest", "Digest: /digest off | hourly | daily 08:00"),
    ("help", "All commands"),
    ("start", "What this bot does"),
)
ALLOWED_UPDATES = ("message", "callback_query")
_MAX_NAMES = 20  # rule names handled in one /subscribe or /unsubscribe
_POLL_ERROR_REPEAT_S = 600.0  # the same polling error is logged again at most this often
# Commands that change what a chat receives: in a group only its administrators may use them.
_CHANGING_COMMANDS = frozenset({"subscribe", "unsubscribe", "mute", "unmute", "digest"})
# What a chat the allow list does not name may still do: see what it follows and leave
# (it may have subscribed while the bot was open, or been dropped from the list since).
_WAYS_OUT = frozenset({"help", "list", "unsubscribe"})
# How long Telegram's answer to "is this user an administrator of this group" is trusted.
GROUP_ADMIN_TTL_S = 60.0
_GROUP_ADMIN_CACHE_SIZE = 1024


class _PollingRequest(HTTPXRequest):
    """The connection getUpdates goes through (a documented extension point of PTB), noting
    when it last made a request, and until when Telegram asked it to wait (a 429's
    retry_after: PTB then sleeps that long): how `SubscriberBot` tells that polling has
    stopped rather than paused."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,  # PTB adds the long poll's own timeout to this
            write_timeout=timeout_s,
            pool_timeout=timeout_s,
        )
        self.last_request = time.monotonic()
        self.quiet_until = 0.0  # time.monotonic() until which Telegram asked for quiet

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        self.last_request = time.monotonic()
        try:
            status, payload = await super().do_request(*args, **kwargs)
        finally:
            self.last_request = time.monotonic()
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            self.quiet_until = self.last_request + _retry_after(payload)
        return status, payload


class SubscriberBot:
    """Answers subscribers' commands on Telegram.

    `api_base_url` is the Bot API root ("https://api.telegram.org" or a self-hosted or fake
    server), without "/bot". `poll_timeout_s` is getUpdates' long-poll timeout;
    `request_timeout_s` bounds every other request (and is added to the long poll's).
    A failed start is retried after `retry_initial_s`, doubling up to `retry_max_s`.
    """

    def __init__(
        self,
        token: str,
        *,
        api_base_url: str,
        backend: BotBackend,
        poll_timeout_s: int = 30,
        request_timeout_s: float = 10.0,
        retry_initial_s: float = 5.0,
        retry_max_s: float = 300.0,
        reply_slot: ReplySlot | None = None,
        polling_stall_s: float | None = None,
        group_admin_ttl_s: float = GROUP_ADMIN_TTL_S,
    ) -> None:
        self._token = token
        self._group_admin_ttl_s = group_admin_ttl_s
        self._base_url = api_base_url.rstrip("/") + "/bot"
        self._backend = backend
        self._poll_timeout = timedelta(seconds=poll_timeout_s)
        self._request_timeout_s = request_timeout_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._reply_slot: ReplySlot = reply_slot or _no_wait
        self._app: Application[Any, Any, Any, Any, Any, Any] | None = None
        self._retry_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        # How long polling may go without a request before it counts as stopped: a long
        # poll, a request's timeout, PTB's longest wait between retries (30 s), and slack.
        self._polling_stall_s = (
            polling_stall_s
            if polling_stall_s is not None
            else poll_timeout_s + request_timeout_s + 60.0
        )
        self._started = False
        self._last_poll_error: tuple[str, float] | None = None
        # (chat, user) → (administers the group, when Telegram said so): see _group_refusal.
        self._group_admins: dict[tuple[int, int], tuple[bool, float]] = {}

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        """Whether the bot is polling Telegram now."""
        app = self._app
        return app is not None and app.updater is not None and app.updater.running

    async def start(self) -> None:
        """Start polling. Never raises for Telegram or network errors: on failure, logs a
        warning and retries in the background until it succeeds or `stop()` is called."""
        if self._started:
            raise RuntimeError("SubscriberBot.start() was called twice")
        self._started = True
        # PTB's timedelta retry_after, without a deprecation warning on every 429.
        os.environ.setdefault("PTB_TIMEDELTA", "1")
        delay = await self._attempt(self._retry_initial_s)
        if delay is not None:
            self._retry_task = asyncio.create_task(
                self._keep_trying(delay), name="subscriber-bot-start"
            )

    async def stop(self) -> None:
        """Stop polling (finishing the update being handled) and release the HTTP clients.
        Safe to call whatever state `start()` reached, and more than once."""
        for task in (self._retry_task, self._watch_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._retry_task = self._watch_task = None
        app, self._app = self._app, None
        if app is not None:
            await _teardown(app)
            log.info("bot stopped")

    async def _keep_trying(self, delay: float) -> None:
        while True:
            await asyncio.sleep(delay)
            next_delay = await self._attempt(min(delay * 2, self._retry_max_s))
            if next_delay is None:
                return
            delay = next_delay

    async def _attempt(self, retry_in: float) -> float | None:
        """One start attempt: None when polling, else the delay before the next one."""
        try:
            await self._launch()
        except InvalidToken:
            # Do not log the exception: PTB puts the token in its message.
            retry_in = self._retry_max_s
            log.warning(
                "bot cannot start: the bot token was rejected by the Bot API server; "
                "retrying in %.0f s",
                retry_in,
            )
            return retry_in
        except TelegramError as exc:
            log.warning(
                "bot cannot start: %s: %s; retrying in %.0f s", type(exc).__name__, exc, retry_in
            )
            return retry_in
        except Exception:
            log.exception("bot cannot start; retrying in %.0f s", retry_in)
            return retry_in
        return None

    async def _launch(self) -> None:
        polling = _PollingRequest(self._request_timeout_s)
        app = self._build(polling)
        self._app = app
        try:
            await app.initialize()  # getMe: checks the token, learns the bot's @username
            await app.bot.set_my_commands([BotCommand(name, text) for name, text in MENU])
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(
                timeout=self._poll_timeout,
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=False,  # commands sent while we were down still count
                error_callback=self._on_poll_error,
            )
        except BaseException:
            self._app = None
            await _teardown(app)
            raise
        log.info("bot started username=@%s", app.bot.username)
        self._watch_task = asyncio.create_task(
            self._watch_polling(app, polling), name="subscriber-bot-polling"
        )

    async def _watch_polling(
        self, app: Application[Any, Any, Any, Any, Any, Any], polling: _PollingRequest
    ) -> None:
        """Restart the bot when its polling has stopped: PTB ends its polling loop for good
        on a 401 or a 404 from getUpdates (a self-hosted Bot API server restarting, a proxy)
        without a word to us, and the bot would answer no one until the daemon restarts."""
        stall = self._polling_stall_s
        while self._app is app:
            await asyncio.sleep(min(stall / 4, 15.0))
            now = time.monotonic()
            quiet = now - polling.last_request
            if (
                self._app is not app
                or now <= max(polling.last_request, polling.quiet_until) + stall
            ):
                continue
            log.warning("bot polling stopped (no request for %.0f s); restarting the bot", quiet)
            self._app = None
            await _teardown(app)
            delay = await self._attempt(self._retry_initial_s)
            if delay is not None:
                self._retry_task = asyncio.create_task(
                    self._keep_trying(delay), name="subscriber-bot-start"
                )
            return

    def _build(self, polling: _PollingRequest) -> Application[Any, Any, Any, Any, Any, Any]:
        timeout = self._request_timeout_s
        app = (
            Application.builder()
            .token(self._token)
            .base_url(self._base_url)
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .write_timeout(timeout)
            .pool_timeout(timeout)
            .get_updates_request(polling)
            .job_queue(None)  # the daemon has its own scheduler
            .build()
        )
        subscriber_commands: dict[str, CommandBody] = {
            "start": self._start,
            "help": self._help,
            "rules": self._rules,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "list": self._list,
            "mute": self._mute,
            "unmute": self._unmute,
            "digest": self._digest,
        }
        admin_commands: dict[str, CommandBody] = {"status": self._status, "stats": self._stats}
        for name, body in subscriber_commands.items():
            app.add_handler(CommandHandler(name, self._guarded(name, body, admin=False)))
        for name, body in admin_commands.items():
            app.add_handler(CommandHandler(name, self._guarded(name, body, admin=True)))
        app.add_handler(CallbackQueryHandler(self._button))
        app.add_handler(MessageHandler(filters.COMMAND, self._unknown_command))
        app.add_handler(
            MessageHandler(filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE, self._chat)
        )
        app.add_error_handler(self._on_error)
        return app

    # ------------------------------------------------------------------ errors

    def _on_poll_error(self, exc: TelegramError) -> None:
        """getUpdates failed (PTB retries with backoff up to 30 s): one line per distinct
        error, repeated at most every ten minutes while it lasts."""
        if isinstance(exc, InvalidToken):
            text = "the bot token was rejected by the Bot API server"
        elif isinstance(exc, Conflict):
            text = "another process is polling with this bot token (409 Conflict)"
        else:
            text = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        last = self._last_poll_error
        if last is None or last[0] != text or now - last[1] >= _POLL_ERROR_REPEAT_S:
            self._last_poll_error = (text, now)
            log.warning("bot polling failed, retrying: %s", text)

    async def _on_error(self, update: object, context: Context) -> None:
        """A handler failed: log it and carry on polling."""
        chat = update.effective_chat if isinstance(update, Update) else None
        chat_id = chat.id if chat is not None else None
        error = context.error
        if isinstance(error, ChatOnHold):
            log.info("bot reply not sent chat=%s: %s", chat_id, error)
        elif isinstance(error, InvalidToken):
            log.warning("bot reply failed chat=%s: the bot token was rejected", chat_id)
        elif isinstance(error, TelegramError):
            log.warning("bot reply failed chat=%s: %s: %s", chat_id, type(error).__name__, error)
        else:
            log.error("bot command failed chat=%s", chat_id, exc_info=error)

    # ------------------------------------------------------------------ plumbing

    def _guarded(
        self, name: str, body: CommandBody, *, admin: bool
    ) -> Callable[[Update, Context], Coroutine[Any, Any, None]]:
        """Log the command, check who may use it, then run it."""

        async def handle(update: Update, context: Context) -> None:
            message, chat = update.effective_message, update.effective_chat
            if message is None or chat is None:
                return
            log.info("bot command chat=%s command=/%s", chat.id, name)
            if admin:
                if not self._is_admin(update):
                    await self._reply(message, say.operators_only(name))
                    return
            elif name not in _WAYS_OUT and not self._backend.may_subscribe(chat.id):
                await self._reply(message, say.private_bot(chat.id))
                return
            # `/digest` alone only shows the setting.
            changes = name in _CHANGING_COMMANDS and (name != "digest" or bool(context.args))
            if changes:
                refusal = await self._group_refusal(context.bot, chat, message.from_user, message)
                if refusal is not None:
                    await self._reply(message, escape(refusal))
                    return
            try:
                await body(message, context, chat.id)
            except (TelegramError, ChatOnHold):
                raise  # the reply itself failed or may not go yet: nothing more to send
            except Exception:
                # Say so rather than stay silent; the error handler logs the failure.
                with contextlib.suppress(TelegramError, ChatOnHold):
                    await self._reply(message, escape(say.SORRY))
                raise

        return handle

    async def _group_refusal(
        self, bot: Bot, chat: Chat, user: User | None, message: Message | None
    ) -> str | None:
        """Why this user may not change what this chat follows, or None if they may.

        In a group anyone can send the bot a command, but what the group follows and when
        it hears is for the group's administrators (as Telegram reports them), the bot's
        operators and anonymous administrators posting as the group. A private chat is its
        user's own; in a channel only administrators can post."""
        if chat.type not in (ChatType.GROUP, ChatType.SUPERGROUP):
            return None
        if message is not None and message.sender_chat is not None:
            return None if message.sender_chat.id == chat.id else say.GROUP_ADMINS_ONLY
        if user is None:
            return say.GROUP_ADMINS_ONLY
        if self._backend.is_admin(user.id):
            return None
        key = (chat.id, user.id)
        now = time.monotonic()
        known = self._group_admins.get(key)
        if known is None or now - known[1] >= self._group_admin_ttl_s:
            try:
                member = await bot.get_chat_member(chat.id, user.id)
            except TelegramError as exc:
                log.warning("bot could not check a group administrator chat=%s: %s", chat.id, exc)
                return say.GROUP_ADMINS_UNKNOWN
            if len(self._group_admins) >= _GROUP_ADMIN_CACHE_SIZE:
                self._group_admins.clear()
            admin = member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
            known = self._group_admins[key] = (admin, now)
        return None if known[0] else say.GROUP_ADMINS_ONLY

    async def _reply(
        self, message: Message, html: str, keyboard: InlineKeyboardMarkup | None = None
    ) -> None:
        async with self._reply_slot(message.chat_id):
            # No quoting: a reply to a message deleted meanwhile would be refused.
            await message.reply_text(
                html,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                do_quote=False,
            )

    def _is_admin(self, update: Update) -> bool:
        user = update.effective_user
        return user is not None and self._backend.is_admin(user.id)

    def _zone(self) -> str:
        return say.zone_name(self._backend.timezone, self._backend.now())

    # ------------------------------------------------------------------ commands

    async def _start(self, message: Message, context: Context, chat_id: int) -> None:
        new = await self._backend.register(chat_id)
        admin = message.from_user is not None and self._backend.is_admin(message.from_user.id)
        await self._reply(message, say.welcome(new, admin))

    async def _help(self, message: Message, context: Context, chat_id: int) -> None:
        admin = message.from_user is not None and self._backend.is_admin(message.from_user.id)
        await self._reply(message, say.command_list(admin))

    async def _rules(self, message: Message, context: Context, chat_id: int) -> None:
        page = say.render_rules_page(self._backend.rules(), await self._followed(chat_id), 0)
        await self._reply(message, page.html, _keyboard(page))

    async def _subscribe(self, message: Message, context: Context, chat_id: int) -> None:
        names, more = _names(context.args)
        if not names:
            await self._reply(message, say.name_wanted("subscribe"))
            return
        rules = self._backend.rules()
        await self._backend.register(chat_id)
        lines: list[str] = []
        for name in names:
            rule = say.find_rule(name, rules)
            if rule is None:
                lines.append(say.unknown_rule(name, rules))
            elif await self._backend.follow(chat_id, rule.name):
                lines.append(f"✅ You now follow <b>{_shown(rule.name)}</b>.")
            else:
                lines.append(f"You already follow <b>{_shown(rule.name)}</b>.")
        if any(say.find_rule(name, rules) is None for name in names):
            lines.append(say.see_rules())
        if more:
            lines.append(say.names_left_out(more, _MAX_NAMES))
        await self._reply(message, say.fit("\n".join(lines)))

    async def _unsubscribe(self, message: Message, context: Context, chat_id: int) -> None:
        names, more = _names(context.args)
        if not names:
            await self._reply(message, say.name_wanted("unsubscribe"))
            return
        # A followed rule the operator has since removed can still be unfollowed.
        known = list(self._backend.rules())
        configured = {rule.name for rule in known}
        known += [
            RuleDef(name, "") for name in await self._followed(chat_id) if name not in configured
        ]
        lines: list[str] = []
        for name in names:
            rule = say.find_rule(name, known)
            if rule is None:
                lines.append(say.unknown_rule(name, known))
            elif await self._backend.unfollow(chat_id, rule.name):
                lines.append(f"You no longer follow <b>{_shown(rule.name)}</b>.")
            else:
                lines.append(f"You were not following <b>{_shown(rule.name)}</b>.")
        if any(say.find_rule(name, known) is None for name in names):
            lines.append(say.see_rules())
        if more:
            lines.append(say.names_left_out(more, _MAX_NAMES))
        await self._reply(message, say.fit("\n".join(lines)))

    async def _list(self, message: Message, context: Context, chat_id: int) -> None:
        subscriber = await self._backend.subscriber(chat_id)
        text = say.followed_list(
            subscriber, self._backend.rules(), self._backend.timezone, self._backend.now()
        )
        await self._reply(message, text)

    async def _mute(self, message: Message, context: Context, chat_id: int) -> None:
        try:
            duration = say.parse_mute(context.args or ())
        except say.Invalid as exc:
            await self._reply(message, escape(exc.message))
            return
        now = self._backend.now()
        until = now + duration
        await self._backend.register(chat_id)
        await self._backend.mute(chat_id, until)
        shown = say.show_moment(until, self._backend.timezone, now)
        await self._reply(
            message,
            escape(
                f"🔕 Muted until {shown}. Alerts that arrive meanwhile are held, not lost. "
                "/unmute ends it now."
            ),
        )

    async def _unmute(self, message: Message, context: Context, chat_id: int) -> None:
        subscriber = await self._backend.subscriber(chat_id)
        now = self._backend.now()
        muted = say.mute_state(subscriber, self._backend.timezone, now) is not None
        if subscriber is not None and subscriber.muted_until is not None:
            await self._backend.register(chat_id)
            await self._backend.mute(chat_id, None)
        head = "🔔 Unmuted." if muted else "You were not muted."
        await self._reply(message, escape(f"{head} {say.digest_state(subscriber, self._zone())}"))

    async def _digest(self, message: Message, context: Context, chat_id: int) -> None:
        zone = self._zone()
        if not context.args:
            subscriber = await self._backend.subscriber(chat_id)
            current = say.digest_state(subscriber, zone)
            usage = (
                f"Change it with /digest off, /digest hourly or /digest daily HH:MM "
                f"(24-hour clock, {zone} time)."
            )
            await self._reply(message, escape(f"{current}\n{usage}"))
            return
        try:
            choice = say.parse_digest(context.args, zone)
        except say.Invalid as exc:
            await self._reply(message, escape(exc.message))
            return
        await self._backend.register(chat_id)
        await self._backend.set_digest(chat_id, choice.mode, choice.at)
        subscriber = await self._backend.subscriber(chat_id)
        if choice.mode == "off":
            text = "Digest off: alerts come as they happen."
        elif choice.mode == "hourly":
            text = "Hourly digest: alerts are collected and sent once an hour."
        else:
            text = (
                f"Daily digest: alerts are collected and sent once a day at {choice.at} ({zone})."
            )
        muted = say.mute_state(subscriber, self._backend.timezone, self._backend.now())
        await self._reply(message, escape(text if muted is None else f"{text}\n{muted}"))

    async def _status(self, message: Message, context: Context, chat_id: int) -> None:
        for part in say.split_html(await self._backend.status_text()):
            await self._reply(message, part)

    async def _stats(self, message: Message, context: Context, chat_id: int) -> None:
        for part in say.split_html(await self._backend.stats_text()):
            await self._reply(message, part)

    async def _unknown_command(self, update: Update, context: Context) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None or not message.text or not message.entities:
            return
        entity = message.entities[0]
        if entity.type != MessageEntity.BOT_COMMAND or entity.offset != 0:
            return
        command, _, addressee = message.text[1 : entity.length].partition("@")
        username = context.bot.username or ""
        if addressee and addressee.lower() != username.lower():
            return  # meant for another bot in the group
        if not addressee and chat.type != ChatType.PRIVATE:
            return  # a bare /command in a group may be for another bot: stay quiet
        log.info("bot command chat=%s command=/%s (unknown)", chat.id, command[:32])
        if not self._backend.may_subscribe(chat.id):
            await self._reply(message, say.private_bot(chat.id))
            return
        await self._reply(message, say.unknown_command(command, self._is_admin(update)))

    async def _chat(self, update: Update, context: Context) -> None:
        """Plain text in a private chat: point at the commands rather than stay silent."""
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None:
            return
        log.info("bot text chat=%s", chat.id)
        if not self._backend.may_subscribe(chat.id):
            await self._reply(message, say.private_bot(chat.id))
            return
        await self._reply(message, "I only understand commands. Send /help to see them.")

    # ------------------------------------------------------------------ buttons

    async def _button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None:
            return
        try:
            await self._handle_button(query)
        except (TelegramError, ChatOnHold):
            raise  # the query was answered, and its redraw may not go yet
        except Exception:
            # Stop the button's spinner (if the query is still open) and let the error
            # handler log the failure.
            with contextlib.suppress(TelegramError):
                await query.answer(say.SORRY, show_alert=True)
            raise

    async def _handle_button(self, query: CallbackQuery) -> None:
        if query.message is None:  # a button on an inline-mode message: not one of ours
            await query.answer()
            return
        chat_id = query.message.chat.id
        action = say.decode_button(query.data or "")
        kind = type(action).__name__.lower() if action is not None else "unknown"
        if isinstance(action, say.Toggle):
            kind = "follow" if action.follow else "unfollow"
        log.info("bot button chat=%s action=%s", chat_id, kind)
        if not self._backend.may_subscribe(chat_id):
            await query.answer(say.toast("Sorry, this bot is private."), show_alert=True)
            return
        rules = self._backend.rules()
        if action is None:
            await _answer(query, "This button is out of date; here are the rules as they are now.")
            await self._show_page(query.message, chat_id, 0, edit_text=True)
            return
        if isinstance(action, say.ShowPage):
            await _answer(query)
            await self._show_page(query.message, chat_id, action.page, edit_text=True)
            return
        refusal = await self._group_refusal(
            query.get_bot(), query.message.chat, query.from_user, None
        )
        if refusal is not None:
            await query.answer(say.toast(refusal), show_alert=True)
            return
        rule = say.rule_by_key(action.key, rules)
        if rule is None:
            await _answer(query, "That rule no longer exists; here are the rules as they are now.")
            await self._show_page(query.message, chat_id, action.page, edit_text=True)
            return
        await self._backend.register(chat_id)
        name = say.shorten(rule.name, 60)
        if action.follow:
            changed = await self._backend.follow(chat_id, rule.name)
            text = f"✅ You now follow {name}" if changed else f"You already follow {name}"
        else:
            changed = await self._backend.unfollow(chat_id, rule.name)
            text = f"You no longer follow {name}" if changed else f"You were not following {name}"
        await _answer(query, say.toast(text))
        await self._show_page(query.message, chat_id, action.page, edit_text=False)

    async def _show_page(
        self, shown: object, chat_id: int, page_number: int, *, edit_text: bool
    ) -> None:
        """Redraw a /rules message in place: only its keyboard when its text is unchanged,
        else text and keyboard; as a new message if the old one can no longer be edited."""
        page = say.render_rules_page(
            self._backend.rules(), await self._followed(chat_id), page_number
        )
        keyboard = _keyboard(page)
        message = shown if isinstance(shown, Message) else None
        try:
            if message is None:
                raise BadRequest("message to edit not found")
            async with self._reply_slot(chat_id):
                if not edit_text and message.text == page.visible:
                    await message.edit_reply_markup(reply_markup=keyboard)
                else:
                    await message.edit_text(
                        page.html,
                        parse_mode=ParseMode.HTML,
                        reply_markup=keyboard,
                        link_preview_options=LinkPreviewOptions(is_disabled=True),
                    )
        except BadRequest as exc:
            if "not modified" in str(exc).lower():
                return  # a double tap: the message already shows this
            bot = message.get_bot() if message is not None else None
            if bot is None:
                raise
            async with self._reply_slot(chat_id):
                await bot.send_message(
                    chat_id,
                    page.html,
                    parse_mode=ParseMode.HTML,
                    reply_markup=keyboard,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )

    async def _followed(self, chat_id: int) -> tuple[str, ...]:
        subscriber = await self._backend.subscriber(chat_id)
        return subscriber.rules if subscriber is not None else ()


# ---------------------------------------------------------------------- helpers


@contextlib.asynccontextmanager
async def _no_wait(chat_id: int) -> AsyncIterator[None]:
    yield


def _keyboard(page: say.Page) -> InlineKeyboardMarkup | None:
    if not page.keyboard:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label, callback_data=data) for label, data in row]
            for row in page.keyboard
        ]
    )


async def _answer(query: CallbackQuery, text: str | None = None) -> None:
    """Answer a button press. Telegram refuses an answer that comes late (a press queued
    while the bot was busy or down): the press was still acted on, so the redraw after it
    must still happen."""
    try:
        await query.answer(text)
    except BadRequest as exc:
        if "query is too old" not in str(exc).lower():
            raise
        log.info("bot button answered too late: %s", exc)


def _retry_after(payload: bytes) -> float:
    """The retry_after of a Bot API 429 answer, in seconds (0 if it has none)."""
    try:
        value = json.loads(payload)["parameters"]["retry_after"]
        return max(0.0, float(value))
    except (ValueError, TypeError, KeyError):
        return 0.0


def _names(args: Sequence[str] | None) -> tuple[list[str], int]:
    """Rule names from a command's arguments (names have no spaces), each once, at most
    _MAX_NAMES of them; and how many more there were."""
    names = list(dict.fromkeys(args or ()))
    return names[:_MAX_NAMES], max(0, len(names) - _MAX_NAMES)


def _shown(name: str) -> str:
    return escape(say.shorten(name, say.SHOWN_NAME_LIMIT))


async def _teardown(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Undo whatever part of the start sequence ran, in reverse; a failing step is logged
    and the next one still runs."""
    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []
    if app.updater is not None and app.updater.running:
        steps.append(("stop polling", app.updater.stop))
    if app.running:
        steps.append(("stop the application", app.stop))
    steps.append(("shut the application down", app.shutdown))
    # After a failed initialize() the application thinks it never started, but the bot's
    # HTTP clients are open.
    steps.append(("close the HTTP clients", app.bot.shutdown))
    for what, step in steps:
        try:
            await step()
        except InvalidToken:
            log.warning("bot: cannot %s: the bot token was rejected", what)
        except Exception as exc:
            log.warning("bot: cannot %s: %s: %s", what, type(exc).__name__, exc)
