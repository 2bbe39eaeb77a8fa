"""The SQLite store: feeds with their fetch state, entries, and the outbox.

One aiosqlite connection serves the daemon. SQLite allows one writer, and a transaction on a
shared connection must not interleave with another task's statements, so every write goes
through `write()`, which holds an asyncio lock for the length of the transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import aiosqlite

from watcher.errors import StoreError
from watcher.identity import EntryKeys, content_key, entry_keys, title_key_minute
from watcher.model import (
    Alert,
    Entry,
    FeedDef,
    FeedState,
    FeedSuccess,
    KnownItem,
    NewEntry,
    OutboxItem,
    UnchangedItem,
    UpdatedEntry,
)
from watcher.store.chunks import ROWS_PER_STATEMENT, chunks
from watcher.store.reading import reading_uri
from watcher.store.schema import MIGRATIONS, SCHEMA_VERSION, version_problem
from watcher.store.stories import StoryQueries
from watcher.store.subscribers import SubscriberQueries
from watcher.store.timestamps import from_db as _dt
from watcher.store.timestamps import to_db as _ts

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 5000
_BATCH_ROWS = 50  # a batch this full is written at once (more would resume too many
# polls in one turn of the event loop)
_BATCH_WAIT_S = 0.02  # otherwise updates wait this long for company


def migrate(path: Path) -> int:
    """Bring the database at `path` to the current schema; return the version it was at.

    Runs on a plain sqlite3 connection (call it off the event loop). Refuses a database
    written by a newer Watcher rather than guess at a schema it does not know.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode = WAL")
        found = int(db.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: database schema version {found} is newer than this Watcher "
                f"understands ({SCHEMA_VERSION}); upgrade Watcher or restore an older backup"
            )
        for number in range(found, SCHEMA_VERSION):
            db.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[number](db)
                db.execute(f"PRAGMA user_version = {number + 1}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return found


class Store(SubscriberQueries, StoryQueries):
    """Async access to the database. Open with `await Store.open(path)` or `async with`."""

    def __init__(
        self, db: aiosqlite.Connection, path: Path, reader: aiosqlite.Connection | None = None
    ) -> None:
        self._db = db
        # Reads outside `write()` go through a connection of their own: on the writer's
        # they would see a poll's uncommitted rows (Delivery could send an alert whose
        # transaction then rolls back, and the entry would alert again), and a read would
        # wait for a long write. In WAL mode a reader sees the last commit and never waits.
        self._reader = reader or db
        self.path = path
        # When the write transaction in progress began (time.monotonic()), for /healthz.
        self.write_since: float | None = None
        self._write_lock = asyncio.Lock()
        self._batch: list[tuple[str, tuple[Any, ...], asyncio.Future[None]]] = []
        self._batch_flush: asyncio.Task[None] | None = None  # the one waiting to gather
        self._flushes: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, path: Path) -> Store:
        await asyncio.to_thread(migrate, path)
        db = await aiosqlite.connect(path, isolation_level=None)
        reader: aiosqlite.Connection | None = None
        try:
            await db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute("PRAGMA synchronous = NORMAL")
            reader = await aiosqlite.connect(path, isolation_level=None)
            await reader.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            await reader.execute("PRAGMA query_only = ON")
        except BaseException:
            await db.close()
            if reader is not None:
                await reader.close()
            raise
        return cls(db, path, reader)

    @classmethod
    async def open_read_only(cls, path: Path, *, then: str) -> Store:
        """A store for commands that only look (`watcher status`): it never creates a
        database, never migrates one (an upgrade under the old daemon still running would
        lock that daemon out) and never writes. Raises StoreError when there is no database
        at `path`, when it is not one, or when its schema is not this Watcher's; `then` is
        what the operator should do once the daemon has upgraded an older one."""
        if not await asyncio.to_thread(path.is_file):
            raise StoreError(f"no database at {path} (has the daemon run with this config?)")
        uri = await asyncio.to_thread(reading_uri, path)
        try:
            db = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA query_only = ON")
            rows = list(await db.execute_fetchall("PRAGMA user_version"))
            version = int(rows[0][0])
        except sqlite3.Error as exc:
            await db.close()
            raise StoreError(f"cannot read the database {path}: {exc}") from exc
        if version != SCHEMA_VERSION:
            await db.close()
            raise StoreError(version_problem(path, version, then))
        return cls(db, path)

    async def close(self) -> None:
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        if self._batch:
            batch, self._batch = self._batch, []
            await self._write_batch(batch)
        if self._reader is not self._db:
            await self._reader.close()
        await self._db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[WriteTransaction]:
        """One write transaction; commits on normal exit, rolls back on any exception."""
        async with self._write_lock:
            self.write_since = time.monotonic()
            try:
                await self._begin()
                try:
                    yield WriteTransaction(self._db)
                except BaseException:
                    await self._rollback()
                    raise
                await self._commit()
            finally:
                self.write_since = None

    async def _commit(self) -> None:
        """COMMIT, safe to cancel: aiosqlite runs it whatever becomes of the awaiting task,
        so a cancelled caller waits for its outcome (and rolls back only a COMMIT that
        failed: a full disk, an I/O error) before it goes."""
        commit = asyncio.ensure_future(self._db.execute("COMMIT"))
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            with contextlib.suppress(sqlite3.Error):
                await commit
            await self._rollback()  # only if the COMMIT failed: nothing is open otherwise
            raise
        except sqlite3.Error:
            await self._rollback()
            raise

    async def _rollback(self) -> None:
        """End a failed transaction, whether its body or its COMMIT failed (a full disk, an
        I/O error): left open, it would make every later write of the daemon fail. SQLite
        may have rolled back already; the original error is what the caller needs."""
        if not self._db.in_transaction:
            return
        try:
            await self._db.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("could not roll back a failed write")

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE, safe to cancel. aiosqlite runs it in its thread whatever
        becomes of the awaiting task: a cancelled caller (a poll stopped by a reload) must
        wait for it and undo it, or the connection stays in a transaction and no later
        write can begin."""
        begin = asyncio.ensure_future(self._db.execute("BEGIN IMMEDIATE"))
        try:
            await asyncio.shield(begin)
        except asyncio.CancelledError:
            try:
                await begin
            except Exception:
                pass  # it did not begin (the database was locked): nothing to undo
            else:
                await self._db.execute("ROLLBACK")
            raise

    # -- batched updates -------------------------------------------------------------

    async def batched(self, sql: str, params: tuple[Any, ...]) -> None:
        """Run one small UPDATE together with the others that arrive within a few
        milliseconds, in one transaction (one `executemany` per statement); return once it
        is committed. Thousands of unchanged feeds a minute cost one transaction each
        otherwise, queued behind the one write lock."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batch.append((sql, params, done))
        if len(self._batch) >= _BATCH_ROWS:
            # Written now, and those that come next start a batch of their own: a burst of
            # polls finishing in one turn makes one flush per full batch, not one per poll.
            full, self._batch = self._batch, []
            self._spawn_flush(self._write_batch(full))
        elif self._batch_flush is None:
            self._batch_flush = self._spawn_flush(self._flush_later(_BATCH_WAIT_S))
        try:
            await done
        except asyncio.CancelledError:
            # A cancelled caller (a poll of a URL a reload just replaced) writes nothing,
            # unless a flush took its row already: then that write holds the lock before
            # whatever the canceller writes next.
            self._batch = [row for row in self._batch if row[2] is not done]
            raise

    def _spawn_flush(self, flush: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(flush)
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)
        return task

    async def _flush_later(self, delay_s: float) -> None:
        """Write whatever the batch holds after `delay_s` (the rows that came meanwhile)."""
        await asyncio.sleep(delay_s)
        batch, self._batch = self._batch, []
        self._batch_flush = None
        await self._write_batch(batch)

    async def _write_batch(
        self, batch: list[tuple[str, tuple[Any, ...], asyncio.Future[None]]]
    ) -> None:
        if not batch:
            return
        by_statement: dict[str, list[tuple[Any, ...]]] = {}
        for sql, params, _ in batch:
            by_statement.setdefault(sql, []).append(params)
        try:
            async with self.write() as tx:
                for sql, rows in by_statement.items():
                    await tx.db.executemany(sql, rows)
        except BaseException as exc:
            if isinstance(exc, Exception) and len(batch) > 1:
                # One row SQLite refuses must not fail the other feeds' polls: each alone.
                for row in batch:
                    await self._write_batch([row])
                return
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for _, _, done in batch:
            if not done.done():
                done.set_result(None)

    async def feed_unchanged(self, feed_id: int, success: FeedSuccess) -> None:
        """A poll that found nothing new (304, or the same body): batched."""
        await self.batched(FEED_SUCCEEDED_SQL, feed_succeeded_params(feed_id, success))

    # -- feeds -------------------------------------------------------------------------

    async def sync_feeds(self, feeds: Sequence[FeedDef], now: datetime) -> None:
        """Make the feeds table agree with the config: add new feeds (due now), follow URL
        changes (a new URL is checked at once; its first document alerts only what was
        published since the old URL's last success), check a feed whose User-Agent changed
        at once, bring forward the next check of a healthy feed whose interval got shorter,
        and deactivate feeds no longer configured (their history is kept, so a feed that
        comes back does not re-alert)."""
        async with self.write() as tx:
            await tx.db.execute("UPDATE feeds SET active = 0")
            for feed in feeds:
                # A URL edited in the config is a new resource: forget validators, a
                # redirect's target and a 410 for the old one. An unchanged config URL
                # keeps the URL a permanent redirect moved the feed to.
                await tx.db.execute(
                    """
                    INSERT INTO feeds (name, url, config_url, user_agent, interval_s, active,
                                       created_at, next_check_at)
                    VALUES (?, ?, ?, ?, ?, 1, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET
                        active = 1,
                        url = CASE WHEN config_url = excluded.config_url THEN url
                                   ELSE excluded.url END,
                        etag = CASE WHEN config_url = excluded.config_url THEN etag END,
                        last_modified = CASE WHEN config_url = excluded.config_url
                                             THEN last_modified END,
                        body_hash = CASE WHEN config_url = excluded.config_url
                                         THEN body_hash END,
                        disabled_at = CASE WHEN config_url = excluded.config_url
                                           THEN disabled_at END,
                        disabled_reason = CASE WHEN config_url = excluded.config_url
                                               THEN disabled_reason END,
                        -- Its first document's backlog is no news (the old URL's items
                        -- are known by guid and link anyway); what the new URL published
                        -- since the old one's last success is.
                        moved_at = CASE WHEN config_url IS NOT excluded.config_url
                                        THEN excluded.created_at ELSE moved_at END,
                        next_check_at = CASE
                            WHEN config_url IS NOT excluded.config_url
                                 OR user_agent IS NOT excluded.user_agent
                            THEN excluded.next_check_at
                            -- A failing feed keeps its backoff.
                            WHEN excluded.interval_s > 0
                                 AND (interval_s = 0 OR excluded.interval_s < interval_s)
                                 AND consecutive_errors = 0
                                 AND last_checked_at IS NOT NULL AND next_check_at IS NOT NULL
                            THEN min(next_check_at, last_checked_at + excluded.interval_s)
                            ELSE next_check_at END,
                        config_url = excluded.config_url,
                        user_agent = excluded.user_agent,
                        interval_s = excluded.interval_s
                    """,
                    (
                        feed.name,
                        feed.url,
                        feed.url,
                        feed.user_agent,
                        0 if feed.auto_interval else feed.interval,
                        _ts(now),
                        _ts(now),
                    ),
                )

    async def clock_stepped_back(self, step: timedelta) -> None:
        """The wall clock went back `step` (NTP, a restored VM): the next check of every
        feed and the next try of every pending row move back as much, or nothing would be
        polled or sent for that long."""
        seconds = step.total_seconds()
        async with self.write() as tx:
            # The last check moves too: a poll that read the clock before the step and
            # writes after this is then the one row checked "in the future" (see
            # `late_checks_stepped_back`).
            await tx.db.execute(
                f"UPDATE feeds SET {_STEPPED_TIMES} WHERE next_check_at IS NOT NULL",
                (seconds,) * 4,
            )
            await tx.db.execute(
                "UPDATE outbox SET next_attempt_at = next_attempt_at - ? WHERE status = 'pending'",
                (seconds,),
            )

    async def late_checks_stepped_back(self, step: timedelta, now: datetime) -> int:
        """After `clock_stepped_back`: a poll under way at the step wrote its schedule in
        the old time; move back the rows checked after `now` (they cannot have been).
        Returns how many."""
        seconds = step.total_seconds()
        async with self.write() as tx:
            cursor = await tx.db.execute(
                f"UPDATE feeds SET {_STEPPED_TIMES} WHERE last_checked_at > ?",
                (*(seconds,) * 4, _ts(now)),
            )
            return max(cursor.rowcount, 0)

    async def due_feeds(
        self, now: datetime, limit: int = 1000, *, exclude: Collection[int] = ()
    ) -> list[FeedState]:
        """Feeds whose next check has come, most overdue first, leaving out `exclude`
        (feed ids being polled). One range scan of the `feeds_due` index."""
        if limit <= 0:
            return []
        skip = f"AND id NOT IN ({','.join('?' * len(exclude))})" if exclude else ""
        rows = await self._fetchall(
            f"""SELECT {_FEED_COLUMNS} FROM feeds
                WHERE active = 1 AND disabled_at IS NULL AND next_check_at <= ? {skip}
                ORDER BY next_check_at, id LIMIT ?""",
            (_ts(now), *exclude, limit),
        )
        return [_feed_state(row) for row in rows]

    async def feeds(self) -> list[FeedState]:
        rows = await self._fetchall(
            f"SELECT {_FEED_COLUMNS} FROM feeds WHERE active = 1 ORDER BY name", ()
        )
        return [_feed_state(row) for row in rows]

    async def count_entries_since(self, feed_id: int, since: datetime) -> int:
        rows = await self._fetchall(
            "SELECT count(*) FROM entries WHERE feed_id = ? AND first_seen_at >= ?",
            (feed_id, _ts(since)),
        )
        return int(rows[0][0])

    async def entry_counts(self) -> dict[int, int]:
        """Entries recorded per feed id."""
        rows = await self._fetchall("SELECT feed_id, count(*) FROM entries GROUP BY feed_id", ())
        return {int(feed_id): int(count) for feed_id, count in rows}

    async def feed(self, name: str) -> FeedState | None:
        rows = await self._fetchall(f"SELECT {_FEED_COLUMNS} FROM feeds WHERE name = ?", (name,))
        return _feed_state(rows[0]) if rows else None

    async def count_entries(self, feed_id: int | None = None) -> int:
        if feed_id is None:
            rows = await self._fetchall("SELECT count(*) FROM entries", ())
        else:
            rows = await self._fetchall(
                "SELECT count(*) FROM entries WHERE feed_id = ?", (feed_id,)
            )
        return int(rows[0][0])

    # -- outbox ------------------------------------------------------------------------

    async def due_outbox(
        self,
        now: datetime,
        limit: int = 100,
        *,
        chat_ids: Sequence[int] | None = None,
        exclude_chats: Collection[int] = (),
    ) -> list[OutboxItem]:
        """Pending rows whose time has come, oldest first; only for `chat_ids` if given,
        never for `exclude_chats` (chats already being served)."""
        conditions, params = _chat_filter(chat_ids, exclude_chats)
        rows = await self._fetchall(
            due_outbox_sql(conditions),
            (_ts(now), *params, _ts(now), limit),
        )
        return [
            OutboxItem(id=r[0], chat_id=r[1], text=r[2], attempts=r[3], created_at=_dt(r[4]))
            for r in rows
        ]

    async def next_outbox_attempt(
        self, *, chat_ids: Sequence[int] | None = None, exclude_chats: Collection[int] = ()
    ) -> datetime | None:
        conditions, params = _chat_filter(chat_ids, exclude_chats)
        rows = await self._fetchall(
            f"SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending' {conditions}",
            params,
        )
        return _dt(rows[0][0])

    async def feed_state_counts(self, failing_after: int) -> dict[str, int]:
        """Active feeds per state, as status_command.feed_state_name names them, counted
        in SQL: the watchdog and /metrics ask often, and 10,000 FeedState objects built on
        the event loop for a count would stall it."""
        rows = await self._fetchall(
            """SELECT CASE WHEN disabled_reason IS NOT NULL THEN 'disabled'
                           WHEN consecutive_errors >= ? THEN 'failing'
                           WHEN last_success_at IS NULL THEN 'new'
                           ELSE 'ok' END AS state, count(*)
               FROM feeds WHERE active = 1 GROUP BY state""",
            (failing_after,),
        )
        return {str(state): int(count) for state, count in rows}

    async def oldest_pending_at(self) -> datetime | None:
        """When the oldest unsent outbox row was queued."""
        rows = await self._fetchall(
            "SELECT min(created_at) FROM outbox WHERE status = 'pending'", ()
        )
        return _dt(rows[0][0]) if rows and rows[0][0] is not None else None

    async def outbox_counts(self) -> dict[str, int]:
        """Rows by status (statuses with none left out). Indexed counts: the pending and
        given-up rows are few, the sent ones are the rest (a month of them: a GROUP BY
        read every text, 0.4 s for 600,000 rows)."""
        rows = await self._fetchall(OUTBOX_COUNTS_SQL, ())
        pending, dead, total = (int(value) for value in rows[0])
        counts = {"pending": pending, "sent": total - pending - dead, "dead": dead}
        return {status: count for status, count in counts.items() if count}

    async def mark_sent(
        self, item_id: int, message_id: int | None, now: datetime, *, instead_of: int | None = None
    ) -> None:
        """Record a row as delivered. `instead_of`: the row was an edit of message row
        `instead_of` sent as a message of its own (the chat never got that one); the chat's
        later pending edits of that message edit this one instead, in the same transaction,
        or each would go out as a message too."""
        async with self.write() as tx:
            await tx.db.execute(
                """UPDATE outbox SET status = 'sent', sent_at = ?, message_id = ?,
                   attempts = attempts + 1, last_error = NULL WHERE id = ?""",
                (_ts(now), message_id, item_id),
            )
            if instead_of is not None:
                await tx.db.execute(
                    """UPDATE outbox SET edit_of = ?
                       WHERE edit_of = ? AND status = 'pending' AND id != ?
                         AND chat_id = (SELECT chat_id FROM outbox WHERE id = ?)""",
                    (item_id, instead_of, item_id, item_id),
                )

    async def mark_retry(self, item_id: int, error: str, next_attempt_at: datetime) -> None:
        async with self.write() as tx:
            await tx.db.execute(
                """UPDATE outbox SET attempts = attempts + 1, last_error = ?,
                   next_attempt_at = ? WHERE id = ?""",
                (error, _ts(next_attempt_at), item_id),
            )

    async def delay_chat(self, chat_id: int, until: datetime) -> None:
        """Hold every pending row of a chat until `until` (Telegram said to wait)."""
        async with self.write() as tx:
            await tx.db.execute(
                """UPDATE outbox SET next_attempt_at = max(next_attempt_at, ?)
                   WHERE status = 'pending' AND chat_id = ?""",
                (_ts(until), chat_id),
            )

    async def drop_pending(self, chat_id: int, reason: str) -> int:
        """Give up every pending row of a chat that will never accept them (blocked)."""
        async with self.write() as tx:
            cursor = await tx.db.execute(
                """UPDATE outbox SET status = 'dead', last_error = ?
                   WHERE status = 'pending' AND chat_id = ?""",
                (reason, chat_id),
            )
            return max(cursor.rowcount, 0)

    async def enqueue_notices(self, chat_ids: Sequence[int], text: str, now: datetime) -> int:
        """Queue a message about Watcher itself (not about an entry) to each chat."""
        async with self.write() as tx:
            return await tx.enqueue([Alert(None, chat, text) for chat in chat_ids], now)

    async def mark_dead(self, item_id: int, error: str) -> None:
        async with self.write() as tx:
            await tx.db.execute(
                """UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = ?
                   WHERE id = ?""",
                (error, item_id),
            )

    async def listed_items(self, feed_id: int) -> dict[int, ListedItem]:
        """The items of the feed's last parsed document that the next parse may leave out
        when they come back unchanged, by each of their digests (of their bytes, and of
        their fields: watcher.parse.parse_feed's `known`); hand them to `record_entries` as
        `unchanged`."""
        rows = await self._fetchall(
            "SELECT item_digest, field_digest, id, guid_key, guid, published_at FROM entries"
            " WHERE feed_id = ? AND item_digest IS NOT NULL",
            (feed_id,),
        )
        listed: dict[int, ListedItem] = {}
        for digest, field_digest, entry_id, guid_key, guid, published_at in rows:
            item = ListedItem(
                entry_id, guid_key, KnownItem(guid, title_key_minute(_dt(published_at)))
            )
            listed[digest] = item
            if field_digest is not None:
                listed[field_digest] = item
        return listed

    async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        """A read of what is committed (see `__init__`)."""
        # One trip to the connection's thread, not three (execute, fetch, close).
        return list(await self._reader.execute_fetchall(sql, params))


