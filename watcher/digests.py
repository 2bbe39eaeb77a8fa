"""Digests: alerts held for muted or digest subscribers go out as one message (or as few
as Telegram's length limit allows) when their time comes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta, tzinfo

from watcher.model import Subscriber
from watcher.store import HeldAlert, Store
from watcher.telegram.format import DigestLine, render_digest

log = logging.getLogger(__name__)


def digest_due(subscriber: Subscriber, now: datetime, tz: tzinfo, held_since: datetime) -> bool:
    """PURE: whether `subscriber`'s held alerts, the oldest held at `held_since`, should go
    out at `now`.

    Never while muted. Otherwise when a digest time (hourly: the top of each hour; daily: its
    HH:MM in the operator's time zone) has come since the oldest alert was held. Being a
    state rather than a moment, a digest time the minute job did not see (the daemon was
    down, or muted) is made up for at the next round, and each alert waits for the first
    digest time after it was held. Muted without a digest: once the mute has ended.
    """
    if subscriber.muted_until is not None and subscriber.muted_until > now:
        return False
    if subscriber.digest == "off":
        return True
    last = last_digest_time(subscriber, now, tz)
    return last is not None and held_since <= last


def last_digest_time(subscriber: Subscriber, now: datetime, tz: tzinfo) -> datetime | None:
    """PURE: the latest digest time of `subscriber` at or before `now`.

    A daily time the spring change of clocks skips comes with the first minute after it;
    one the autumn change repeats, the first time only: once a day either way."""
    local = now.astimezone(tz)
    if subscriber.digest == "hourly":
        return local.replace(minute=0, second=0, microsecond=0)
    if subscriber.digest != "daily" or subscriber.digest_time is None:
        return None
    hour, minute = (int(part) for part in subscriber.digest_time.split(":"))
    today = _wall_clock_instant(datetime.combine(local.date(), time(hour, minute)), tz)
    if today <= now:
        return today
    return _wall_clock_instant(
        datetime.combine(local.date() - timedelta(days=1), time(hour, minute)), tz
    )


def _wall_clock_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The first instant whose clock in `tz` shows `wall` (naive), or, if the clocks skip
    it, the first instant after the skip."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=1 reads the wall clock with the offset after the change, landing
    # before the change; from there the first whole minute whose clock passed `wall`.
    moment = wall.replace(tzinfo=tz, fold=1).astimezone(UTC).replace(second=0, microsecond=0)
    while moment < first and moment.astimezone(tz).replace(tzinfo=None) < wall:
        moment += timedelta(minutes=1)
    return moment


# Reads of what is held, should other releases keep taking some of it meanwhile.
_RELEASE_ATTEMPTS = 3


def digest_lines(held: Sequence[HeldAlert]) -> list[DigestLine]:
    """PURE: one line per story and outlet: the first entry held about a story, with the
    other outlets that reported it named after it and every rule that hit. An outlet's next
    item about a story it is named in already is a line of its own (a development, as it
    would be a message of its own), and so is an entry without a story (stories off)."""
    lines: list[DigestLine] = []
    by_story: dict[int, int] = {}  # story → the index of its latest line
    for alert in held:
        at = by_story.get(alert.story_id) if alert.story_id is not None else None
        if at is None or alert.feed in (lines[at].feed, *lines[at].also):
            if alert.story_id is not None:
                by_story[alert.story_id] = len(lines)
            lines.append(DigestLine(alert.title, alert.link, alert.feed, alert.rules))
            continue
        line = lines[at]
        rules = tuple(dict.fromkeys((*line.rules, *alert.rules)))
        lines[at] = replace(line, also=(*line.also, alert.feed), rules=rules)
    return lines


async def send_digest(store: Store, chat_id: int, now: datetime, heading: str) -> int:
    """Move a chat's held alerts into the outbox as digest messages; return how many
    alerts they carry."""
    for _ in range(_RELEASE_ATTEMPTS):
        held = await store.held_alerts(chat_id)
        if not held:
            return 0
        lines = digest_lines(held)
        alerts = f"{len(lines)} alert" + ("s" if len(lines) != 1 else "")
        messages = render_digest(lines, f"{heading} ({alerts})")
        if await store.release_held(chat_id, [h.entry_id for h in held], messages, now):
            log.info(
                "digest queued chat=%d alerts=%d messages=%d", chat_id, len(held), len(messages)
            )
            return len(held)
        # Another release (the minute job and an /unmute at once) took some: read again.
    return 0


async def send_due_digests(store: Store, now: datetime, tz: tzinfo) -> int:
    """The minute job: every subscriber whose digest is due and who has alerts held."""
    waiting = await store.oldest_held_alerts()
    if not waiting:
        return 0
    subscribers: Sequence[Subscriber] = await store.subscribers()
    sent = 0
    for subscriber in subscribers:
        held_since = waiting.get(subscriber.chat_id)
        if held_since is not None and digest_due(subscriber, now, tz, held_since):
            heading = "Digest" if subscriber.digest != "off" else "While you were muted"
            sent += await send_digest(store, subscriber.chat_id, now, heading)
    return sent
