"""Plain frozen data shared by every stage. No behaviour, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, TypeVar

T = TypeVar("T")

# Outbox rows addressed to this chat id are printed on stdout instead of sent: it is the
# destination the daemon uses when no Telegram token is configured.
CONSOLE_CHAT = 0


@dataclass(frozen=True, slots=True)
class FeedDef:
    """A feed as the operator configured it."""

    name: str
    url: str
    interval: int  # seconds between checks (with `auto`: the starting point)
    language: str | None = None
    auto_interval: bool = False  # adapt the interval to how often the feed publishes
    tags: tuple[str, ...] = ()  # operator's grouping (OPML categories); no effect on polling
    user_agent: str | None = None  # sent instead of Watcher's own (sites that want a browser's)


@dataclass(frozen=True, slots=True)
class RuleDef:
    """A rule as the operator configured it; `query` is compiled by watcher.rules."""

    name: str
    query: str
    chats: tuple[int, ...] = ()
    feeds: tuple[str, ...] = ()  # only entries of these feeds (empty: every feed)
    languages: tuple[str, ...] = ()  # only entries of feeds in these languages (empty: all)
    priority: int = 0  # higher first when several rules hit one entry


@dataclass(frozen=True, slots=True)
class Entry:
    """One feed item after parsing and normalising: text fields hold displayed text
    (HTML stripped, entities decoded, whitespace collapsed), not folded text."""

    guid: str | None
    link: str | None
    title: str
    summary: str
    published: datetime | None = None
    # The text identity (watcher.identity.TextIdentity), computed where the entry is parsed:
    # folding a long summary costs milliseconds, which the parse worker spends instead of
    # the event loop. None for an entry made elsewhere; then it is computed when needed.
    text_identity: TextIdentity | None = field(default=None, compare=False, repr=False)
    # The digest of the feed item this entry was parsed from: of its bytes in their context
    # where the document allows cutting items out (watcher.parse.raw_item_digest), else of
    # its fields (watcher.parse.item_digest). The same item parses to the same entry, so an
    # item whose digest the feed's previous document had need not be parsed again. None for
    # an entry made elsewhere, for one whose keys depend on other items of its document (a
    # guid or a minute shared with another item), and for one whose parse depended on the
    # time (a date too far ahead yet).
    item_digest: int | None = field(default=None, compare=False, repr=False)
    # Where item_digest is that of the item's bytes (watcher.feed_items), that of its fields
    # (watcher.parse.item_digest) as well: an item whose bytes change but not its fields is
    # read again, and known by this. None where item_digest is None or of the fields.
    field_digest: int | None = field(default=None, compare=False, repr=False)

    def __reduce__(self) -> tuple[type[Entry], tuple[object, ...]]:
        # Every parsed entry crosses from a parse worker to the daemon: rebuilt from a
        # tuple, it unpickles in half the time of the dataclass default (field by field).
        return (
            Entry,
            (
                self.guid,
                self.link,
                self.title,
                self.summary,
                self.published,
                self.text_identity,
                self.item_digest,
                self.field_digest,
            ),
        )


@dataclass(frozen=True, slots=True)
class TextIdentity:
    """What identity needs of an entry's text: its folded title words, and a digest of
    the folded words of its title and summary."""

    folded_title: str
    content_key: str

    def __reduce__(self) -> tuple[type[TextIdentity], tuple[str, str]]:
        return (TextIdentity, (self.folded_title, self.content_key))  # as Entry.__reduce__


@dataclass(frozen=True, slots=True)
class Span:
    """Where a rule matched: offsets into the displayed text of one field."""

    field: str  # "title" | "summary"
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    rule: str
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What the fetcher got back. `body` is None for a 304."""

    status: int
    url: str  # final URL after redirects
    body: bytes | None
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    moved_to: str | None = None  # the new URL when every redirect was permanent (301/308)
    fresh_for_s: float | None = None  # from Cache-Control max-age or Expires, if given

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class UnchangedItem(NamedTuple):
    """An item of a document that the feed's previous document had too, byte for byte or
    in every field an entry is made of: not made into an entry again."""

    position: int  # its place among the document's items (entries and unchanged items)
    digest: int  # the digest it was known by (Store.listed_items)
    # Known by its fields, its bytes changed: the digest of its bytes now, for the store to
    # know it by next time (or it would be read at every poll). None otherwise.
    item_digest: int | None = None