OUTBOX_COUNTS_SQL = """SELECT (SELECT count(*) FROM outbox WHERE status = 'pending'),
                              (SELECT count(*) FROM outbox WHERE status = 'dead'),
                              (SELECT count(*) FROM outbox)"""


def due_outbox_sql(conditions: str = "") -> str:
    """`Store.due_outbox`'s query, with more `conditions` ("AND ...") on the row.

    A row waits while an older row of its chat waits: order per chat holds even when
    retries gave the rows different times. The pending rows are few, the rows of the last
    month many: left to itself, the planner may walk them all in id order to find the few
    (the reader connection, which keeps the statistics it read first, did)."""
    return f"""SELECT id, chat_id, text, attempts, created_at
               FROM outbox AS o INDEXED BY outbox_pending
               WHERE status = 'pending' AND next_attempt_at <= ? {conditions}
                 AND NOT EXISTS (
                     SELECT 1 FROM outbox AS older
                     WHERE older.status = 'pending' AND older.chat_id = o.chat_id
                       AND older.id < o.id AND older.next_attempt_at > ?)
               ORDER BY id LIMIT ?"""


def _chat_filter(
    chat_ids: Sequence[int] | None, exclude_chats: Collection[int]
) -> tuple[str, list[Any]]:
    conditions = ""
    params: list[Any] = []
    if chat_ids is not None:
        conditions += f" AND chat_id IN ({','.join('?' * len(chat_ids))})"
        params.extend(chat_ids)
    if exclude_chats:
        conditions += f" AND chat_id NOT IN ({','.join('?' * len(exclude_chats))})"
        params.extend(exclude_chats)
    return conditions, params


