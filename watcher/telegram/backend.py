"""What the bot needs from the rest of Watcher, as a protocol: the bot (an adapter) never
imports the store; the daemon hands it an object with these methods
(`watcher.bot_backend.StoreBackend`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Protocol

from watcher.model import RuleDef, Subscriber


class BotBackend(Protocol):
    @property
    def timezone(self) -> tzinfo:
        """The operator's time zone: daily digest times and times shown are in it."""

    def now(self) -> datetime: ...

    def rules(self) -> Sequence[RuleDef]:
        """The rules as configured now (they change on reload)."""

    def is_admin(self, user_id: int) -> bool: ...

    def may_subscribe(self, chat_id: int) -> bool:
        """`[telegram] subscribers = "open"`, or the chat is in `allow` (or an admin)."""

    async def register(self, chat_id: int) -> bool:
        """/start: make the chat a subscriber (again); returns whether it is new."""

    async def subscriber(self, chat_id: int) -> Subscriber | None: ...

    async def follow(self, chat_id: int, rule: str) -> bool:
        """Returns whether the chat did not follow `rule` before."""

    async def unfollow(self, chat_id: int, rule: str) -> bool:
        """Returns whether the chat followed `rule`."""

    async def mute(self, chat_id: int, until: datetime | None) -> None:
        """None unmutes: alerts held meanwhile go out as one digest."""

    async def set_digest(self, chat_id: int, mode: str, at: str | None) -> None:
        """mode: "off", "hourly" or "daily" (then `at` is "HH:MM")."""

    async def status_text(self) -> str:
        """Feed health for admins, plain text."""

    async def stats_text(self) -> str:
        """Subscribers, alerts and deliveries for admins, plain text."""
