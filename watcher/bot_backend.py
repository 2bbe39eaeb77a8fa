"""The bot's view of Watcher (`watcher.telegram.backend.BotBackend`), over the store and the
live config. Lives on the orchestration side so that the bot never imports the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from watcher.config import Settings
from watcher.digests import send_digest
from watcher.model import RuleDef, Subscriber
from watcher.status_command import feed_state_name
from watcher.store import Store


class StoreBackend:
    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        *,
        clock: Callable[[], datetime],
        wake_delivery: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._settings = settings  # read at each use: admins, subscribers and allow apply live
        # Fixed at start, as the alerts' and the digests' (a restart applies a new one).
        self._timezone = ZoneInfo(settings().telegram.timezone)
        self._clock = clock
        self._wake_delivery = wake_delivery

    @property
    def timezone(self) -> tzinfo:
        return self._timezone

    def now(self) -> datetime:
        return self._clock()

    def rules(self) -> Sequence[RuleDef]:
        return self._settings().rules

    def is_admin(self, user_id: int) -> bool:
        return user_id in self._settings().telegram.admins

    def may_subscribe(self, chat_id: int) -> bool:
        telegram = self._settings().telegram
        return (
            telegram.subscribers == "open"
            or chat_id in telegram.allow
            or chat_id in telegram.admins
        )

    async def register(self, chat_id: int) -> bool:
        return await self._store.add_subscriber(chat_id, self._clock())

    async def subscriber(self, chat_id: int) -> Subscriber | None:
        return await self._store.subscriber(chat_id)

    async def follow(self, chat_id: int, rule: str) -> bool:
        return await self._store.follow(chat_id, rule, self._clock())

    async def unfollow(self, chat_id: int, rule: str) -> bool:
        return await self._store.unfollow(chat_id, rule)

    async def mute(self, chat_id: int, until: datetime | None) -> None:
        await self._store.set_muted_until(chat_id, until)
        if until is None:
            await self._release(chat_id, "While you were muted")

    async def set_digest(self, chat_id: int, mode: str, at: str | None) -> None:
        await self._store.set_digest(chat_id, mode, at)
        if mode == "off":
            await self._release(chat_id, "Held for your digest")

    async def _release(self, chat_id: int, heading: str) -> None:
        subscriber = await self._store.subscriber(chat_id)
        if subscriber is None or subscriber.holds_alerts(self._clock()):
            return
        if await send_digest(self._store, chat_id, self._clock(), heading):
            self._wake_delivery()

    async def status_text(self) -> str:
        settings = self._settings()
        states = {state.name: state for state in await self._store.feeds()}
        lines: list[str] = []
        counts: dict[str, int] = {}
        for feed in settings.feeds:
            state = states.get(feed.name)
            name = feed_state_name(state, settings.polling.failing_after)
            counts[name] = counts.get(name, 0) + 1
            if name in ("failing", "disabled") and state is not None:
                lines.append(f"{feed.name}: {name} — {state.last_error or '?'}")
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        outbox = await self._store.outbox_counts()
        head = f"{len(settings.feeds)} feeds: {summary or 'none'}"
        tail = f"Outbox: {outbox.get('pending', 0)} pending, {outbox.get('dead', 0)} given up"
        return "\n".join([head, *lines, tail])

    async def stats_text(self) -> str:
        subscribers = await self._store.subscriber_stats()
        outbox = await self._store.outbox_counts()
        entries = await self._store.count_entries()
        return "\n".join(
            [
                f"Subscribers: {subscribers['active']} active, {subscribers['blocked']} blocked "
                f"the bot; {subscribers['follows']} rule follows",
                f"Alerts held for digests: {subscribers['held']}",
                f"Messages: {outbox.get('sent', 0)} sent, {outbox.get('pending', 0)} pending, "
                f"{outbox.get('dead', 0)} given up",
                f"Entries seen: {entries}",
                f"Rules: {len(self._settings().rules)}",
            ]
        )