# What a wall clock stepped back moves back in a feed's row: its schedule, and the times a
# poll wrote in the clock's old reading (compared with publishers' dates and with now).
_STEPPED_TIMES = """next_check_at = next_check_at - ?, last_checked_at = last_checked_at - ?,
    last_success_at = last_success_at - ?, failing_since = failing_since - ?"""

_FEED_COLUMNS = """id, name, url, etag, last_modified, body_hash, next_check_at,
    consecutive_errors, last_status, last_error, last_success_at, last_checked_at,
    disabled_reason, failing_since, config_url, ttl_s, moved_at"""


def _feed_state(row: sqlite3.Row) -> FeedState:
    return FeedState(
        id=row[0],
        name=row[1],
        url=row[2],
        etag=row[3],
        last_modified=row[4],
        body_hash=row[5],
        next_check_at=_dt(row[6]),
        consecutive_errors=row[7],
        last_status=row[8],
        last_error=row[9],
        last_success_at=_dt(row[10]),
        last_checked_at=_dt(row[11]),
        disabled_reason=row[12],
        failing_since=_dt(row[13]),
        config_url=row[14],
        ttl_s=row[15],
        moved_at=_dt(row[16]),
    )


FEED_SUCCEEDED_SQL = """UPDATE feeds SET etag = ?, last_modified = ?, body_hash = ?,
    next_check_at = ?, consecutive_errors = 0, last_status = ?, last_error = NULL,
    failing_since = NULL, last_checked_at = ?, last_success_at = ?, ttl_s = ?, moved_at = NULL
    WHERE id = ?"""


