"""Schema migrations, numbered. `PRAGMA user_version` holds the number of the last one applied.

Append a function to MIGRATIONS to change the schema; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from watcher.identity import (
    link_guid_key,
    link_key,
    normalised_spelling,
    plainly_spelt,
    spelled_url,
)

Migration = Callable[[sqlite3.Connection], None]


def statements(script: str) -> Iterator[str]:
    """Split a script into statements so they run inside the caller's transaction
    (`executescript` would commit first)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:60]!r}")


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    for statement in statements(script):
        db.execute(statement)


def _v1_initial(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE feeds (
            id                 INTEGER PRIMARY KEY,
            name               TEXT NOT NULL UNIQUE,
            url                TEXT NOT NULL,
            active             INTEGER NOT NULL DEFAULT 1,
            etag               TEXT,
            last_modified      TEXT,
            body_hash          TEXT,
            next_check_at      REAL,          -- unix seconds, NULL = due now
            consecutive_errors INTEGER NOT NULL DEFAULT 0,
            last_status        INTEGER,
            last_error         TEXT,
            last_checked_at    REAL,
            last_success_at    REAL,
            created_at         REAL NOT NULL
        );

        -- One row per entry ever seen. Either unique key marks a newcomer as already seen,
        -- so INSERT OR IGNORE ... RETURNING yields exactly the new entries.
        CREATE TABLE entries (
            id            INTEGER PRIMARY KEY,
            feed_id       INTEGER NOT NULL REFERENCES feeds(id),
            guid_key      TEXT NOT NULL UNIQUE,
            link_key      TEXT UNIQUE,
            guid          TEXT,
            link          TEXT,
            title         TEXT NOT NULL,
            summary       TEXT NOT NULL,
            published_at  REAL,
            first_seen_at REAL NOT NULL
        );
        CREATE INDEX entries_feed ON entries(feed_id);

        -- One row per alert x chat, written in the transaction that records the entry.
        CREATE TABLE outbox (
            id              INTEGER PRIMARY KEY,
            entry_id        INTEGER REFERENCES entries(id),
            chat_id         INTEGER NOT NULL,
            text            TEXT NOT NULL,
            rules           TEXT NOT NULL,     -- space-separated rule names
            status          TEXT NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'sent', 'dead')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            created_at      REAL NOT NULL,
            sent_at         REAL,
            message_id      INTEGER,
            last_error      TEXT,
            UNIQUE (entry_id, chat_id)
        );
        CREATE INDEX outbox_pending ON outbox(next_attempt_at, id) WHERE status = 'pending';
        """,
    )


def _v2_feed_moves_and_health(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- `url` is where the feed is fetched now: a permanent redirect moves it, while
        -- `config_url` remembers what the operator wrote, so an edit of the config wins.
        ALTER TABLE feeds ADD COLUMN config_url TEXT;
        UPDATE feeds SET config_url = url;
        -- 410 Gone: not polled again until its configured URL changes.
        ALTER TABLE feeds ADD COLUMN disabled_at REAL;
        ALTER TABLE feeds ADD COLUMN disabled_reason TEXT;
        -- Set when the feed reached the failing threshold and the operator was told.
        ALTER TABLE feeds ADD COLUMN failing_since REAL;
        """,
    )


def _v3_feed_ttl(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- The feed's RSS <ttl> in seconds, remembered for the 304s that follow.
        ALTER TABLE feeds ADD COLUMN ttl_s INTEGER;
        -- "auto" intervals count a feed's recent entries.
        CREATE INDEX entries_feed_seen ON entries(feed_id, first_seen_at);
        """,
    )


def _v4_subscribers(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE subscribers (
            chat_id     INTEGER PRIMARY KEY,
            active      INTEGER NOT NULL DEFAULT 1,   -- 0 after the chat blocked the bot
            muted_until REAL,
            digest      TEXT NOT NULL DEFAULT 'off' CHECK (digest IN ('off', 'hourly', 'daily')),
            digest_time TEXT,                         -- 'HH:MM' for daily digests
            created_at  REAL NOT NULL
        );
        CREATE TABLE subscriptions (
            chat_id    INTEGER NOT NULL REFERENCES subscribers(chat_id),
            rule       TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (chat_id, rule)
        );
        CREATE INDEX subscriptions_rule ON subscriptions(rule);
        -- Per-chat order of pending outbox rows (see Store.due_outbox).
        CREATE INDEX outbox_pending_chat ON outbox(chat_id, id) WHERE status = 'pending';
        -- Alerts held for a muted or digest subscriber until the next digest.
        CREATE TABLE held_alerts (
            chat_id    INTEGER NOT NULL,
            entry_id   INTEGER NOT NULL REFERENCES entries(id),
            rules      TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (chat_id, entry_id)
        );
        -- Chats Telegram moved (group -> supergroup): config chat ids are mapped through it.
        CREATE TABLE chat_migrations (
            old_chat_id INTEGER PRIMARY KEY,
            new_chat_id INTEGER NOT NULL,
            migrated_at REAL NOT NULL
        );
        """,
    )