class KnownItem(NamedTuple):
    """What a parse must know of an item it leaves out as unchanged, to key the others
    alike (watcher.parse): the item's guid and the minute of its publication
    (`watcher.identity.title_key_minute`), as the store holds them for its entry."""

    guid: str | None
    minute: int | None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed document: its items in document order are `entries` with the `unchanged`
    items put back at their positions."""

    entries: tuple[Entry, ...]
    version: str  # feedparser's format name ("rss20", "atom10", ...); "" if unknown
    encoding: str | None = None
    warnings: tuple[str, ...] = ()
    ttl_s: int | None = None  # RSS <ttl>: how long the publisher says the feed stays fresh
    unchanged: tuple[UnchangedItem, ...] = ()  # only when the parse was told what was known

    @property
    def item_count(self) -> int:
        """How many items the document lists."""
        return len(self.entries) + len(self.unchanged)


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed's scheduling and fetch state as stored in SQLite."""

    id: int
    name: str
    url: str
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    next_check_at: datetime | None
    consecutive_errors: int
    last_status: int | None
    last_error: str | None
    last_success_at: datetime | None
    last_checked_at: datetime | None = None
    disabled_reason: str | None = None  # set when the feed is no longer polled (410 Gone)
    failing_since: datetime | None = None  # set once the operator was told it is failing
    config_url: str | None = None  # as configured; `url` differs after a permanent redirect
    ttl_s: int | None = None  # the feed's last RSS <ttl>, kept for the 304s that follow
    moved_at: datetime | None = None  # the config gave it another URL, not yet fetched


@dataclass(frozen=True, slots=True)
class FeedSuccess:
    """What a successful check (200 or 304) records about a feed."""

    checked_at: datetime
    status: int
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    next_check_at: datetime
    ttl_s: int | None = None


def oldest_first(items: Sequence[T], published: Callable[[T], datetime | None]) -> list[T]:
    """One document's items (in document order) in the order the daemon alerts and places
    them: by publication time; when one is undated, all in reversed document order (the
    usual newest-first listing turned around), and ties that way too."""
    reversed_items = list(reversed(items))
    if any(published(item) is None for item in reversed_items):
        return reversed_items
    return sorted(reversed_items, key=lambda item: published(item) or datetime.min)


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry the store had not seen before, with the id it was given."""

    id: int
    entry: Entry


@dataclass(frozen=True, slots=True)
class UpdatedEntry:
    """A known entry that came back with other words in its title or summary: `entry` as
    the feed lists it now, `previous` as it was recorded before."""

    id: int
    entry: Entry
    previous: Entry


@dataclass(frozen=True, slots=True)
class Alert:
    """One message to one chat about one entry (or, without an entry, a notice to an
    operator)."""

    entry_id: int | None
    chat_id: int
    text: str  # Telegram HTML
    rules: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    chat_id: int
    text: str
    attempts: int
    created_at: datetime | None = None


DIGEST_MODES = ("off", "hourly", "daily")


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A Telegram chat that talks to the bot and follows rules."""

    chat_id: int
    active: bool  # False once the chat blocked the bot (403)
    muted_until: datetime | None  # alerts wait for the next digest until then
    digest: str  # "off" (alerts as they come), "hourly" or "daily"
    digest_time: str | None  # "HH:MM" in the operator's time zone, for "daily"
    rules: tuple[str, ...] = ()  # rule names followed

    def holds_alerts(self, now: datetime) -> bool:
        """Whether alerts go to the next digest instead of straight to the chat."""
        return self.digest != "off" or (self.muted_until is not None and self.muted_until > now)