def feed_succeeded_params(feed_id: int, success: FeedSuccess) -> tuple[Any, ...]:
    return (
        success.etag,
        success.last_modified,
        success.body_hash,
        _ts(success.next_check_at),
        success.status,
        _ts(success.checked_at),
        _ts(success.checked_at),
        success.ttl_s,
        feed_id,
    )


class ListedItem(NamedTuple):
    """An item of a feed's last parsed document that named its entry alone, by guid (see
    `Store.listed_items`): the entry, the guid key the item had, and what the parse must
    know of it (its guid and minute, which its entry holds)."""

    entry_id: int
    guid_key: str
    known: KnownItem


def unchanged_for_recording(
    items: Sequence[UnchangedItem], listed: Mapping[int, ListedItem]
) -> tuple[list[tuple[int, ListedItem]], dict[int, int]]:
    """`record_entries`' `unchanged` and `redigested` for a parse's unchanged items, known
    by the digests `listed` (`Store.listed_items`) gave the parse."""
    unchanged = [(item.position, listed[item.digest]) for item in items]
    redigested = {item.position: item.item_digest for item in items if item.item_digest is not None}
    return unchanged, redigested


@dataclass(frozen=True, slots=True)
class RecordedEntries:
    """What recording one parsed document found, in feed order."""

    new: list[NewEntry]  # never seen before
    updated: list[UpdatedEntry]  # listed by this feed before, with other words now