def _v5_due_index(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- A new feed is due at once: a time, not NULL, so "due" is one range scan.
        UPDATE feeds SET next_check_at = created_at WHERE next_check_at IS NULL;
        CREATE INDEX feeds_due ON feeds(next_check_at, id)
            WHERE active = 1 AND disabled_at IS NULL;
        """,
    )


def _v6_retention(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- When an entry was last in a parsed document of any feed (by either of its keys).
        -- Rows from before this version have only first_seen_at to go by.
        ALTER TABLE entries ADD COLUMN last_seen_at REAL;
        UPDATE entries SET last_seen_at = first_seen_at;
        -- When the feed's body was last parsed, i.e. when its list of entries was last
        -- known. NULL for a feed not parsed since this version: its entries are kept until
        -- it is, because nobody knows which of them it still lists.
        ALTER TABLE feeds ADD COLUMN last_parsed_at REAL;
        -- Retention: the oldest entries first; an entry is kept while an outbox row or a
        -- held alert refers to it; delivered outbox rows by the time they were settled.
        CREATE INDEX entries_last_seen ON entries(last_seen_at);
        CREATE INDEX held_alerts_entry ON held_alerts(entry_id);
        CREATE INDEX outbox_settled ON outbox(coalesce(sent_at, created_at))
            WHERE status IN ('sent', 'dead');
        """,
    )


def _v7_entry_versions(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- A third identity, scoped to the feed: the folded title and the publication time.
        -- It recognises an item whose guid and link both changed (feeds that churn guids).
        -- NULL for an undated entry and for entries recorded before this version.
        ALTER TABLE entries ADD COLUMN title_key TEXT;
        CREATE UNIQUE INDEX entries_title_key ON entries(title_key) WHERE title_key IS NOT NULL;
        -- A digest of the folded title and summary as last recorded: when a known entry
        -- comes back with another digest, its text changed (an updated entry). NULL: not
        -- known yet (recorded before this version); the next sighting fills it in.
        ALTER TABLE entries ADD COLUMN content_key TEXT;
        ALTER TABLE entries ADD COLUMN updated_at REAL;
        """,
    )


def _v8_stories(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- The story an alerted entry belongs to: the id of the story's first entry (its
        -- own id for a new story). NULL for entries that alerted nobody.
        ALTER TABLE entries ADD COLUMN story_id INTEGER;
        CREATE INDEX entries_story ON entries(story_id) WHERE story_id IS NOT NULL;
        -- An outbox row that edits a message sent before (the other outlets of a story),
        -- naming the outbox row of that message. Its entry_id is the entry it adds: a chat
        -- gets a message or an edit for an entry, never both, so (entry, chat) stays unique.
        ALTER TABLE outbox ADD COLUMN edit_of INTEGER;
        CREATE INDEX outbox_edit_of ON outbox(edit_of) WHERE edit_of IS NOT NULL;
        """,
    )


def _v9_released_digests(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- When a digest carried the held alert. The row stays (until [retention] outbox)
        -- as the record that the chat had the entry: an update of it must not hold it for
        -- the next digest again, nor send it as a message.
        ALTER TABLE held_alerts ADD COLUMN released_at REAL;
        CREATE INDEX held_alerts_released ON held_alerts(released_at)
            WHERE released_at IS NOT NULL;
        """,
    )


def _v10_versions_told(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- The versions of an entry's text (content keys) each chat was told of, by a message
        -- or a digest: with [stories] realert_on_update a chat hears of each version once,
        -- however often a feed flips between versions.
        CREATE TABLE versions_told (
            entry_id    INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
            chat_id     INTEGER NOT NULL,
            content_key TEXT NOT NULL,
            told_at     REAL NOT NULL,
            PRIMARY KEY (entry_id, chat_id, content_key)
        ) WITHOUT ROWID;
        """,
    )


