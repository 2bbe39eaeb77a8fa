"""Draining the outbox: each due row goes to Telegram (or the console) and the outcome is
written back. Rows are marked sent only after Telegram accepted them: delivery is at least
once, and only a message in flight when the process dies can arrive twice."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TextIO

from watcher.model import CONSOLE_CHAT, OutboxItem
from watcher.store import Store
from watcher.telegram.format import html_to_console
from watcher.telegram.send import Migrated, Rejected, RetryLater, Sent, TelegramSender

log = logging.getLogger(__name__)

# Telegram's published limits: about one message a second to a private chat, 20 a minute
# to a group or channel (negative ids), 30 a second overall.
PRIVATE_CHAT_GAP = timedelta(seconds=1)
GROUP_CHAT_GAP = timedelta(seconds=3)
GLOBAL_GAP = timedelta(seconds=1 / 30)
MAX_ATTEMPTS = 30
MAX_RETRY_DELAY = timedelta(hours=1)
_IDLE_WAIT_S = 5.0


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff for transient failures: 2 s, 4 s, … capped at an hour."""
    return min(timedelta(seconds=2 ** min(attempts + 1, 20)), MAX_RETRY_DELAY)


class Delivery:
    def __init__(
        self,
        store: Store,
        telegram: TelegramSender | None,
        *,
        clock: Callable[[], datetime],
        console: TextIO | None = None,
    ) -> None:
        self._store = store
        self._telegram = telegram
        self._clock = clock
        self._console = console or sys.stdout
        self._wake = asyncio.Event()
        self._next_send_to: dict[int, datetime] = {}
        self._paused_until: datetime | None = None
        self._last_send: datetime | None = None

    def wake(self) -> None:
        """New rows were queued: look now rather than at the next idle check."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; the send in progress then finishes."""
        while not stop.is_set():
            try:
                await self.drain()
            except Exception:
                log.exception("delivery round failed; retrying")
            wait = await self._seconds_until_next()
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            _, pending = await asyncio.wait(
                waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()

    async def _seconds_until_next(self) -> float:
        due = await self._store.next_outbox_attempt()
        candidates = [_IDLE_WAIT_S]
        now = self._clock()
        if due is not None:
            candidates.append((due - now).total_seconds())
        candidates.extend((t - now).total_seconds() for t in self._next_send_to.values())
        return max(0.05, min(candidates))

    async def drain(self, stop: asyncio.Event | None = None) -> int:
        """Send every row that is due now and allowed by the rate limits; return how many
        were delivered."""
        now = self._clock()
        if self._paused_until is not None and now < self._paused_until:
            return 0
        only = None if self._telegram is not None else [CONSOLE_CHAT]
        items = await self._store.due_outbox(now, limit=200, chat_ids=only)
        held: set[int] = set()  # chats that must wait: keep their later rows in order
        delivered = 0
        for item in items:
            if stop is not None and stop.is_set():
                break
            if item.chat_id in held:
                continue
            if not self._chat_ready(item.chat_id):
                held.add(item.chat_id)
                continue
            await self._respect_global_gap()
            if await self._deliver(item):
                delivered += 1
            else:
                held.add(item.chat_id)
            if self._paused_until is not None:
                break
        return delivered

    def _chat_ready(self, chat_id: int) -> bool:
        if chat_id == CONSOLE_CHAT:
            return True
        ready_at = self._next_send_to.get(chat_id)
        return ready_at is None or self._clock() >= ready_at

    async def _respect_global_gap(self) -> None:
        if self._last_send is not None:
            wait = (self._last_send + GLOBAL_GAP - self._clock()).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)

    async def _deliver(self, item: OutboxItem) -> bool:
        if item.chat_id == CONSOLE_CHAT:
            self._print(item)
            await self._store.mark_sent(item.id, None, self._clock())
            return True
        assert self._telegram is not None
        outcome = await self._telegram.send(item.chat_id, item.text)
        now = self._clock()
        self._last_send = now
        gap = GROUP_CHAT_GAP if item.chat_id < 0 else PRIVATE_CHAT_GAP
        self._next_send_to[item.chat_id] = now + gap
        match outcome:
            case Sent(message_id=message_id):
                await self._store.mark_sent(item.id, message_id, now)
                log.info("sent outbox=%d chat=%d message_id=%d", item.id, item.chat_id, message_id)
                return True
            case RetryLater(reason=reason, after_s=after_s, whole_bot=whole_bot):
                if after_s is not None:
                    until = now + timedelta(seconds=after_s)
                    self._next_send_to[item.chat_id] = until
                    if whole_bot:
                        self._paused_until = until
                    await self._store.delay_chat(item.chat_id, until)
                    await self._store.mark_retry(item.id, reason, until)
                elif item.attempts + 1 >= MAX_ATTEMPTS:
                    await self._store.mark_dead(item.id, reason)
                    log.error("giving up outbox=%d chat=%d error=%s", item.id, item.chat_id, reason)
                else:
                    await self._store.mark_retry(item.id, reason, now + retry_delay(item.attempts))
                log.warning(
                    "send deferred outbox=%d chat=%d reason=%s", item.id, item.chat_id, reason
                )
                return False
            case Rejected(reason=reason):
                await self._store.mark_dead(item.id, reason)
                log.warning(
                    "send rejected outbox=%d chat=%d reason=%s", item.id, item.chat_id, reason
                )
                return False
            case Migrated(new_chat_id=new_chat_id):
                moved = await self._store.migrate_chat(item.chat_id, new_chat_id)
                log.warning(
                    "chat migrated old=%d new=%d pending=%d: update the chat id in the config",
                    item.chat_id,
                    new_chat_id,
                    moved,
                )
                return False
        return False

    def _print(self, item: OutboxItem) -> None:
        rule = "─" * 60
        self._console.write(f"{rule}\n{html_to_console(item.text)}\n{rule}\n")
        self._console.flush()
