"""Draining the outbox: each due row goes to Telegram (or the console) and the outcome is
written back. Rows are marked sent only after Telegram accepted them: delivery is at least
once, and only a message in flight when the process dies can arrive twice.

Telegram's limits are kept here rather than discovered through 429s: about one message a
second to a private chat, 20 a minute to a group or channel (negative ids), 30 a second
overall. Different chats are served concurrently; one chat's rows go strictly in order,
one at a time.

An edit row (a message edited to name another outlet of its story) takes its turn in its
chat's order like any row, and the message it edits, queued before it, has had its turn: if
that message was sent, the edit goes out under the same limits; if it was given up, or the
person deleted it, the edit is dropped (settled, not given up: there is nothing to edit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TextIO

from aiolimiter import AsyncLimiter

from watcher.errors import ChatOnHold
from watcher.metrics import Metrics, SendOutcome
from watcher.model import CONSOLE_CHAT, OutboxItem
from watcher.store import Store
from watcher.telegram.format import html_to_console, render_notice
from watcher.telegram.send import (
    Edited,
    EditGone,
    Migrated,
    Rejected,
    RetryLater,
    Sent,
    TelegramSender,
)

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = timedelta(hours=1)
REPLY_WAIT_S = 3.0  # see Delivery.reply_slot
_CHAT_LIMITERS_KEPT = 1024  # then idle chats' limiters are forgotten
_IDLE_WAIT_S = 5.0
_BATCH = 500
# How long a chat waits after its delivery failed for a reason that is not Telegram's answer.
_FAULT_WAIT_S = 60


@dataclass(frozen=True, slots=True)
class Limits:
    """Telegram's limits as leaky buckets, a few percent under the published figures: our
    bucket drains when a request leaves, Telegram's when it arrives, and network jitter
    between the two must not turn into 429s."""

    overall_per_s: float = 29.0  # Telegram: 30/s
    overall_burst: float = 5.0  # a smooth flow: bunched requests are what trips the limit
    private_per_period: float = 1.0  # Telegram: about 1/s per private chat
    private_period_s: float = 1.05
    group_per_period: float = 19.0  # Telegram: 20/min per group or channel
    group_period_s: float = 60.0
    # Sends under way at once. A message in flight when the process is killed may arrive
    # twice (Telegram may have accepted it before the row was marked sent), so this is also
    # the most duplicates a crash can cause. One suffices for 29/s when the Bot API answers
    # within ~30 ms; raise it for slower links.
    max_in_flight: int = 1
    # The bot's replies to commands, beside the alerts' 29/s (Telegram: 30/s in all).
    replies_per_s: float = 1.0


def retry_delay(attempts: int, ceiling: timedelta = MAX_RETRY_DELAY) -> timedelta:
    """Exponential backoff for transient failures: 2 s, 4 s, … up to `ceiling`."""
    return min(timedelta(seconds=2 ** min(attempts + 1, 20)), ceiling)


class Delivery:
    def __init__(
        self,
        store: Store,
        telegram: TelegramSender | None,
        *,
        clock: Callable[[], datetime],
        console: TextIO | None = None,
        limits: Limits | None = None,
        retry_for: timedelta = timedelta(hours=24),
        max_retry_delay: timedelta = MAX_RETRY_DELAY,
        admins: Sequence[int] = (),
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._telegram = telegram
        self._clock = clock
        self._console = console or sys.stdout
        self._limits = limits or Limits()
        self._retry_for = retry_for
        self._max_retry_delay = max_retry_delay
        self._admins = tuple(admins)
        self._wake = asyncio.Event()
        self._overall = AsyncLimiter(
            self._limits.overall_burst, self._limits.overall_burst / self._limits.overall_per_s
        )
        self._in_flight = asyncio.Semaphore(self._limits.max_in_flight)
        self._replies = AsyncLimiter(self._limits.replies_per_s, 1.0)
        self._chat_limiters: dict[int, AsyncLimiter] = {}
        self._held_until: dict[int, datetime] = {}  # chats Telegram told to wait
        self._paused_until: datetime | None = None  # every chat waits
        self._pause_reason = ""  # why: the bot's token was rejected
        self._busy_chats: set[int] = set()
        # Rows Telegram took whose sending the store failed to record (outbox id → message
        # id): sending one again would be a duplicate, so only the record is tried again.
        self._unrecorded: dict[int, int] = {}
        self._chat_tasks: set[asyncio.Task[int]] = set()

    def wake(self) -> None:
        """New rows were queued: look now rather than at the next idle check."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; the caller bounds how long sends in progress may
        take to finish (cancelling is safe: a row is marked sent only after Telegram
        accepted it)."""
        try:
            while not stop.is_set():
                try:
                    await self._start_round(stop)
                except Exception:
                    log.exception("delivery round failed; retrying")
                wait = await self._seconds_until_next()
                self._wake.clear()
                waiters = [
                    asyncio.ensure_future(self._wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                _, pending = await asyncio.wait(
                    waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in pending:
                    waiter.cancel()
            if self._chat_tasks:
                await asyncio.wait(self._chat_tasks)
        finally:
            for task in self._chat_tasks:
                task.cancel()

    async def drain(self, stop: asyncio.Event | None = None) -> int:
        """Send every row that is due now and wait for it; return how many were delivered.
        (The daemon uses `run`, which does not wait for slow chats.)"""
        tasks = await self._start_round(stop)
        return sum(await asyncio.gather(*tasks)) if tasks else 0

    async def _seconds_until_next(self) -> float:
        # Chats being served are left out: their tasks take their rows in turn, and a
        # finishing task wakes the loop.
        only = None if self._telegram is not None else [CONSOLE_CHAT]
        due = await self._store.next_outbox_attempt(chat_ids=only, exclude_chats=self._busy_chats)
        candidates = [_IDLE_WAIT_S]
        now = self._clock()
        if due is not None:
            candidates.append((due - now).total_seconds())
        if self._paused_until is not None:
            candidates.append((self._paused_until - now).total_seconds())
        return max(0.05, min(candidates))

    async def _start_round(self, stop: asyncio.Event | None) -> list[asyncio.Task[int]]:
        """Start one task per chat that has due rows and none running yet."""
        now = self._clock()
        if self._paused_until is not None:
            if now < self._paused_until:
                return []
            self._paused_until = None
        only = None if self._telegram is not None else [CONSOLE_CHAT]
        # Chats busy when the query starts are skipped even if their task ends while it
        # runs: the rows read may predate that task's last "sent", and would go twice.
        busy = set(self._busy_chats)
        items = await self._store.due_outbox(now, limit=_BATCH, chat_ids=only, exclude_chats=busy)
        edits = await self._store.edits_among([item.id for item in items]) if items else {}
        by_chat: dict[int, list[OutboxItem]] = {}
        for item in items:
            by_chat.setdefault(item.chat_id, []).append(item)
        started: list[asyncio.Task[int]] = []
        for chat, chat_items in by_chat.items():
            if chat in busy or chat in self._busy_chats or self._held(chat, now):
                continue
            self._busy_chats.add(chat)
            task = asyncio.create_task(self._deliver_chat(chat, chat_items, edits, stop))
            self._chat_tasks.add(task)
            task.add_done_callback(self._chat_tasks.discard)
            started.append(task)
        return started

    @contextlib.asynccontextmanager
    async def reply_slot(self, chat_id: int) -> AsyncIterator[None]:
        """A turn for a message that is not in the outbox (the bot's replies to commands)
        under this chat's limit, which Telegram counts with the chat's alerts, and a small
        overall budget of its own: in the alerts' queue, a reply would wait behind a whole
        round of chats, and the bot, which answers one update at a time, with it. Waits at
        most `REPLY_WAIT_S`: a reply later than that is worse than a rare 429.

        A chat Telegram told to wait (a 429's retry_after) is waited for first, if the wait
        ends within `REPLY_WAIT_S`, and the turns after it; past that, raises ChatOnHold: a
        request inside the pause would only draw another 429, and hold the bot's other
        chats while it waits."""
        hold_s, reason = self._hold(chat_id)
        if hold_s > REPLY_WAIT_S:
            log.debug("reply not sent chat=%d: on hold for %.0f s more", chat_id, hold_s)
            raise ChatOnHold(chat_id, hold_s, reason)
        if hold_s > 0:
            await asyncio.sleep(hold_s)  # outside the timeout: the turns are still to come
        try:
            async with asyncio.timeout(REPLY_WAIT_S):
                await self._replies.acquire()
                # Last: the chat's turn must be taken just before the send it is for.
                await self._chat_limiter(chat_id).acquire()
        except TimeoutError:
            log.debug("reply sent without waiting longer for its turn chat=%d", chat_id)
        yield

    def _hold(self, chat_id: int) -> tuple[float, str]:
        """Seconds until the later of this chat's hold (Telegram's last retry_after for it)
        and the whole bot's pause ends, and the reason of that one ("" for a retry_after)."""
        chat_end = self._held_until.get(chat_id)
        if self._paused_until is not None and (chat_end is None or self._paused_until >= chat_end):
            end, reason = self._paused_until, self._pause_reason
        elif chat_end is not None:
            end, reason = chat_end, ""
        else:
            return 0.0, ""
        return max(0.0, (end - self._clock()).total_seconds()), reason

    def _held(self, chat_id: int, now: datetime) -> bool:
        until = self._held_until.get(chat_id)
        if until is None:
            return False
        if now >= until:
            del self._held_until[chat_id]
            return False
        return True

    def _chat_limiter(self, chat_id: int) -> AsyncLimiter:
        limiter = self._chat_limiters.get(chat_id)
        if limiter is None:
            if chat_id < 0:
                rate, period = self._limits.group_per_period, self._limits.group_period_s
            else:
                rate, period = self._limits.private_per_period, self._limits.private_period_s
            if len(self._chat_limiters) >= _CHAT_LIMITERS_KEPT:
                # Forget the chats with nothing in their bucket: a fresh limiter is the same.
                self._chat_limiters = {
                    chat: kept
                    for chat, kept in self._chat_limiters.items()
                    if not kept.has_capacity(kept.max_rate)
                }
            limiter = self._chat_limiters[chat_id] = AsyncLimiter(rate, period)
        return limiter

    async def _deliver_chat(
        self,
        chat_id: int,
        items: Sequence[OutboxItem],
        edits: Mapping[int, int],
        stop: asyncio.Event | None,
    ) -> int:
        """One chat's due rows, oldest first, stopping at the first that is not delivered
        so that nothing overtakes it. Waiting for the chat's own limit happens here, so a
        slow chat holds only itself."""
        delivered = 0
        edits = dict(edits)  # an edit sent as a message becomes the one later edits edit
        try:
            for position, item in enumerate(items):
                if (stop is not None and stop.is_set()) or self._paused_until is not None:
                    break
                if chat_id == CONSOLE_CHAT:
                    self._print(item, edit=item.id in edits)
                    await self._store.mark_sent(item.id, None, self._clock())
                    if self._metrics is not None:
                        self._metrics.observe_console_alert()
                    delivered += 1
                    continue
                target_id = edits.get(item.id)
                if target_id is not None:
                    message_id = await self._edit_target(item, target_id)
                    if message_id == "wait":
                        break  # the message it edits has not had its turn yet
                    if message_id == "dropped":
                        delivered += 1
                        continue
                    if message_id == "send":
                        # The chat never got the message: this row is its only news of
                        # the story, and its text (that message and "Also: …") goes out
                        # as a message of its own, which the chat's later edits of the
                        # story edit (the store counts their outlets as that message's).
                        async with self._chat_limiter(chat_id), self._overall, self._in_flight:
                            if not await self._deliver(item, instead_of=target_id):
                                break
                        for later, target in edits.items():
                            if target == target_id and later != item.id:
                                edits[later] = item.id
                        delivered += 1
                        continue
                    # Each edit's text names every outlet of the story so far: of the edits
                    # of a message the chat has, due now, only the latest need go (one call,
                    # where a group allows 20 a minute); the others are carried by it.
                    superseded = any(
                        edits.get(later.id) == target_id for later in items[position + 1 :]
                    )
                    if superseded and item.id not in self._unrecorded:
                        await self._store.drop_edit(
                            item.id,
                            "a later edit of the same message names its outlet",
                            self._clock(),
                        )
                        self._observe("edit_superseded")
                        delivered += 1
                        continue
                    async with self._chat_limiter(chat_id), self._overall, self._in_flight:
                        if not await self._deliver_edit(item, message_id):
                            break
                    delivered += 1
                    continue
                async with self._chat_limiter(chat_id), self._overall, self._in_flight:
                    if not await self._deliver(item):
                        break
                delivered += 1
        except Exception:
            # A fault of ours or the store's: the round this task's end starts would send
            # the chat's rows again at once. The chat waits a while instead.
            log.exception(
                "delivery to chat %d failed; trying again in %d s", chat_id, _FAULT_WAIT_S
            )
            until = self._clock() + timedelta(seconds=_FAULT_WAIT_S)
            self._held_until[chat_id] = until
            try:
                await self._store.delay_chat(chat_id, until)
            except Exception:
                log.exception("could not delay chat %d", chat_id)
        finally:
            self._busy_chats.discard(chat_id)
            self.wake()  # its later rows, if any, can go now
        return delivered

    async def _deliver(self, item: OutboxItem, *, instead_of: int | None = None) -> bool:
        """Send a row as a message (`instead_of`: see `Store.mark_sent`)."""
        assert self._telegram is not None
        if item.id in self._unrecorded:
            await self._store.mark_sent(
                item.id, self._unrecorded[item.id], self._clock(), instead_of=instead_of
            )
            del self._unrecorded[item.id]
            log.info("recorded outbox=%d as sent at last", item.id)
            return True
        outcome = await self._telegram.send(item.chat_id, item.text)
        now = self._clock()
        match outcome:
            case Sent(message_id=message_id, plain_text=plain_text):
                self._unrecorded[item.id] = message_id
                await self._store.mark_sent(item.id, message_id, now, instead_of=instead_of)
                del self._unrecorded[item.id]
                self._observe("sent_plain_text" if plain_text else "sent")
                # One line a message is too many at INFO (2,000 subscribers: tens of thousands
                # a day); watcher_telegram_sends_total counts them.
                log.debug("sent outbox=%d chat=%d message_id=%d", item.id, item.chat_id, message_id)
                return True
            case RetryLater() | Rejected() | Migrated():
                await self._not_delivered(item, outcome, now)
        return False

    async def _not_delivered(
        self, item: OutboxItem, outcome: RetryLater | Rejected | Migrated, now: datetime
    ) -> None:
        """What a send and an edit do alike when Telegram did not take them."""
        match outcome:
            case RetryLater(reason=reason, after_s=after_s, whole_bot=whole_bot):
                await self._retry_later(item, reason, after_s, whole_bot, now)
            case Rejected(reason=reason):
                await self._rejected(item, reason)
            case Migrated(new_chat_id=new_chat_id):
                await self._migrated(item, new_chat_id, now)

    async def _migrated(self, item: OutboxItem, new_chat_id: int, now: datetime) -> None:
        # The new id replaces the old one everywhere: pending rows, subscriptions, and
        # (through the migration table) rule chats from the config.
        await self._store.record_chat_migration(item.chat_id, new_chat_id, now)
        self._observe("migrated")
        log.warning(
            "chat migrated old=%d new=%d: update the chat id in the config",
            item.chat_id,
            new_chat_id,
        )
        self.wake()  # resend at the new id without waiting for the idle check

    async def _edit_target(
        self, item: OutboxItem, target_id: int
    ) -> int | Literal["wait", "dropped", "send"]:
        """The Telegram id of the message an edit row edits; "wait" while that message
        waits for its turn; "send" when the chat never got it (given up, or sent to the
        chat's id before a migration), so the edit must go out as a message; "dropped"
        when the message is no longer recorded (pruned: the chat had it long ago)."""
        target = await self._store.edit_target(target_id)
        if target is not None and target.status == "pending" and target.chat_id == item.chat_id:
            return "wait"
        if target is None:
            await self._drop_edit(item, "the message it edits is no longer recorded")
            return "dropped"
        if target.chat_id != item.chat_id or target.status != "sent" or target.message_id is None:
            log.info(
                "edit sent as a message outbox=%d chat=%d: the message it edits never "
                "reached the chat",
                item.id,
                item.chat_id,
            )
            return "send"
        return int(target.message_id)

    async def _drop_edit(self, item: OutboxItem, reason: str) -> None:
        await self._store.drop_edit(item.id, reason, self._clock())
        self._observe("edit_dropped")
        log.info("edit dropped outbox=%d chat=%d reason=%s", item.id, item.chat_id, reason)

    async def _deliver_edit(self, item: OutboxItem, message_id: int) -> bool:
        assert self._telegram is not None
        outcome = await self._telegram.edit(item.chat_id, message_id, item.text)
        now = self._clock()
        match outcome:
            case Edited(unchanged=unchanged, plain_text=plain_text):
                await self._store.mark_sent(item.id, message_id, now)
                self._observe("edited")
                log.debug(
                    "edited outbox=%d chat=%d message_id=%d%s%s",
                    item.id,
                    item.chat_id,
                    message_id,
                    " unchanged=1" if unchanged else "",
                    " plain_text=1" if plain_text else "",
                )
                return True
            case EditGone(reason=reason):
                await self._drop_edit(item, reason)
                return True
            case RetryLater() | Rejected() | Migrated():
                await self._not_delivered(item, outcome, now)
        return False

    async def _retry_later(
        self,
        item: OutboxItem,
        reason: str,
        after_s: float | None,
        whole_bot: bool,
        now: datetime,
    ) -> None:
        age = now - item.created_at if item.created_at is not None else timedelta(0)
        if after_s is None and age >= self._retry_for:
            await self._store.mark_dead(item.id, reason)
            self._observe("dead")
            log.error(
                "giving up outbox=%d chat=%d after %s error=%s",
                item.id,
                item.chat_id,
                age,
                reason,
            )
            await self.notify_admins(
                f"An alert to chat {item.chat_id} could not be delivered for {age} and was "
                f"given up: {reason}",
                about_chat=item.chat_id,
            )
            return
        if after_s is not None:
            until = now + timedelta(seconds=after_s)
            self._held_until[item.chat_id] = until
            if whole_bot:
                self._paused_until, self._pause_reason = until, reason
            await self._store.delay_chat(item.chat_id, until)
            await self._store.mark_retry(item.id, reason, until)
            # Telegram's retry_after comes with a 429; only a rejected token stops the bot.
            self._observe("bot_paused" if whole_bot else "rate_limited", retry_after_s=after_s)
        else:
            delay = retry_delay(item.attempts, self._max_retry_delay)
            await self._store.mark_retry(item.id, reason, now + delay)
            self._observe("retry")
        log.warning("send deferred outbox=%d chat=%d reason=%s", item.id, item.chat_id, reason)

    async def _rejected(self, item: OutboxItem, reason: str) -> None:
        await self._store.mark_dead(item.id, reason)
        blocked = "forbidden" in reason.lower()
        self._observe("blocked" if blocked else "rejected")
        if blocked:
            # Blocked or removed: nothing queued for this chat will ever get through.
            dropped = await self._store.drop_pending(item.chat_id, reason)
            was_subscriber = await self._store.deactivate_subscriber(item.chat_id)
            log.warning(
                "chat refuses the bot chat=%d dropped=%d subscriber=%s reason=%s",
                item.chat_id,
                dropped + 1,
                was_subscriber,
                reason,
            )
            if was_subscriber and item.chat_id > 0:
                return  # a person who blocked the bot: their choice, not the operator's problem
            await self.notify_admins(
                f"Chat {item.chat_id} refuses the bot ({reason}); {dropped + 1} alert(s) "
                "dropped. Remove it from the config or add the bot back.",
                about_chat=item.chat_id,
            )
        else:
            log.warning("send rejected outbox=%d chat=%d reason=%s", item.id, item.chat_id, reason)

    def _observe(self, outcome: SendOutcome, *, retry_after_s: float | None = None) -> None:
        if self._metrics is not None:
            self._metrics.observe_send(outcome, retry_after_s=retry_after_s)

    def clock_stepped_back(self, step: timedelta) -> None:
        """The wall clock went back `step`: holds Telegram asked for end as much earlier
        (the store moves the rows' own times back)."""
        self._held_until = {chat: until - step for chat, until in self._held_until.items()}
        if self._paused_until is not None:
            self._paused_until -= step
        self.wake()

    def set_admins(self, admins: Sequence[int]) -> None:
        """The chats notices go to from now on (a reload changed `[telegram] admins`)."""
        self._admins = tuple(admins)

    async def notify_admins(self, text: str, *, about_chat: int | None = None) -> None:
        """Queue a notice about Watcher itself to every admin (none without Telegram).
        Never to the chat it is about: a notice that cannot be delivered must not beget
        another notice."""
        admins = [admin for admin in self._admins if admin != about_chat]
        if self._telegram is None or not admins:
            return
        try:
            await self._store.enqueue_notices(admins, render_notice(text), self._clock())
        except Exception:
            log.exception("could not queue a notice to the admins")
            return
        self.wake()

    def _print(self, item: OutboxItem, *, edit: bool = False) -> None:
        rule = "─" * 60
        # A terminal cannot edit what it printed: the alert comes again, marked.
        head = "(edited: another source reported this story)\n" if edit else ""
        self._console.write(f"{rule}\n{head}{html_to_console(item.text)}\n{rule}\n")
        self._console.flush()