def _v11_feed_user_agent(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- The User-Agent the config gives a feed (NULL: Watcher's own). A feed whose
        -- User-Agent changes is checked at once, as one whose URL changes: a site that
        -- refused the old one should not wait out hours of backoff.
        ALTER TABLE feeds ADD COLUMN user_agent TEXT;
        """,
    )


def _v12_listed_items(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- The digest of the item (watcher.parse.item_digest) that named this entry by its
        -- guid, alone, in the last document its feed parsed; NULL for every other entry.
        -- The next document's items with one of its feed's digests are the same items,
        -- parsed to the same entries: the parse skips them and the poll only marks their
        -- entries seen.
        ALTER TABLE entries ADD COLUMN item_digest INTEGER;
        CREATE INDEX entries_listed ON entries(feed_id) WHERE item_digest IS NOT NULL;
        """,
    )


def _v13_field_digests(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- Where item_digest is the digest of the item's bytes (watcher.feed_items), the
        -- digest of its fields too: an item whose bytes change at every fetch (a view count
        -- in a comment) is read again, but still not made into an entry again.
        ALTER TABLE entries ADD COLUMN field_digest INTEGER;
        """,
    )


def _v14_feed_interval(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- The interval the config gives a feed (0: "auto"; NULL: not recorded yet): an
        -- edit that shortens it (or trades "auto" for an interval) brings the next check
        -- forward, instead of leaving it where the old one put it.
        ALTER TABLE feeds ADD COLUMN interval_s INTEGER;
        """,
    )


def _v15_story_times(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- The time the story index counts an alerted entry from (its publication, or when
        -- it was placed if undated or dated ahead), so that a restart puts it back as it
        -- was: an entry an update made match days after its first sighting counts from
        -- then. NULL for entries placed before this version (their first sighting stands
        -- in).
        ALTER TABLE entries ADD COLUMN story_at REAL;
        """,
    )


def _linked_entries(
    db: sqlite3.Connection, batch: int = 10_000
) -> Iterator[tuple[int, int, str, str, str | None]]:
    """(id, feed id, link, guid key, link key) of every entry with a link, read a batch at
    a time by id: a database of months holds hundreds of thousands."""
    after = 0
    while rows := db.execute(
        """SELECT id, feed_id, link, guid_key, link_key FROM entries
           WHERE link IS NOT NULL AND id > ? ORDER BY id LIMIT ?""",
        (after, batch),
    ).fetchall():
        yield from rows
        after = rows[-1][0]


def _v16_respelled_links(db: sqlite3.Connection) -> None:
    """Link keys, and the guid keys of entries known by their link, over canonical links
    whose path and host are spelt one way (Unicode or percent-encoded, punycode or not):
    one article spelt two ways by two feeds was two entries. A key is replaced only where
    it is the one the old spelling gives, and kept where another entry holds the new one
    already (both spellings then find one of the two entries, as before)."""
    for entry_id, feed_id, link, guid_key, old_link_key in _linked_entries(db):
        if plainly_spelt(link):  # most links, and a canonical form no spelling changes
            continue
        old = spelled_url(link)
        new = normalised_spelling(old)
        if new == old:
            continue
        if old_link_key == link_key(old):
            db.execute(
                "UPDATE OR IGNORE entries SET link_key = ? WHERE id = ?", (link_key(new), entry_id)
            )
        if guid_key == link_guid_key(feed_id, old):
            db.execute(
                "UPDATE OR IGNORE entries SET guid_key = ? WHERE id = ?",
                (link_guid_key(feed_id, new), entry_id),
            )


def _v17_waiting_held_alerts(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- The minute job asks which chats have alerts waiting for a digest, and since when:
        -- those few rows, not the month of released ones kept beside them.
        CREATE INDEX held_alerts_waiting ON held_alerts(chat_id, created_at)
            WHERE released_at IS NULL;
        """,
    )


def _v18_given_up_outbox(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- Counting the outbox by status (the watchdog's STATUS line, every /metrics scrape)
        -- goes by the few pending and given-up rows' own indexes, and the whole table's
        -- smallest index for the rest, not through a month of rows and their texts.
        CREATE INDEX outbox_dead ON outbox(id) WHERE status = 'dead';
        """,
    )


def _v19_moved_feeds(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- When the config gave a feed another URL, until the new URL's first success: its
        -- first document's backlog is no news, but what was published since the old URL's
        -- last success is.
        ALTER TABLE feeds ADD COLUMN moved_at REAL;
        """,
    )


def _v20_history_entries(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        -- An entry the daemon took for history, not news, when it first saw it: a new
        -- feed's backlog, the old items of a feed's first document at a new URL, anything
        -- dated before the retention horizon. `watcher replay` leaves them out, as the
        -- daemon did. Entries recorded before this version count as news.
        ALTER TABLE entries ADD COLUMN history INTEGER NOT NULL DEFAULT 0;
        """,
    )


MIGRATIONS: tuple[Migration, ...] = (
    _v1_initial,
    _v2_feed_moves_and_health,
    _v3_feed_ttl,
    _v4_subscribers,
    _v5_due_index,
    _v6_retention,
    _v7_entry_versions,
    _v8_stories,
    _v9_released_digests,
    _v10_versions_told,
    _v11_feed_user_agent,
    _v12_listed_items,
    _v13_field_digests,
    _v14_feed_interval,
    _v15_story_times,
    _v16_respelled_links,
    _v17_waiting_held_alerts,
    _v18_given_up_outbox,
    _v19_moved_feeds,
    _v20_history_entries,
)
SCHEMA_VERSION = len(MIGRATIONS)


def version_problem(path: Path, version: int, then: str) -> str:
    """What to tell the operator about a database of another schema version than this
    Watcher's; `then` is what to do once the daemon has upgraded it."""
    if version > SCHEMA_VERSION:
        return (
            f"{path}: database schema version {version} is newer than this Watcher "
            f"understands ({SCHEMA_VERSION}); upgrade Watcher"
        )
    if version == 0:
        return f"{path} is not a Watcher database (schema version 0)"
    return (
        f"{path}: database schema version {version} is older than this Watcher's "
        f"({SCHEMA_VERSION}); start the daemon once (`watcher run`) to upgrade it, then "
        f"{then}"
    )
