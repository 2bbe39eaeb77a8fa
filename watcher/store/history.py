"""Read-only access to the recorded entries, for `watcher replay`.

Opened for reading only (`watcher.store.reading`, `PRAGMA query_only`): it never creates a
database where there is none, never migrates one, and never writes to it, so it is safe
beside the running daemon (in WAL mode a reader neither blocks the writer nor waits for it).
A database of another schema version is refused rather than read with a guess at its
columns.

Plain sqlite3 rather than aiosqlite: the one caller is a command that does nothing else while
it reads, and a blocking cursor streams rows at no cost.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from watcher.errors import StoreError
from watcher.model import oldest_first
from watcher.store.reading import reading_uri
from watcher.store.schema import SCHEMA_VERSION, version_problem
from watcher.store.timestamps import from_db, to_db

_BUSY_TIMEOUT_S = 5.0
_ROWS_PER_FETCH = 500


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as recorded, with the time it stands at in time order (`at`): its
    publication time, but never later than when it was first seen (a feed that dates its
    items in the future does not get to jump the queue), or the latter when it has none."""

    id: int
    feed: str  # the feed's name, configured or not any more
    link: str | None
    title: str
    summary: str
    published: datetime | None
    first_seen: datetime
    at: datetime


class EntryHistory:
    """The entries of a database, read-only. Open with `EntryHistory.open(path)`; close it
    (or use `with`)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    def open(cls, path: Path) -> EntryHistory:
        """Raises StoreError when there is no database at `path`, when it is not one, or
        when its schema is not the one this Watcher writes."""
        if not path.is_file():
            raise StoreError(f"no database at {path} (has the daemon run with this config?)")
        try:
            db = sqlite3.connect(
                reading_uri(path), uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        try:
            db.execute("PRAGMA query_only = ON")
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"cannot read the database {path}: {exc}") from exc
        if version != SCHEMA_VERSION:
            db.close()
            raise StoreError(version_problem(path, version, "replay"))
        return cls(db, path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def total_changes(self) -> int:
        """Rows this connection changed: always 0 (tests hold it to that)."""
        return self._db.total_changes

    def entries_since(self, since: datetime) -> Generator[StoredEntry, None, None]:
        """The entries first seen at or after `since` that the daemon took for news (not a
        new feed's backlog, nor items dated before the retention horizon: schema v20), in
        the order the daemon placed them: by poll, and within a poll's document oldest first
        (`in_daemon_order`), a few hundred rows at a time.

        One read transaction spans the whole iteration: it sees one consistent state however
        much the daemon records meanwhile. Close the iterator (or exhaust it) to end it."""
        with closing(self._db.cursor()) as cursor:
            cursor.arraysize = _ROWS_PER_FETCH
            try:
                cursor.execute("BEGIN")
                cursor.execute(
                    """SELECT e.id, f.name, e.link, e.title, e.summary,
                              e.published_at, e.first_seen_at,
                              coalesce(min(e.published_at, e.first_seen_at), e.first_seen_at)
                                  AS at
                       FROM entries AS e JOIN feeds AS f ON f.id = e.feed_id
                       WHERE e.first_seen_at >= ? AND e.history = 0
                       ORDER BY e.first_seen_at, e.id""",
                    (to_db(since),),
                )
                # One poll's entries: one feed, one first-seen time, ids in document order.
                poll: list[StoredEntry] = []
                while rows := cursor.fetchmany():
                    for row in rows:
                        entry = _stored_entry(row)
                        if poll and (entry.first_seen, entry.feed) != (
                            poll[0].first_seen,
                            poll[0].feed,
                        ):
                            yield from in_daemon_order(poll)
                            poll = []
                        poll.append(entry)
                yield from in_daemon_order(poll)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the entries of {self.path}: {exc}") from exc
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")


def in_daemon_order(poll: list[StoredEntry]) -> list[StoredEntry]:
    """PURE: one poll's entries (in document order) in the order the daemon placed them in
    stories (`watcher.model.oldest_first`, as `watcher.pipeline` does). The order decides
    which of a feed's entries joins a story (one per feed)."""
    return oldest_first(poll, lambda entry: entry.published)


def _stored_entry(row: Any) -> StoredEntry:
    (entry_id, feed, link, title, summary, published, first_seen, at) = row
    return StoredEntry(
        id=entry_id,
        feed=feed,
        link=link,
        title=title,
        summary=summary,
        published=from_db(published),
        first_seen=_moment(first_seen),
        at=_moment(at),
    )


def _moment(value: float) -> datetime:
    moment = from_db(value)
    assert moment is not None  # of a NOT NULL column
    return moment