class _StoredEntry(NamedTuple):
    id: int
    feed_id: int
    guid_key: str
    link_key: str | None
    title_key: str | None
    content_key: str | None
    guid: str | None
    published_at: float | None


@dataclass(slots=True)
class _StoredKeys:
    """Stored entries that some key of a document recognised, by each of their keys."""

    by_guid: dict[str, _StoredEntry] = field(default_factory=dict)
    by_link: dict[str, _StoredEntry] = field(default_factory=dict)
    by_title: dict[str, _StoredEntry] = field(default_factory=dict)

    def add(self, row: _StoredEntry) -> None:
        self.by_guid[row.guid_key] = row
        if row.link_key is not None:
            self.by_link[row.link_key] = row
        if row.title_key is not None:
            self.by_title[row.title_key] = row

    def knows(self, key: EntryKeys) -> bool:
        """Whether some stored entry has one of `key`'s keys (whichever feed it is of)."""
        return (
            key.guid_key in self.by_guid
            or (key.link_key is not None and key.link_key in self.by_link)
            or (key.title_key is not None and key.title_key in self.by_title)
        )

    def same_entry(self, feed_id: int, key: EntryKeys) -> _StoredEntry | None:
        """The entry of feed `feed_id` that an item with `key` is: the one its guid names,
        else the one of this feed at its link, else the one with its title and minute."""
        found = self.by_guid.get(key.guid_key)
        if found is None and key.link_key is not None:
            at_link = self.by_link.get(key.link_key)
            found = at_link if at_link is not None and at_link.feed_id == feed_id else None
        if found is None and key.title_key is not None:
            found = self.by_title.get(key.title_key)
        return found


@dataclass(frozen=True, slots=True)
class _Document:
    """One parsed document's items, each guid key once (the first item with it wins): the
    items made into entries, with their keys, and the entries of the unchanged items."""

    feed_id: int
    listed: dict[str, tuple[Entry, EntryKeys]]  # by guid key, in document order
    claimed: dict[int, int]  # entry id of each unchanged item → its position
    positions: dict[str, int]  # guid key → the position of the item that has it

    @classmethod
    def of(
        cls, feed_id: int, entries: Sequence[Entry], unchanged: Sequence[tuple[int, ListedItem]]
    ) -> _Document:
        carried = dict(unchanged)
        size = len(entries) + len(carried)
        if len(carried) != len(unchanged) or any(not 0 <= at < size for at in carried):
            raise ValueError("unchanged items need distinct positions among the items")
        keyed = iter(zip(entries, entry_keys(feed_id, entries), strict=True))
        listed: dict[str, tuple[Entry, EntryKeys]] = {}
        claimed: dict[int, int] = {}
        positions: dict[str, int] = {}
        for position in range(size):
            item = carried.get(position)
            if item is not None:
                if item.guid_key not in positions:
                    positions[item.guid_key] = position
                    claimed[item.entry_id] = position
                continue
            entry, key = next(keyed)
            if key.guid_key not in positions:
                positions[key.guid_key] = position
                listed[key.guid_key] = (entry, key)
        return cls(feed_id, listed, claimed, positions)


