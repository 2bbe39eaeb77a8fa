"""Subscribers, the rules they follow, alerts held for their digests, and chats Telegram
moved. Mixed into `Store`; every write goes through its one write lock."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from watcher.model import Alert, Subscriber
from watcher.store.timestamps import from_db as _dt
from watcher.store.timestamps import to_db as _ts

if TYPE_CHECKING:
    import sqlite3

    from watcher.store.sqlite import WriteTransaction


# The minute job's question, answered by the held_alerts_waiting index (schema v17).
OLDEST_HELD_SQL = """SELECT chat_id, min(created_at) FROM held_alerts
    WHERE released_at IS NULL GROUP BY chat_id"""


@dataclass(frozen=True, slots=True)
class HeldAlert:
    chat_id: int
    entry_id: int
    rules: tuple[str, ...]
    title: str
    link: str | None
    feed: str
    created_at: datetime
    story_id: int | None = None  # the story the entry joined (None: stories off)


class SubscriberQueries:
    """The subscriber side of the store (see `Store`)."""

    async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        raise NotImplementedError  # provided by Store

    def write(self) -> AbstractAsyncContextManager[WriteTransaction]:
        raise NotImplementedError  # provided by Store

    async def add_subscriber(self, chat_id: int, now: datetime) -> bool:
        """Register a chat (on /start); reactivate one that had blocked the bot. Returns
        whether it is new."""
        async with self.write() as tx:
            cursor = await tx.db.execute(
                "INSERT OR IGNORE INTO subscribers (chat_id, created_at) VALUES (?, ?)",
                (chat_id, _ts(now)),
            )
            new = cursor.rowcount > 0
            if not new:
                await tx.db.execute(
                    "UPDATE subscribers SET active = 1 WHERE chat_id = ?", (chat_id,)
                )
            return new

    async def subscriber(self, chat_id: int) -> Subscriber | None:
        rows = await self._fetchall(f"{_SUBSCRIBER_SELECT} WHERE s.chat_id = ?", (chat_id,))
        return _subscriber(rows[0]) if rows else None

    async def subscribers(self, *, active_only: bool = True) -> list[Subscriber]:
        where = "WHERE s.active = 1" if active_only else ""
        rows = await self._fetchall(f"{_SUBSCRIBER_SELECT} {where} ORDER BY s.chat_id", ())
        return [_subscriber(row) for row in rows]

    async def subscribers_of(self, rules: Collection[str]) -> dict[str, list[Subscriber]]:
        """Active subscribers following each of `rules`."""
        if not rules:
            return {}
        marks = ",".join("?" * len(rules))
        rows = await self._fetchall(
            f"""{_SUBSCRIBER_SELECT}
                WHERE s.active = 1 AND s.chat_id IN
                      (SELECT chat_id FROM subscriptions WHERE rule IN ({marks}))""",
            tuple(rules),
        )
        wanted = set(rules)
        found: dict[str, list[Subscriber]] = {}
        for subscriber in map(_subscriber, rows):
            for rule in subscriber.rules:
                if rule in wanted:
                    found.setdefault(rule, []).append(subscriber)
        return found

    async def follow_renamed_rules(self, names: Collection[str]) -> dict[str, str]:
        """Carry subscriptions over to rules renamed in case only ("Lachin" to "lachin"):
        names are unique ignoring case, and followers must not silently lose a rule to a
        capital letter. Returns old name → new name of what moved."""
        current = {name.casefold(): name for name in names}
        rows = await self._fetchall("SELECT DISTINCT rule FROM subscriptions", ())
        moved = {
            str(row[0]): current[str(row[0]).casefold()]
            for row in rows
            if str(row[0]) not in names and str(row[0]).casefold() in current
        }
        if moved:
            async with self.write() as tx:
                for old, new in moved.items():
                    await tx.db.execute(
                        "UPDATE OR IGNORE subscriptions SET rule = ? WHERE rule = ?", (new, old)
                    )
                    await tx.db.execute("DELETE FROM subscriptions WHERE rule = ?", (old,))
        return moved

    async def followed_elsewhere(self, names: Collection[str]) -> dict[str, int]:
        """Rules chats follow that are not among `names` (removed or renamed in the
        config), with how many active chats follow each."""
        rows = await self._fetchall(
            """SELECT rule, count(*) FROM subscriptions
               JOIN subscribers USING (chat_id) WHERE active = 1 GROUP BY rule""",
            (),
        )
        return {str(rule): int(count) for rule, count in rows if rule not in names}

    async def follow(self, chat_id: int, rule: str, now: datetime) -> bool:
        """Returns whether the chat did not follow the rule before."""
        async with self.write() as tx:
            await tx.db.execute(
                "INSERT OR IGNORE INTO subscribers (chat_id, created_at) VALUES (?, ?)",
                (chat_id, _ts(now)),
            )
            cursor = await tx.db.execute(
                "INSERT OR IGNORE INTO subscriptions (chat_id, rule, created_at) VALUES (?, ?, ?)",
                (chat_id, rule, _ts(now)),
            )
            return cursor.rowcount > 0

    async def unfollow(self, chat_id: int, rule: str) -> bool:
        """Returns whether the chat followed the rule."""
        async with self.write() as tx:
            cursor = await tx.db.execute(
                "DELETE FROM subscriptions WHERE chat_id = ? AND rule = ?", (chat_id, rule)
            )
            return cursor.rowcount > 0

    async def set_muted_until(self, chat_id: int, until: datetime | None) -> None:
        async with self.write() as tx:
            await tx.db.execute(
                "UPDATE subscribers SET muted_until = ? WHERE chat_id = ?", (_ts(until), chat_id)
            )

    async def set_digest(self, chat_id: int, mode: str, at: str | None) -> None:
        async with self.write() as tx:
            await tx.db.execute(
                "UPDATE subscribers SET digest = ?, digest_time = ? WHERE chat_id = ?",
                (mode, at if mode == "daily" else None, chat_id),
            )

    async def deactivate_subscriber(self, chat_id: int) -> bool:
        """The chat blocked the bot: stop sending; returns whether it was a subscriber."""
        async with self.write() as tx:
            cursor = await tx.db.execute(
                "UPDATE subscribers SET active = 0 WHERE chat_id = ?", (chat_id,)
            )
            await tx.db.execute(
                "DELETE FROM held_alerts WHERE chat_id = ? AND released_at IS NULL", (chat_id,)
            )
            return cursor.rowcount > 0

    async def record_chat_migration(self, old: int, new: int, now: datetime) -> None:
        """Telegram moved a chat: the new id replaces the old one everywhere."""
        async with self.write() as tx:
            await tx.db.execute(
                """INSERT INTO chat_migrations (old_chat_id, new_chat_id, migrated_at)
                   VALUES (?, ?, ?) ON CONFLICT (old_chat_id) DO UPDATE
                   SET new_chat_id = excluded.new_chat_id""",
                (old, new, _ts(now)),
            )
            # Chains: anything that pointed at `old` now points at `new`.
            await tx.db.execute(
                "UPDATE chat_migrations SET new_chat_id = ? WHERE new_chat_id = ?", (new, old)
            )
            # The subscriber first: subscriptions refer to it. Where the new id has one of
            # its own already, that one stands.
            await tx.db.execute(
                """INSERT OR IGNORE INTO subscribers
                       (chat_id, active, muted_until, digest, digest_time, created_at)
                   SELECT ?, active, muted_until, digest, digest_time, created_at
                   FROM subscribers WHERE chat_id = ?""",
                (new, old),
            )
            for table in ("subscriptions", "held_alerts", "versions_told"):
                await tx.db.execute(
                    f"UPDATE OR IGNORE {table} SET chat_id = ? WHERE chat_id = ?", (new, old)
                )
            await tx.db.execute(
                """UPDATE OR IGNORE outbox SET chat_id = ?
                   WHERE status = 'pending' AND chat_id = ?""",
                (new, old),
            )
            # What could not move clashes with what the new id has already (its own
            # subscriber, subscriptions, alerts for the same entries): the new id's stands,
            # and the old id's would be sent to a chat that is gone, again and again.
            for table in ("subscriptions", "held_alerts", "versions_told", "subscribers"):
                await tx.db.execute(f"DELETE FROM {table} WHERE chat_id = ?", (old,))
            await tx.db.execute(
                """UPDATE outbox SET status = 'dead', last_error = ?
                   WHERE status = 'pending' AND chat_id = ?""",
                (f"the chat moved to {new}, which has this alert already", old),
            )

    async def chat_migrations(self) -> dict[int, int]:
        rows = await self._fetchall("SELECT old_chat_id, new_chat_id FROM chat_migrations", ())
        return {int(old): int(new) for old, new in rows}

    async def held_alerts(self, chat_id: int) -> list[HeldAlert]:
        rows = await self._fetchall(
            """SELECT h.chat_id, h.entry_id, h.rules, e.title, e.link, f.name, h.created_at,
                      e.story_id
               FROM held_alerts h JOIN entries e ON e.id = h.entry_id
               JOIN feeds f ON f.id = e.feed_id
               WHERE h.chat_id = ? AND h.released_at IS NULL
               ORDER BY h.created_at, h.entry_id""",
            (chat_id,),
        )
        return [
            HeldAlert(
                chat_id=row[0],
                entry_id=row[1],
                rules=tuple(row[2].split()),
                title=row[3],
                link=row[4],
                feed=row[5],
                created_at=_dt(row[6]) or datetime.min.replace(tzinfo=UTC),
                story_id=row[7],
            )
            for row in rows
        ]

    async def oldest_held_alerts(self) -> dict[int, datetime]:
        """When each chat with alerts held had its oldest one held."""
        rows = await self._fetchall(OLDEST_HELD_SQL, ())
        return {int(chat_id): datetime.fromtimestamp(oldest, UTC) for chat_id, oldest in rows}

    async def release_held(
        self, chat_id: int, entry_ids: Iterable[int], messages: Sequence[str], now: datetime
    ) -> int:
        """Queue digest messages in the outbox in place of held alerts, in one transaction;
        return how many alerts were released. 0 if another release (the minute job and an
        /unmute at once) took any of them first: then nothing is queued, and the caller
        reads again what is still held, so no alert goes out in two digests. The held
        alerts are marked released, not deleted: they record that the chat had those
        entries (`WriteTransaction.alerted_chats`)."""
        entry_ids = sorted(set(entry_ids))
        held = """chat_id = ? AND released_at IS NULL
                  AND entry_id IN (SELECT value FROM json_each(?))"""
        ids = json.dumps(entry_ids)
        async with self.write() as tx:
            rows = await tx.db.execute_fetchall(
                f"SELECT count(*) FROM held_alerts WHERE {held}", (chat_id, ids)
            )
            if next(iter(rows))[0] != len(entry_ids):
                return 0
            await tx.db.execute(
                f"UPDATE held_alerts SET released_at = ? WHERE {held}", (_ts(now), chat_id, ids)
            )
            released = len(entry_ids)
            await tx.enqueue([Alert(None, chat_id, text) for text in messages], now)
            # The digest shows each entry as it reads now: that version is told.
            await tx.db.executemany(
                """INSERT OR IGNORE INTO versions_told (entry_id, chat_id, content_key, told_at)
                   SELECT id, ?, content_key, ? FROM entries
                   WHERE id = ? AND content_key IS NOT NULL""",
                [(chat_id, _ts(now), entry_id) for entry_id in entry_ids],
            )
        return released

    async def subscriber_stats(self) -> dict[str, int]:
        rows = await self._fetchall(
            """SELECT
                 (SELECT count(*) FROM subscribers WHERE active = 1),
                 (SELECT count(*) FROM subscribers WHERE active = 0),
                 (SELECT count(*) FROM subscriptions),
                 (SELECT count(*) FROM held_alerts WHERE released_at IS NULL)""",
            (),
        )
        active, blocked, follows, held = rows[0]
        return {"active": active, "blocked": blocked, "follows": follows, "held": held}


_SUBSCRIBER_SELECT = """SELECT s.chat_id, s.active, s.muted_until, s.digest, s.digest_time,
    (SELECT group_concat(rule, char(10)) FROM
        (SELECT rule FROM subscriptions WHERE chat_id = s.chat_id ORDER BY rule))
    FROM subscribers s"""


def _subscriber(row: sqlite3.Row) -> Subscriber:
    return Subscriber(
        chat_id=row[0],
        active=bool(row[1]),
        muted_until=_dt(row[2]),
        digest=row[3],
        digest_time=row[4],
        rules=tuple(row[5].split("\n")) if row[5] else (),
    )
