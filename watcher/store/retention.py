"""Retention: forget old entries and settled outbox rows, keeping what dedupe needs.

An entry row is what makes a feed item "already seen". Deleting the row of an item its feed
still lists would let the next changed document bring it back as new, and alert again. So an
entry is deleted only when all of these hold:

- it was last seen (in any parsed document, by guid or link) before the retention horizon;
- its feed has parsed a document since, without it (`entries.last_seen_at` <
  `feeds.last_parsed_at`); a feed no longer configured, or disabled after a 410, lists
  nothing;
- if it has a link, every configured feed has parsed a document since it was last seen: the
  link key is global, so any feed listing the same article keeps it alive. The database does
  not remember which feeds list which links, so a feed not parsed for a while (its body
  unchanged, or failing) holds back the pruning of linked entries seen after its last parse;
  `PruneReport.waiting_on` names it. Not for ever: a feed last parsed two retention periods
  ago or more (unchanged, or failing, all that time) holds nothing back, or one such feed
  would keep every linked entry of every feed for good. What it still lists is that old,
  and comes back dated before the horizon (the pipeline alerts nothing published before
  it); an undated item it shares with another feed could alert again;
- no outbox row and no held alert refers to it (delivered outbox rows and held alerts a
  digest carried go first, once past their own retention; an entry outlives the rows about
  it, never the other way round).

An outbox row that edits a message (`edit_of`: another outlet of the message's story) goes
with that message, or before it: a message past its retention is kept while an edit of it is
pending (the edit needs its Telegram id), and deleted together with its settled edits.

Deletes run in batches, each in its own short write transaction, so the daemon's writes
interleave with a long prune.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.store.sqlite import Store

log = logging.getLogger(__name__)

BATCH_ROWS = 500


@dataclass(frozen=True, slots=True)
class PruneReport:
    outbox_deleted: int  # settled outbox rows, and held alerts a digest carried
    entries_deleted: int
    batches: int  # write transactions used
    seconds: float
    # Linked entries past the horizon kept only because a configured feed was last parsed
    # before they were last seen (it might list them: see the module docstring), and the
    # feed with the oldest parse, which holds them back; None when nothing is held back.
    held_back: int = 0
    waiting_on: str | None = None


async def prune(
    store: Store,
    now: datetime,
    *,
    keep_entries_s: int,
    keep_outbox_s: int,
    batch_rows: int = BATCH_ROWS,
) -> PruneReport:
    """Delete sent and dead outbox rows settled more than `keep_outbox_s` ago, then the
    entries no feed lists any more that were last seen more than `keep_entries_s` ago;
    then let SQLite refresh its statistics (`PRAGMA optimize`)."""
    started = time.monotonic()
    outbox_horizon = now - timedelta(seconds=keep_outbox_s)
    entry_horizon = now - timedelta(seconds=keep_entries_s)
    outbox_deleted, outbox_batches = await _prune_outbox(store, outbox_horizon, batch_rows)
    released, released_batches = await _prune_released(store, outbox_horizon, batch_rows)
    outbox_deleted += released
    outbox_batches += released_batches
    listing_since = now - timedelta(seconds=2 * keep_entries_s)
    entries_deleted, entry_batches = await _prune_entries(
        store, entry_horizon, listing_since, batch_rows
    )
    held_back, waiting_on = await _held_back(store, entry_horizon, listing_since)
    await optimize(store)
    report = PruneReport(
        outbox_deleted=outbox_deleted,
        entries_deleted=entries_deleted,
        batches=outbox_batches + entry_batches,
        seconds=time.monotonic() - started,
        held_back=held_back,
        waiting_on=waiting_on,
    )
    waiting = (
        f"; kept {held_back} more with links seen after feed {waiting_on!r} was last parsed"
        if waiting_on
        else ""
    )
    log.info(
        "retention: deleted %d entries last seen before %s and %d outbox rows settled "
        "before %s (%d batches, %.2f s)%s",
        report.entries_deleted,
        entry_horizon.isoformat(timespec="seconds"),
        report.outbox_deleted,
        outbox_horizon.isoformat(timespec="seconds"),
        report.batches,
        report.seconds,
        waiting,
    )
    return report


async def _prune_outbox(store: Store, horizon: datetime, batch_rows: int) -> tuple[int, int]:
    deleted = batches = 0
    while True:
        async with store.write() as tx:
            async with tx.db.execute(
                """SELECT id FROM outbox AS o
                   WHERE status IN ('sent', 'dead') AND coalesce(sent_at, created_at) < ?
                     AND NOT EXISTS (SELECT 1 FROM outbox AS edit
                                     WHERE edit.edit_of = o.id AND edit.status = 'pending')
                   LIMIT ?""",
                (horizon.timestamp(), batch_rows),
            ) as cursor:
                doomed = [row[0] for row in await cursor.fetchall()]
            in_batch = 0
            if doomed:
                marks = ",".join("?" * len(doomed))
                # Edits first: none may outlive the message it names.
                for sql in (
                    f"DELETE FROM outbox WHERE edit_of IN ({marks})",
                    f"DELETE FROM outbox WHERE id IN ({marks})",
                ):
                    cursor = await tx.db.execute(sql, doomed)
                    in_batch += max(cursor.rowcount, 0)
        deleted += in_batch
        batches += 1
        if len(doomed) < batch_rows:
            return deleted, batches
        await asyncio.sleep(0)  # the write lock is fair: waiting writers go first


async def _prune_released(store: Store, horizon: datetime, batch_rows: int) -> tuple[int, int]:
    """Held alerts a digest carried before `horizon`: like sent outbox rows."""
    deleted = batches = 0
    while True:
        async with store.write() as tx:
            cursor = await tx.db.execute(
                """DELETE FROM held_alerts WHERE rowid IN
                   (SELECT rowid FROM held_alerts
                    WHERE released_at IS NOT NULL AND released_at < ? LIMIT ?)""",
                (horizon.timestamp(), batch_rows),
            )
            in_batch = max(cursor.rowcount, 0)
        deleted += in_batch
        batches += 1
        if in_batch < batch_rows:
            return deleted, batches
        await asyncio.sleep(0)


async def _prune_entries(
    store: Store, horizon: datetime, listing_since: datetime, batch_rows: int
) -> tuple[int, int]:
    deleted = batches = 0
    # Keyset pagination over (last_seen_at, id): entries kept for a reference are not
    # scanned again by the next batch.
    after: tuple[float, int] = (float("-inf"), 0)
    while True:
        async with store.write() as tx:
            async with tx.db.execute(
                f"""WITH oldest_parse AS ({_OLDEST_PARSE})
                   SELECT e.id, e.last_seen_at,
                          (e.link_key IS NULL OR o.at IS NULL OR e.last_seen_at < o.at)
                          AND {_UNLISTED_UNREFERENCED}
                          -- Dates up to a day ahead are taken (local times labelled
                          -- +0000), and the pipeline alerts what is dated within the
                          -- horizon: an entry goes only once its date is past it too.
                          AND (e.published_at IS NULL OR e.published_at < ?)
                   FROM entries e JOIN feeds f ON f.id = e.feed_id
                        LEFT JOIN oldest_parse o
                   WHERE e.last_seen_at < ? AND (e.last_seen_at, e.id) > (?, ?)
                   ORDER BY e.last_seen_at, e.id LIMIT ?""",
                (
                    listing_since.timestamp(),
                    horizon.timestamp(),
                    horizon.timestamp(),
                    *after,
                    batch_rows,
                ),
            ) as cursor:
                rows = list(await cursor.fetchall())
            doomed = [row[0] for row in rows if row[2]]
            if doomed:
                await tx.db.execute(
                    f"DELETE FROM entries WHERE id IN ({','.join('?' * len(doomed))})", doomed
                )
        deleted += len(doomed)
        batches += 1
        if len(rows) < batch_rows:
            return deleted, batches
        after = (rows[-1][1], rows[-1][0])
        await asyncio.sleep(0)


# The configured, enabled feeds that were ever fetched, and parsed since a time (its one
# parameter: two retention periods ago): any of them may list any link. One fetched before
# `last_parsed_at` existed and not parsed since counts as parsed at the beginning of time,
# what it lists unknown, while it fetches successfully.
_LISTING_FEEDS = """FROM feeds WHERE active = 1 AND disabled_at IS NULL
    AND (last_parsed_at IS NOT NULL OR last_success_at IS NOT NULL)
    AND coalesce(last_parsed_at, last_success_at) >= ?"""
_OLDEST_PARSE = f"SELECT min(coalesce(last_parsed_at, -1)) AS at {_LISTING_FEEDS}"

# Entry `e` of feed `f` is not listed by its own feed and nothing refers to it.
_UNLISTED_UNREFERENCED = """(f.active = 0 OR f.disabled_at IS NOT NULL
        OR e.last_seen_at < f.last_parsed_at)
    AND NOT EXISTS (SELECT 1 FROM outbox WHERE entry_id = e.id)
    AND NOT EXISTS (SELECT 1 FROM held_alerts WHERE entry_id = e.id)"""


async def _held_back(
    store: Store, horizon: datetime, listing_since: datetime
) -> tuple[int, str | None]:
    """How many entries only the link rule keeps, and the feed that holds them back."""
    rows = await store._fetchall(  # reads, like the store's own: no transaction needed
        f"""WITH oldest_parse AS ({_OLDEST_PARSE})
            SELECT count(*) FROM entries e JOIN feeds f ON f.id = e.feed_id, oldest_parse o
            WHERE e.last_seen_at < ? AND e.link_key IS NOT NULL AND e.last_seen_at >= o.at
              AND {_UNLISTED_UNREFERENCED}""",
        (listing_since.timestamp(), horizon.timestamp()),
    )
    held_back = int(rows[0][0])
    if not held_back:
        return 0, None
    rows = await store._fetchall(
        f"SELECT name {_LISTING_FEEDS} ORDER BY coalesce(last_parsed_at, -1), name LIMIT 1",
        (listing_since.timestamp(),),
    )
    return held_back, str(rows[0][0])


async def optimize(store: Store) -> None:
    """`PRAGMA optimize`: SQLite re-analyses the tables whose statistics went stale, so the
    query planner keeps choosing the right indexes as tables grow and shrink. Cheap when
    there is nothing to do; run it daily and after a prune."""
    async with store.write() as tx:
        await tx.db.execute("PRAGMA optimize")