class WriteTransaction:
    """The statements a poll needs inside one transaction. Obtain from `Store.write()`."""

    _serials = itertools.count(1)

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        # Tells transactions apart (id() may be reused): work done in memory on behalf of
        # a transaction is known to be committed only once a later one begins.
        self.serial = next(self._serials)

    async def insert_entries(
        self, feed_id: int, entries: Sequence[Entry], now: datetime
    ) -> list[NewEntry]:
        """`record_entries`, for a caller that wants only the new entries."""
        return (await self.record_entries(feed_id, entries, now)).new

    async def record_entries(
        self,
        feed_id: int,
        entries: Sequence[Entry],
        now: datetime,
        *,
        unchanged: Sequence[tuple[int, ListedItem]] = (),
        redigested: Mapping[int, int] | None = None,
    ) -> RecordedEntries:
        """Record the entries of one parsed document of a feed; return those never seen
        before (by guid, or title and minute, in this feed, or by link anywhere) and those
        this feed listed before whose words changed since, both in feed order. One insert
        and one update statement per chunk of rows, and a few more when known entries
        changed.

        The document's items are `entries`, and the items the parse left out as unchanged
        (`Store.listed_items`), each with its position among the items: `entries` fill the
        other positions in order. It must be the whole document: the entries listed are
        marked as seen `now` and the feed as parsed `now`, which is what retention reads to
        tell an entry still listed by its feed (kept, or it would come back as new) from one
        that dropped out. The result is what recording every item in full would give.
        `redigested` gives, by position, the digest of its bytes now of an unchanged item
        known by its fields (its bytes changed; `UnchangedItem.item_digest`): its entry is
        known by those next time, if that item is the one that names it."""
        document = _Document.of(feed_id, entries, unchanged)
        await self._mark_seen(list(document.claimed), now)
        listed = document.listed
        # Known entries first: most of a document is, and an insert that the unique keys
        # turn away costs as much as one that lands. An item none of whose keys is stored
        # is what the insert would take; the insert still settles the rest (two items of
        # this document sharing a link), as it did alone.
        stored = await self._seen_again(list(listed.values()), now)
        rows = [
            (
                feed_id,
                key.guid_key,
                key.link_key,
                key.title_key,
                key.content_key,
                entry.guid,
                entry.link,
                entry.title,
                entry.summary,
                _ts(entry.published),
                _ts(now),
                _ts(now),
            )
            for entry, key in listed.values()
            if not stored.knows(key)
        ]
        inserted: dict[str, int] = {}
        for chunk in chunks(rows):
            placeholders = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            params = [value for row in chunk for value in row]
            for entry_id, guid_key in await self.db.execute_fetchall(
                f"""INSERT OR IGNORE INTO entries (feed_id, guid_key, link_key, title_key,
                    content_key, guid, link, title, summary, published_at, first_seen_at,
                    last_seen_at)
                    VALUES {placeholders} RETURNING id, guid_key""",
                params,
            ):
                inserted[guid_key] = entry_id
        # A row just inserted is what a later item of this document with its link is (the
        # insert turned that item away): known to `same_entry`, which then passes it over.
        for guid_key, entry_id in inserted.items():
            entry, key = listed[guid_key]
            stored.add(
                _StoredEntry(
                    entry_id,
                    feed_id,
                    guid_key,
                    key.link_key,
                    key.title_key,
                    key.content_key,
                    entry.guid,
                    _ts(entry.published),
                )
            )
        known = [item for guid_key, item in listed.items() if guid_key not in inserted]
        updated = await self._record_changes(document, known, stored, set(inserted.values()), now)
        await self._record_listed(document, stored, inserted, redigested or {})
        await self.db.execute(
            "UPDATE feeds SET last_parsed_at = ? WHERE id = ?", (_ts(now), feed_id)
        )
        new = [
            NewEntry(id=inserted[guid_key], entry=entry)
            for guid_key, (entry, _) in listed.items()
            if guid_key in inserted
        ]
        return RecordedEntries(new=new, updated=updated)

    async def _mark_seen(self, entry_ids: Sequence[int], now: datetime) -> None:
        for chunk in chunks(entry_ids):
            await self.db.execute(
                f"UPDATE entries SET last_seen_at = ? WHERE id IN ({','.join('?' * len(chunk))})",
                (_ts(now), *chunk),
            )

    async def _record_listed(
        self,
        document: _Document,
        stored: _StoredKeys,
        inserted: Mapping[str, int],
        redigested: Mapping[int, int],
    ) -> None:
        """Give the feed's entries the digests of the items that alone name them by guid in
        this document, and take every other entry's: its item is gone, changed, or shares
        its entry with another item (see `Store.listed_items`)."""
        claims = Counter(dict.fromkeys(document.claimed, 1))  # one claim per unchanged item
        named: dict[int, tuple[int, int | None]] = {}  # entry id → its item's digests
        for guid_key, (entry, key) in document.listed.items():
            if guid_key in inserted:
                entry_id, alone = inserted[guid_key], True
            else:
                row = stored.same_entry(document.feed_id, key)
                if row is None:
                    continue
                entry_id = row.id
                # Any other row a key of the item recognises is marked seen by the item,
                # which the next parse would not do if it left the item out. So the row
                # must hold every key the item has: link and title keys are unique, so then
                # no other row holds one now, nor can one later (a key no row holds could
                # be taken by the next item recorded, of this feed or another). And it must
                # hold the item's guid and date: the next parse keys the items it reads
                # against those of the items it leaves out (`listed_items`).
                alone = (
                    row.guid_key == guid_key
                    and row.feed_id == document.feed_id
                    and key.link_key in (None, row.link_key)
                    and key.title_key in (None, row.title_key)
                    and row.guid == entry.guid
                    and row.published_at == _ts(entry.published)
                )
            claims[entry_id] += 1
            if alone and entry.item_digest is not None:
                named[entry_id] = (entry.item_digest, entry.field_digest)
        named = {entry_id: item for entry_id, item in named.items() if claims[entry_id] == 1}
        keep = {entry_id for entry_id in document.claimed if claims[entry_id] == 1}
        keep.update(named)
        # One statement whatever the document's size: the ids to keep go as one JSON array.
        await self.db.execute(
            """UPDATE entries SET item_digest = NULL, field_digest = NULL
               WHERE feed_id = ? AND item_digest IS NOT NULL
                 AND id NOT IN (SELECT value FROM json_each(?))""",
            (document.feed_id, json.dumps(sorted(keep))),
        )
        if named:
            await self.db.executemany(
                "UPDATE entries SET item_digest = ?, field_digest = ? WHERE id = ?",
                [(item, fields, entry_id) for entry_id, (item, fields) in named.items()],
            )
        renamed = [
            (redigested[position], entry_id)
            for entry_id, position in document.claimed.items()
            if position in redigested
        ]
        if renamed:
            await self.db.executemany(
                "UPDATE entries SET item_digest = ? WHERE id = ? AND item_digest IS NOT NULL",
                renamed,
            )

    async def _seen_again(
        self, items: Sequence[tuple[Entry, EntryKeys]], now: datetime
    ) -> _StoredKeys:
        """Mark the stored entries that any key of `items` recognises as seen `now`: a link
        another feed recorded first counts as seen too, or pruning it would let this feed's
        copy through as new. Return those rows' keys."""
        stored = _StoredKeys()
        for piece in chunks(items):
            chunk = [key for _, key in piece]
            guid_keys = [key.guid_key for key in chunk]
            link_keys = [key.link_key for key in chunk if key.link_key is not None]
            title_keys = [key.title_key for key in chunk if key.title_key is not None]
            for row in await self.db.execute_fetchall(
                f"""UPDATE entries SET last_seen_at = ?
                    WHERE guid_key IN ({",".join("?" * len(guid_keys))})
                       OR link_key IN ({",".join("?" * len(link_keys))})
                       OR title_key IN ({",".join("?" * len(title_keys))})
                    RETURNING id, feed_id, guid_key, link_key, title_key, content_key, guid,
                              published_at""",
                (_ts(now), *guid_keys, *link_keys, *title_keys),
            ):
                stored.add(_StoredEntry(*row))
        return stored

    async def _record_changes(
        self,
        document: _Document,
        known: Sequence[tuple[Entry, EntryKeys]],
        stored: _StoredKeys,
        inserted_ids: Collection[int],
        now: datetime,
    ) -> list[UpdatedEntry]:
        """Compare the known entries of this feed with what was recorded of them; record and
        return those whose words changed.

        A known item is the entry its guid names, else the entry of this feed at its link,
        else the one with its title and minute (a link recorded by another feed is another
        outlet's text: seen, not compared). An entry recorded before there were content
        keys is recorded as it is now, silently. Another content key is a change only if the
        recorded words, folded as today, differ too: a change in folding alone must not turn
        every known entry into an updated one (the key is refreshed, silently too). An
        entry that an unchanged item named earlier in the document is as that item has it:
        the first item wins, as between items compared here."""
        items: dict[int, tuple[Entry, EntryKeys, str | None]] = {}
        for entry, key in known:
            row = stored.same_entry(document.feed_id, key)
            # A row this document inserted is an item listed twice under two identities.
            if row is None or row.id in inserted_ids or row.id in items:
                continue
            claimed_at = document.claimed.get(row.id)
            if claimed_at is not None and claimed_at < document.positions[key.guid_key]:
                continue
            items[row.id] = (entry, key, row.content_key)
        silent = [id_ for id_, (_, _, was) in items.items() if was is None]
        changed = [
            id_ for id_, (_, key, was) in items.items() if was not in (None, key.content_key)
        ]
        updated: list[UpdatedEntry] = []
        for chunk in chunks(changed):
            async with self.db.execute(
                f"""SELECT id, guid, link, title, summary, published_at FROM entries
                    WHERE id IN ({",".join("?" * len(chunk))})""",
                chunk,
            ) as cursor:
                previous = {
                    row[0]: Entry(row[1], row[2], row[3], row[4], _dt(row[5]))
                    for row in await cursor.fetchall()
                }
            for id_ in chunk:
                entry, key, _ = items[id_]
                before = previous[id_]
                if content_key(before.title, before.summary) == key.content_key:
                    silent.append(id_)
                else:
                    updated.append(UpdatedEntry(id=id_, entry=entry, previous=before))
        if updated:
            await self.db.executemany(
                """UPDATE entries SET title = ?, summary = ?, content_key = ?, updated_at = ?
                   WHERE id = ?""",
                [
                    (u.entry.title, u.entry.summary, items[u.id][1].content_key, _ts(now), u.id)
                    for u in updated
                ],
            )
        if silent:
            await self.db.executemany(
                "UPDATE entries SET title = ?, summary = ?, content_key = ? WHERE id = ?",
                [
                    (items[id_][0].title, items[id_][0].summary, items[id_][1].content_key, id_)
                    for id_ in silent
                ],
            )
        return updated

    async def enqueue(self, alerts: Sequence[Alert], now: datetime) -> int:
        """Add alerts to the outbox (one row per entry x chat); return how many were new."""
        if not alerts:
            return 0
        cursor = await self.db.executemany(
            """INSERT OR IGNORE INTO outbox (entry_id, chat_id, text, rules, next_attempt_at,
               created_at) VALUES (?, ?, ?, ?, ?, ?)""",
            [
                (a.entry_id, a.chat_id, a.text, " ".join(a.rules), _ts(now), _ts(now))
                for a in alerts
            ],
        )
        return max(cursor.rowcount, 0)

    async def alerted_chats(self, entry_ids: Sequence[int]) -> set[tuple[int, int]]:
        """(entry id, chat id) of the chats that had, or will have, an alert about these
        entries: an outbox row whatever its status, or a held alert, whether a digest
        has carried it yet or not; a migrated chat under its old and its new id. And a
        version told, which outlives both (they go with [retention] outbox, it with the
        entry)."""
        found: set[tuple[int, int]] = set()
        for chunk in chunks(entry_ids, ROWS_PER_STATEMENT // 3):  # each id is given thrice
            marks = ",".join("?" * len(chunk))
            found.update(
                (row[0], row[1])
                for row in await self.db.execute_fetchall(
                    f"""SELECT entry_id, chat_id FROM outbox WHERE entry_id IN ({marks})
                        UNION SELECT entry_id, chat_id FROM held_alerts
                        WHERE entry_id IN ({marks})
                        UNION SELECT entry_id, chat_id FROM versions_told
                        WHERE entry_id IN ({marks})""",
                    [*chunk, *chunk, *chunk],
                )
            )
        # A chat Telegram moved had, under its new id, what it had under the old one (sent
        # rows keep the id they were sent to).
        migrations = "SELECT old_chat_id, new_chat_id FROM chat_migrations"
        moved = {int(old): int(new) for old, new in await self.db.execute_fetchall(migrations)}
        if moved:
            found |= {(entry, moved[chat]) for entry, chat in found if chat in moved}
        return found

    async def told(self, versions: Sequence[tuple[int, int, str]], now: datetime) -> None:
        """Record that chats were told of entries as they read now: (entry id, chat id,
        content key) of each alert queued."""
        await self.db.executemany(
            """INSERT OR IGNORE INTO versions_told (entry_id, chat_id, content_key, told_at)
               VALUES (?, ?, ?, ?)""",
            [(entry_id, chat_id, content, _ts(now)) for entry_id, chat_id, content in versions],
        )

    async def untold(self, versions: Sequence[tuple[int, int, str]]) -> set[tuple[int, int]]:
        """Of (entry id, chat id, content key), the (entry, chat) pairs whose chat was never
        told of that version and has no digest still to come that holds the entry (it will
        show the entry as it reads then)."""
        told: set[tuple[int, int, str]] = set()
        pending: set[tuple[int, int]] = set()
        entry_ids = sorted({entry_id for entry_id, _, _ in versions})
        for chunk in chunks(entry_ids, ROWS_PER_STATEMENT // 2):  # each id is given twice
            marks = ",".join("?" * len(chunk))
            for entry_id, chat_id, content in await self.db.execute_fetchall(
                f"""SELECT entry_id, chat_id, content_key FROM versions_told
                    WHERE entry_id IN ({marks})
                    UNION ALL SELECT entry_id, chat_id, NULL FROM held_alerts
                    WHERE entry_id IN ({marks}) AND released_at IS NULL""",
                [*chunk, *chunk],
            ):
                if content is None:
                    pending.add((entry_id, chat_id))
                else:
                    told.add((entry_id, chat_id, content))
        return {
            (entry_id, chat_id)
            for entry_id, chat_id, content in versions
            if (entry_id, chat_id, content) not in told and (entry_id, chat_id) not in pending
        }

    async def hold(self, chat_id: int, entry_id: int, rules: Sequence[str], now: datetime) -> None:
        """Keep an alert for a muted or digest subscriber's next digest."""
        await self.db.execute(
            """INSERT OR IGNORE INTO held_alerts (chat_id, entry_id, rules, created_at)
               VALUES (?, ?, ?, ?)""",
            (chat_id, entry_id, " ".join(rules), _ts(now)),
        )

    async def feed_succeeded(self, feed_id: int, success: FeedSuccess) -> None:
        await self.db.execute(FEED_SUCCEEDED_SQL, feed_succeeded_params(feed_id, success))

    async def feed_failed(
        self,
        feed_id: int,
        *,
        now: datetime,
        status: int | None,
        error: str,
        next_check_at: datetime,
    ) -> None:
        await self.db.execute(
            """UPDATE feeds SET consecutive_errors = consecutive_errors + 1, last_status = ?,
               last_error = ?, next_check_at = ?, last_checked_at = ? WHERE id = ?""",
            (status, error, _ts(next_check_at), _ts(now), feed_id),
        )

    async def feed_marked_failing(self, feed_id: int, now: datetime) -> None:
        await self.db.execute(
            "UPDATE feeds SET failing_since = ? WHERE id = ?", (_ts(now), feed_id)
        )

    async def mark_history(self, entry_ids: Sequence[int]) -> None:
        """New entries the daemon does not alert as news (see schema v20)."""
        for chunk in chunks(list(entry_ids)):
            await self.db.execute(
                f"UPDATE entries SET history = 1 WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )

    async def feed_moved(self, feed_id: int, url: str) -> None:
        """A permanent redirect: fetch `url` from now on (until the config URL changes)."""
        await self.db.execute("UPDATE feeds SET url = ? WHERE id = ?", (url, feed_id))

    async def feed_disabled(
        self, feed_id: int, *, now: datetime, status: int | None, reason: str
    ) -> None:
        await self.db.execute(
            """UPDATE feeds SET disabled_at = ?, disabled_reason = ?, last_status = ?,
               last_error = ?, last_checked_at = ?, next_check_at = NULL WHERE id = ?""",
            (_ts(now), reason, status, reason, _ts(now), feed_id),
        )
