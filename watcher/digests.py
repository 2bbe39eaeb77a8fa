"""Digests: alerts held for muted or digest subscribers go out as one message (or as few
as Telegram's length limit allows) when their time comes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo

from watcher.model import Subscriber
from watcher.store import Store
from watcher.telegram.format import DigestLine, render_digest

log = logging.getLogger(__name__)


def digest_due(subscriber: Subscriber, now: datetime, tz: tzinfo) -> bool:
    """PURE: whether `subscriber`'s held alerts should go out in the minute of `now` (the
    minute job runs once a minute).

    Never while muted. hourly: at the top of every hour; daily: in the minute its HH:MM in
    the operator's time zone is reached, once a day even across a change of clocks (a time
    the spring change skips comes with the first minute after it; one the autumn change
    repeats, the first time only); muted without a digest: once the mute has ended.
    """
    if subscriber.muted_until is not None and subscriber.muted_until > now:
        return False
    local = now.astimezone(tz)
    if subscriber.digest == "hourly":
        return local.minute == 0
    if subscriber.digest == "daily":
        if subscriber.digest_time is None or local.fold:
            return False
        hour, minute = (int(part) for part in subscriber.digest_time.split(":"))
        before = (now - timedelta(minutes=1)).astimezone(tz)
        if before.date() != local.date():  # midnight: the new day's times up to now
            return (hour, minute) <= (local.hour, local.minute)
        return (before.hour, before.minute) < (hour, minute) <= (local.hour, local.minute)
    return True


# Reads of what is held, should other releases keep taking some of it meanwhile.
_RELEASE_ATTEMPTS = 3


async def send_digest(store: Store, chat_id: int, now: datetime, heading: str) -> int:
    """Move a chat's held alerts into the outbox as digest messages; return how many
    alerts they carry."""
    for _ in range(_RELEASE_ATTEMPTS):
        held = await store.held_alerts(chat_id)
        if not held:
            return 0
        lines = [DigestLine(h.title, h.link, h.feed, h.rules) for h in held]
        messages = render_digest(lines, f"{heading} ({len(held)} alerts)")
        if await store.release_held(chat_id, [h.entry_id for h in held], messages, now):
            log.info(
                "digest queued chat=%d alerts=%d messages=%d", chat_id, len(held), len(messages)
            )
            return len(held)
        # Another release (the minute job and an /unmute at once) took some: read again.
    return 0


async def send_due_digests(store: Store, now: datetime, tz: tzinfo) -> int:
    """The minute job: every subscriber whose digest is due and who has alerts held."""
    waiting = set(await store.chats_with_held_alerts())
    if not waiting:
        return 0
    subscribers: Sequence[Subscriber] = await store.subscribers()
    sent = 0
    for subscriber in subscribers:
        if subscriber.chat_id in waiting and digest_due(subscriber, now, tz):
            heading = "Digest" if subscriber.digest != "off" else "While you were muted"
            sent += await send_digest(store, subscriber.chat_id, now, heading)
    return sent
