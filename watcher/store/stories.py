"""Stories in the store: the story each alerted entry joined (`entries.story_id`), the
message each chat got about a story, and the outbox rows that edit such a message to add the
other outlets that reported it (`outbox.edit_of`). Mixed into `Store`.

An edit row carries the entry whose report it adds (`entry_id`) and names the row of the
message it edits (`edit_of`). A chat has either a message or an edit for an entry, never
both, so the outbox's unique (entry, chat) pair still holds, and the sources a message lists
are the feeds of the entries of its edit rows: what reached that chat, in the order it did.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from watcher.store.chunks import chunks
from watcher.store.timestamps import from_db as _dt
from watcher.store.timestamps import to_db as _ts

if TYPE_CHECKING:
    import sqlite3

    from watcher.store.sqlite import WriteTransaction


@dataclass(frozen=True, slots=True)
class StoryEntry:
    """An alerted entry as the story index needs it back after a restart."""

    id: int
    feed: str
    published: datetime | None
    first_seen: datetime
    title: str
    summary: str
    story_id: int
    placed_at: datetime | None = None  # the time the index counted it from (None: not kept)


@dataclass(frozen=True, slots=True)
class StoryMessage:
    """The message a chat got about a story (the latest one that was not given up), with
    the feeds its edit rows added so far, in order (repeats included)."""

    outbox_id: int
    story_id: int
    chat_id: int
    entry_id: int
    feed: str
    text: str
    added_feeds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoryEdit:
    """An outbox row to write: edit message `edit_of` in `chat_id` to read `text`, because
    entry `entry_id` (matched by `rules`) reported the same story."""

    entry_id: int
    chat_id: int
    edit_of: int
    text: str
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EditTarget:
    """The message an edit row edits, as it stands now."""

    outbox_id: int
    chat_id: int
    status: str  # 'pending', 'sent' or 'dead'
    message_id: int | None  # Telegram's id once sent (None for the console)


class StoryQueries:
    """The story side of the store (see `Store`)."""

    async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        raise NotImplementedError  # provided by Store

    def write(self) -> AbstractAsyncContextManager[WriteTransaction]:
        raise NotImplementedError  # provided by Store

    # -- the story index ---------------------------------------------------------------

    async def story_entries(self, since: datetime) -> list[StoryEntry]:
        """The entries given a story that the index counts from `since` or later (those
        placed before that was kept: first seen then), by id."""
        rows = await self._fetchall(
            """SELECT e.id, f.name, e.published_at, e.first_seen_at, e.title, e.summary,
                      e.story_id, e.story_at
               FROM entries e JOIN feeds f ON f.id = e.feed_id
               WHERE e.story_id IS NOT NULL AND coalesce(e.story_at, e.first_seen_at) >= ?
               ORDER BY e.id""",
            (_ts(since),),
        )
        return [
            StoryEntry(
                id=row[0],
                feed=row[1],
                published=_dt(row[2]),
                first_seen=_dt(row[3]) or datetime.min.replace(tzinfo=UTC),
                title=row[4],
                summary=row[5],
                story_id=row[6],
                placed_at=_dt(row[7]),
            )
            for row in rows
        ]

    async def stories_of(self, entry_ids: Collection[int]) -> dict[int, int | None]:
        """The recorded story of each of `entry_ids` that exists (None: no story)."""
        found: dict[int, int | None] = {}
        ids = list(entry_ids)
        for chunk in chunks(ids):
            rows = await self._fetchall(
                f"SELECT id, story_id FROM entries WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update({int(row[0]): row[1] for row in rows})
        return found

    async def assign_stories(
        self, tx: WriteTransaction, stories: Mapping[int, tuple[int, datetime]]
    ) -> None:
        """Inside the poll's transaction: record the story of each entry and the time the
        index counts it from (id → (story, time))."""
        if stories:
            await tx.db.executemany(
                "UPDATE entries SET story_id = ?, story_at = ? WHERE id = ?",
                [(story, _ts(at), entry) for entry, (story, at) in stories.items()],
            )

    # -- messages and their edits ------------------------------------------------------

    async def story_messages(
        self, stories: Collection[int], chat_ids: Collection[int]
    ) -> dict[tuple[int, int], StoryMessage]:
        """For each (story, chat) of `stories` × `chat_ids` that has one, the chat's latest
        message about the story that was not given up, with the feeds its edits added. The
        latest: a chat has two when an outlet's next item came after its first had left
        the window, and the next outlet is news to edit into the one the chat just got,
        not into one of days ago.

        An edit row goes out as a message when the message it edits never reached its chat
        (given up, or sent to the chat's id before a migration): for the chat, that row is
        the story's message, the one it edits with the outlets of that message's edit rows
        up to this one (its text names them all, those settled as superseded too)."""
        if not stories or not chat_ids:
            return {}
        story_list, chat_list = list(stories), list(chat_ids)
        rows = await self._fetchall(
            f"""SELECT o.id, e.story_id, o.chat_id,
                       coalesce(t.entry_id, o.entry_id), coalesce(tf.name, f.name),
                       coalesce(t.text, o.text), t.id
                FROM outbox o JOIN entries e ON e.id = o.entry_id
                     JOIN feeds f ON f.id = e.feed_id
                     LEFT JOIN outbox t ON t.id = o.edit_of
                     LEFT JOIN entries te ON te.id = t.entry_id
                     LEFT JOIN feeds tf ON tf.id = te.feed_id
                WHERE e.story_id IN ({",".join("?" * len(story_list))})
                  AND o.chat_id IN ({",".join("?" * len(chat_list))})
                  AND o.status != 'dead'
                  AND (o.edit_of IS NULL
                       OR t.chat_id != o.chat_id OR t.status = 'dead')
                ORDER BY o.id DESC""",
            (*story_list, *chat_list),
        )
        messages: dict[tuple[int, int], StoryMessage] = {}
        instead_of: dict[tuple[int, int], int] = {}  # the message an edit row went out for
        for row in rows:
            key = (int(row[1]), int(row[2]))
            if key not in messages:  # the latest one
                messages[key] = StoryMessage(
                    outbox_id=row[0],
                    story_id=row[1],
                    chat_id=row[2],
                    entry_id=row[3],
                    feed=row[4],
                    text=row[5],
                )
                if row[6] is not None:
                    instead_of[key] = int(row[6])
        if not messages:
            return messages
        edited = {message.outbox_id for message in messages.values()} | set(instead_of.values())
        edits: dict[int, list[tuple[int, str]]] = {}  # edited row → (edit row, feed)
        for row in await self._fetchall(
            f"""SELECT o.edit_of, o.id, f.name FROM outbox o
                JOIN entries e ON e.id = o.entry_id JOIN feeds f ON f.id = e.feed_id
                WHERE o.edit_of IN ({",".join("?" * len(edited))}) ORDER BY o.id""",
            list(edited),
        ):
            edits.setdefault(int(row[0]), []).append((int(row[1]), str(row[2])))
        for key, message in messages.items():
            before = [
                feed
                for row, feed in edits.get(instead_of.get(key, -1), ())
                if row <= message.outbox_id
            ]
            own = [feed for _, feed in edits.get(message.outbox_id, ())]
            messages[key] = replace(message, added_feeds=(*before, *own))
        return messages

    async def enqueue_edits(
        self, tx: WriteTransaction, edits: Sequence[StoryEdit], now: datetime
    ) -> int:
        """Inside the poll's transaction: queue edit rows; return how many were new."""
        if not edits:
            return 0
        cursor = await tx.db.executemany(
            """INSERT OR IGNORE INTO outbox (entry_id, chat_id, text, rules, edit_of,
               next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            [
                (e.entry_id, e.chat_id, e.text, " ".join(e.rules), e.edit_of, _ts(now), _ts(now))
                for e in edits
            ],
        )
        return max(cursor.rowcount, 0)

    async def edits_among(self, outbox_ids: Collection[int]) -> dict[int, int]:
        """Which of `outbox_ids` are edit rows: row id → the row of the message it edits."""
        found: dict[int, int] = {}
        ids = list(outbox_ids)
        for chunk in chunks(ids):
            rows = await self._fetchall(
                f"""SELECT id, edit_of FROM outbox
                    WHERE id IN ({",".join("?" * len(chunk))}) AND edit_of IS NOT NULL""",
                chunk,
            )
            found.update({int(row[0]): int(row[1]) for row in rows})
        return found

    async def edit_target(self, outbox_id: int) -> EditTarget | None:
        """The message row an edit refers to, or None if it is gone (pruned)."""
        rows = await self._fetchall(
            "SELECT id, chat_id, status, message_id FROM outbox WHERE id = ?", (outbox_id,)
        )
        if not rows:
            return None
        row = rows[0]
        return EditTarget(outbox_id=row[0], chat_id=row[1], status=row[2], message_id=row[3])

    async def drop_edit(self, item_id: int, reason: str, now: datetime) -> None:
        """Settle an edit that cannot apply (its message is gone) or need not (a later edit
        of the message carries it): not a failure to report, so it is recorded as done,
        with the reason."""
        async with self.write() as tx:
            await tx.db.execute(
                """UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1,
                   last_error = ? WHERE id = ?""",
                (_ts(now), f"edit dropped: {reason}", item_id),
            )
