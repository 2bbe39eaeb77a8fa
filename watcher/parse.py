"""Parser adapter: response bytes + headers → ParsedFeed, via feedparser.

feedparser is CPU-bound (tens of ms for a large feed, ~150 ms for a 1 MB one) and would stall
every other feed and the bot if called on the loop, so the daemon calls `parse_feed` through
`watcher.parse_pool.FeedParser`, in worker processes.

Before feedparser sees a body, `parse_feed` repairs what feedparser gets wrong on its own:
- a missing Content-Type made feedparser assume ISO-8859-1 (the old HTTP default), which
  turns undeclared UTF-8 into mojibake;
- a body that is valid UTF-8 but labelled with a legacy charset (a common server default)
  is decoded as UTF-8: feedparser repairs that per field only for Latin-1 labels;
- entity declarations that nest other entities ("billion laughs") are dropped: feedparser
  strips declarations only when each starts a line, and expat's own guard fires after about
  a million callbacks (seconds and ~100 MB per feed);
- character references to surrogates or past U+10FFFF, which crash feedparser's lenient
  parser, become U+FFFD (and any exception feedparser still raises becomes a ParseError);
- a gzip body served without Content-Encoding is inflated, within a size limit.
After it, every field is cleaned for the stages behind it: no control characters or lone
surrogates (SQLite and Telegram reject them), bounded sizes, digests for huge guids, only
http(s) links, no absurd dates, no titles of nothing but spaces and invisible characters.
"""

from __future__ import annotations

import calendar
import codecs
import functools
import hashlib
import io
import re
import sys
import time
import unicodedata
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from watcher import armscii8
from watcher.errors import ParseError
from watcher.feed_items import ItemLayout, item_layout, without_items
from watcher.identity import text_identity, title_key_minute
from watcher.model import Entry, FetchResult, KnownItem, ParsedFeed, UnchangedItem
from watcher.text import html_to_text

_MAX_TITLE_CHARS = 1000
_MAX_SUMMARY_CHARS = 20_000
# Markup past this is not converted: nothing a subscriber reads sits 200 KB into one field,
# and converting a multi-megabyte field would hold a worker for nothing.
_MAX_MARKUP_CHARS = 200_000
# Longer guids are kept as a digest: still unique, but a bounded dedupe key.
_MAX_GUID_CHARS = 512
# Items read from one document: real feeds list tens, archives a few hundred.
_MAX_ITEMS = 2000
_MAX_LINK_CHARS = 2048
# A gzip body is decompressed up to this size (the fetcher's default body limit is 10 MiB;
# a feed compresses ~5-10x, and a gzip bomb must not be inflated in full).
_MAX_GUNZIPPED_BYTES = 64 * 1024 * 1024
# Dates before feeds existed, or further ahead than any time zone mistake, are wrong.
_EARLIEST_PUBLISHED = datetime(1990, 1, 1, tzinfo=UTC)
_FUTURE_TOLERANCE = timedelta(days=1)

# --- before feedparser: the bytes -----------------------------------------------------------

# Armenian feeds may declare ARMSCII-8, which Python lacks: read as windows-1252 otherwise.
armscii8.register()

_GZIP_MAGIC = b"\x1f\x8b"
# The XML declaration's encoding, in an ASCII-compatible body (after an optional UTF-8 BOM).
_XML_DECLARED_ENCODING = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?\bencoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']"
)
# The first four bytes of "<?xm" (or a BOM) in encodings that are not ASCII-compatible
# (XML 1.0 appendix F). Bodies in these are scanned after decoding.
_WIDE_ENCODINGS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)
# An entity declaration: its start, and the rest up to its ">" (a quoted value may hold
# one). Possessive: one look at each character, matched or not.
_ENTITY_START = re.compile(r"<!ENTITY\s")
_DECLARATION_REST = re.compile(r"""(?:[^>"']++|"[^"]*+"|'[^']*+')*+>""")
# A reference to a named general or parameter entity (character references are harmless).
_NAMED_REFERENCE = re.compile(r"[&%][A-Za-z_:][\w.:-]*;")
# Character references long enough to name a surrogate or a code point past U+10FFFF.
# Possessive: "&#" and a long run of zeros with no ";" must not be tried every way the
# zeros can be shared between the two parts (quadratic: hours for a megabyte).
_IMPOSSIBLE_CHARACTER = re.compile(r"&#(?:[xX]0*+([0-9a-fA-F]{4,}+)|0*+([0-9]{5,}+));")
_LONGEST_POSSIBLE = 7  # digits of U+10FFFF in decimal (1114111); in hexadecimal, 6


def _gunzip(body: bytes) -> bytes:
    """`body` inflated, member after member, within _MAX_GUNZIPPED_BYTES. A truncated body
    inflates as far as it goes: the feed parser recovers the entries before the cut."""
    parts: list[bytes] = []
    size = 0
    rest = body
    while rest.startswith(_GZIP_MAGIC):
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            part = inflater.decompress(rest, _MAX_GUNZIPPED_BYTES - size + 1)
        except zlib.error as exc:
            raise ParseError(f"not a feed: corrupt gzip body ({exc})") from exc
        size += len(part)
        if size > _MAX_GUNZIPPED_BYTES:
            raise ParseError(f"not a feed: gzip body inflates past {_MAX_GUNZIPPED_BYTES} bytes")
        parts.append(part)
        rest = inflater.unused_data
    return b"".join(parts)


def _wide_encoding(body: bytes) -> str | None:
    for marker, encoding in _WIDE_ENCODINGS:
        if body.startswith(marker):
            return encoding
    return None


def _drop_nested_entities(text: str) -> str:
    # Nested entities are how "billion laughs" and its relatives amplify a small document;
    # no feed needs them. Flat declarations (<!ENTITY nbsp "&#160;">) stay. A reference to a
    # dropped entity is then undefined: the strict parser stops before expanding anything
    # and feedparser's lenient parser keeps the reference as text.
    #
    # One pass: a declaration that never ends (no ">" outside quotes up to the end) stops
    # it, where trying again at every later "<!ENTITY" took quadratic time. Nothing after
    # it needs looking at: the strict parser stops at that declaration too.
    pieces: list[str] = []
    cursor = 0
    while (start := _ENTITY_START.search(text, cursor)) is not None:
        rest = _DECLARATION_REST.match(text, start.end())
        if rest is None:
            break
        declaration = text[start.start() : rest.end()]
        pieces.append(text[cursor : start.start()])
        if not _NAMED_REFERENCE.search(declaration):
            pieces.append(declaration)
        cursor = rest.end()
    pieces.append(text[cursor:])
    return "".join(pieces)


def _replace_impossible_character(found: re.Match[str]) -> str:
    hex_digits, decimal_digits = found.groups()
    if len(hex_digits or decimal_digits) > _LONGEST_POSSIBLE:  # past U+10FFFF, and past
        return "&#xFFFD;"  # what int() takes (4,300 digits)
    code = int(hex_digits, 16) if hex_digits else int(decimal_digits)
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return "&#xFFFD;"
    return found.group()


def _defused(body: bytes) -> bytes:
    """`body` without what makes feedparser hang or crash: nested entity declarations, and
    character references to surrogates or past U+10FFFF (feedparser's lenient parser raises
    on `&#xD800;`, losing the whole feed to one bad character)."""
    codec = _wide_encoding(body) or "latin-1"  # latin-1 maps bytes 1:1: the body round-trips
    width = 4 if codec.startswith("utf-32") else 2 if codec.startswith("utf-16") else 1
    whole = len(body) - len(body) % width
    try:
        text = body[:whole].decode(codec, errors="surrogatepass")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not a feed: undecodable {codec} body") from exc
    repaired = text
    if "<!ENTITY" in repaired:
        repaired = _drop_nested_entities(repaired)
    if "&#" in repaired:
        repaired = _IMPOSSIBLE_CHARACTER.sub(_replace_impossible_character, repaired)
    if repaired == text:
        return body
    return repaired.encode(codec, errors="surrogatepass") + body[whole:]


def _split_content_type(content_type: str) -> tuple[str, str | None]:
    media_type, *params = content_type.split(";")
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return media_type.strip(), value.strip().strip("\"'") or None
    return media_type.strip(), None


def _is_unicode_codec(label: str) -> bool:
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return False
    return name.startswith("utf") or name == "ascii"


def _declared(body: bytes, wide: str) -> bool:
    """Whether a UTF-16/32 body starts with an XML declaration (feedparser reads those)."""
    start = body[:256].decode(wide, errors="ignore").lstrip("\ufeff")
    return start.startswith("<?xml")


def _content_type(declared: str | None, body: bytes) -> tuple[str, str | None]:
    """The Content-Type to hand feedparser, and a warning when it differs from `declared`."""
    # Without a Content-Type feedparser falls back to ISO-8859-1; an XML media type makes it
    # follow the XML declaration and default to UTF-8, as XML itself does.
    media_type, charset = _split_content_type(declared or "application/xml")
    media_type = media_type or "application/xml"
    wide = _wide_encoding(body)
    if charset is None and wide is not None and not _declared(body, wide):
        # UTF-16/32 needs no XML declaration (a BOM, or "<" in it, tells), but without one
        # feedparser reads the body as UTF-8 (and loses it). With a BOM, a codec that
        # reads it ("utf-16"); without, the byte order the first "<" showed.
        # (UTF-32-LE's BOM begins with UTF-16-LE's.)
        bom = body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE))
        return f"{media_type}; charset={wide[:6] if bom else wide}", None
    claimed = charset
    if claimed is None:
        declaration = _XML_DECLARED_ENCODING.match(body)
        claimed = declaration.group(1).decode("ascii") if declaration else None
    # Valid UTF-8 with non-ASCII bytes is practically never legacy-encoded text by accident,
    # while servers labelling UTF-8 as windows-1251 or ISO-8859-1 are common.
    if claimed and not _is_unicode_codec(claimed) and not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return (
                f"{media_type}; charset=utf-8",
                f"CharsetOverride: declared {claimed} but the body is valid UTF-8",
            )
    # Otherwise feedparser reads the header as sent: it knows its odd spellings.
    return declared or media_type, None


# --- after feedparser: the text -------------------------------------------------------------

# C0 and C1 controls and DEL (whitespace among them was collapsed before this runs).
_CONTROLS = dict.fromkeys([*range(0x00, 0x20), *range(0x7F, 0xA0)])
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SPACE_RUN = re.compile(r"\s{2,}")


def _clean(text: str, limit: int) -> str:
    if text.isprintable():
        # The common case, checked at C speed: no control, surrogate, invisible character
        # or whitespace but the plain space; only runs of spaces can need collapsing.
        text = text.strip()
        if "  " in text:
            text = _SPACE_RUN.sub(" ", text)
        return text[:limit].rstrip()
    text = _LONE_SURROGATE.sub("\ufffd", text.translate(_CONTROLS))
    text = _SPACE_RUN.sub(" ", text).strip()
    # A field of only spaces and invisible characters (ZWSP, BOM, bidi marks) says nothing.
    if all(unicodedata.category(char)[0] in "CZ" for char in text):
        return ""
    return text[:limit].rstrip()


def _field_text(kind: Any, value: str, limit: int) -> str:
    """The displayed text of a field whose content type (feedparser's `type` of its
    detail) is `kind`."""
    value = value[:_MAX_MARKUP_CHARS]
    text = " ".join(value.split()) if kind == "text/plain" else html_to_text(value)
    return _clean(text, limit)


def _guid(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    guid = (
        value if value.isprintable() else _LONE_SURROGATE.sub("\ufffd", value.translate(_CONTROLS))
    )
    guid = guid.strip()
    if len(guid) > _MAX_GUID_CHARS:
        return "sha256:" + hashlib.sha256(guid.encode("utf-8")).hexdigest()
    return guid or None


def _link(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    link = "".join(value.split())  # links wrapped across lines or padded with spaces
    if not link or len(link) > _MAX_LINK_CHARS or _LONE_SURROGATE.search(link):
        return None
    if not link.isprintable() and link.translate(_CONTROLS) != link:
        return None
    # A link is only ever opened by a subscriber: javascript:, data: and relative leftovers
    # are not links to an article; nor is one whose port is not a port ("host:abc"), which
    # urlsplit parses only when asked for it.
    try:
        parts = urlsplit(link)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number or too big
    except ValueError:
        return None
    return link if parts.scheme.lower() in ("http", "https") else None


def _published(parsed: Any, now: datetime) -> datetime | None:
    if not isinstance(parsed, time.struct_time):
        return None
    try:
        # feedparser's struct_time is UTC. Built directly, 10x cheaper than timegm.
        published = datetime(*parsed[:6], tzinfo=UTC)
    except (OverflowError, ValueError, TypeError):
        try:  # a leap second (sec 60), a field past its range (timegm carries it), a float
            published = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
        except (OverflowError, ValueError, OSError):
            return None
    if not _EARLIEST_PUBLISHED <= published <= now + _FUTURE_TOLERANCE:
        return None
    return published


class _ItemFields(NamedTuple):
    """Everything of a feedparser item that its entry is made of, as feedparser gave it."""

    title: Any
    title_type: Any  # the content type feedparser gives the field (its detail's `type`)
    summary: Any
    summary_type: Any
    guid: Any
    link: Any
    published: Any  # feedparser's published_parsed, else its updated_parsed


def _item_fields(raw: Any) -> _ItemFields:
    summary = raw.get("summary") or ""
    summary_detail = raw.get("summary_detail")
    if not summary and raw.get("content"):
        summary = raw["content"][0].get("value") or ""
        summary_detail = raw["content"][0]
    # dict.get for the dates: feedparser's own get() maps a missing updated_parsed to
    # published_parsed with a DeprecationWarning. Only the date the entry takes is kept:
    # an Atom feed that bumps <updated> beside <published> has not changed the item.
    return _ItemFields(
        title=raw.get("title") or "",
        title_type=getattr(raw.get("title_detail"), "type", None),
        summary=summary,
        summary_type=getattr(summary_detail, "type", None),
        guid=raw.get("id"),
        link=raw.get("link"),
        published=dict.get(raw, "published_parsed") or dict.get(raw, "updated_parsed"),
    )


@functools.cache
def _item_digest_key() -> bytes:
    """What item digests are keyed with: the code that makes an entry of an item and the
    keys the store derives from it, and the versions of feedparser, Python and its Unicode
    data (folding uses NFKC and casefold). Another version of any gives other digests, so
    after an upgrade every item is parsed in full once."""
    import feedparser

    import watcher
    from watcher import feed_items, identity, model, text

    versions = (feedparser.__version__, sys.version, unicodedata.unidata_version)
    key = hashlib.blake2b(repr(versions).encode(), digest_size=32)
    for module in (sys.modules[__name__], feed_items, identity, model, text):
        try:
            key.update(Path(module.__file__ or "").read_bytes())
        except OSError:  # no source to read (a frozen install): its version must do
            key.update(watcher.__version__.encode())
    return key.digest()


def item_digest(fields: _ItemFields) -> int:
    """A 64-bit digest of an item's fields, as a signed integer (as SQLite stores them)."""
    # repr, not pickle: a pickle refers back to an object met before, so two equal fields
    # that are one object in one process (an interned "text/html") and two in another
    # would pickle, and digest, differently.
    data = repr(tuple(fields)).encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=8, key=_item_digest_key()).digest()
    return int.from_bytes(digest, "big", signed=True)


def raw_item_digest(layout: ItemLayout, item: bytes) -> int:
    """A 64-bit digest of an item's bytes in its document's context (watcher.feed_items),
    as a signed integer; never equal to a digest of fields (`item_digest`) but by chance."""
    digest = hashlib.blake2b(
        layout.context + item, digest_size=8, key=_item_digest_key(), person=b"raw item"
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def _raw_digests(layout: ItemLayout, body: bytes) -> list[int]:
    # The first item takes what state the head leaves (watcher.feed_items): known by its
    # bytes only as the first item of another document.
    return [
        raw_item_digest(layout, (b"first\0" if i == 0 else b"") + layout.item(body, i))
        for i in range(len(layout.spans))
    ]


def _keyed_alone(guids: Sequence[str | None], minutes: Sequence[int | None]) -> list[bool]:
    """Whether each item's store keys depend on the item alone. `watcher.identity.entry_keys`
    keys an item by its link when another item of the document shares its guid, and drops
    a title key (folded title and minute) that two items share: an item sharing its guid,
    or its minute of publication (`title_key_minute`), with another item of the document may
    be keyed otherwise in another document, so it is always made into an entry and never
    taken as known."""
    guid_counts = Counter(guid for guid in guids if guid)
    minute_counts = Counter(minute for minute in minutes if minute is not None)
    return [
        (not guid or guid_counts[guid] == 1) and (minute is None or minute_counts[minute] == 1)
        for guid, minute in zip(guids, minutes, strict=True)
    ]


def _entry(
    fields: _ItemFields,
    guid: str | None,
    published: datetime | None,
    digests: tuple[int | None, int | None],
) -> Entry | None:
    title = _field_text(fields.title_type, fields.title, _MAX_TITLE_CHARS)
    summary = _field_text(fields.summary_type, fields.summary, _MAX_SUMMARY_CHARS)
    if not (title or summary):
        return None  # nothing a rule could match or a subscriber could read
    return Entry(
        guid=guid,
        link=_link(fields.link),
        title=title,
        summary=summary,
        published=published,
        text_identity=text_identity(title, summary),  # here, in the worker: not on the loop
        item_digest=digests[0],
        field_digest=digests[1],
    )


class _Prepared(NamedTuple):
    """A body as feedparser is to read it, the headers it is to be given, and what was
    repaired on the way."""

    body: bytes
    headers: dict[str, str]
    warnings: list[str]


def _prepared(result: FetchResult) -> _Prepared:
    if result.body is None:
        raise ParseError("nothing to parse (304 Not Modified)")
    body = result.body
    warnings: list[str] = []
    if body.startswith(_GZIP_MAGIC):
        body = _gunzip(body)
        warnings.append("GzipBody: the body was gzip-compressed without Content-Encoding")
    body = _defused(body)
    content_type, charset_warning = _content_type(result.content_type, body)
    if charset_warning:
        warnings.append(charset_warning)
    headers = {
        # The URL the body was fetched from, never its Content-Location (no base URI since
        # RFC 7231): a relative permalink guid resolved against it would change with the
        # CDN node that answered, and the entry alert again.
        "content-location": result.url,
        "content-type": content_type,
    }
    return _Prepared(body, headers, warnings)


@functools.cache
def _feedparser_namespaces() -> dict[str, str]:
    """The namespaces feedparser knows, each with the prefix it names their elements by."""
    from feedparser.mixin import _FeedParserMixin

    return dict(_FeedParserMixin.namespaces)


def _feedparser(body: bytes, headers: dict[str, str]) -> Any:
    # Imported on first use: only the workers parse, and the daemon need not hold it.
    import feedparser

    try:
        # A BytesIO, never a str: feedparser would treat a str as a URL or a file path.
        return feedparser.parse(
            io.BytesIO(body),
            response_headers=headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:
        # feedparser's lenient parser has crashed on hostile input before (see _defused);
        # a body that breaks the parser is a body we cannot read, not a daemon failure.
        raise ParseError(f"not a feed: feedparser failed: {type(exc).__name__}: {exc}") from exc


class _Item(NamedTuple):
    """An item of the document, as the parse read it or as the store knew it."""

    fields: _ItemFields | None  # None: left out, unread
    guid: str | None
    published: datetime | None
    minute: int | None  # title_key_minute(published)
    # What it would be known by if it were keyed alone: the digest of its bytes where the
    # document has a layout, else of its fields; None if its date is refused for now.
    digest: int | None
    field_digest: int | None  # with a digest of its bytes, that of its fields too


def parse_feed(
    result: FetchResult,
    *,
    now: datetime | None = None,
    known: Mapping[int, KnownItem] | None = None,
) -> ParsedFeed:
    """Parse a fetched body. Raises ParseError when the body is not a feed at all.

    feedparser's `bozo` flag is not failure: it recovers entries from most broken feeds, and
    its reason becomes one of the feed's `warnings`. `now` bounds plausible publication
    dates (default: the current time). An item whose digest is in `known` (the feed's
    previous document had it, and the store knows its guid and minute) is not made into an
    entry: it is listed as unchanged. Where the document allows (watcher.feed_items), such
    items are cut out of the body before feedparser reads it.
    """
    known = known or {}
    prepared = _prepared(result)
    now = now or datetime.now(UTC)
    media_type, charset = _split_content_type(prepared.headers["content-type"])
    layout = item_layout(
        prepared.body,
        media_type=media_type,
        charset=charset,
        base=prepared.headers["content-location"],
        namespaces=_feedparser_namespaces(),
    )
    digests = _raw_digests(layout, prepared.body) if layout is not None else None
    if digests is not None and known and len(digests) <= _MAX_ITEMS:
        # The first item is always read: whatever state the head leaves reaches it, as in
        # the whole document (and its digest is apart from the others': `_raw_digests`).
        left_out = {i for i, digest in enumerate(digests) if i and digest in known}
        if left_out:
            assert layout is not None
            parsed = _parse_leaving_out(prepared, layout, digests, left_out, known, now)
            if parsed is not None:
                return parsed
    document = _feedparser(prepared.body, prepared.headers)
    raw_entries = document.get("entries", [])
    # feedparser makes one entry per item element, in order: as many entries as expat found
    # items means entry i is the item at span i. Otherwise (never seen) no digest of bytes.
    if digests is None or len(raw_entries) != len(digests):
        digests = None
    if len(raw_entries) > _MAX_ITEMS:
        # Feeds list the newest first. The rest would cross to the daemon and its event
        # loop in one piece (40,000 items: a third of a second) to be recorded at once.
        prepared.warnings.append(
            f"TooManyItems: read the first {_MAX_ITEMS} of {len(raw_entries)} items"
        )
        raw_entries, digests = raw_entries[:_MAX_ITEMS], None
    items = [
        _read_item(raw, digests[i] if digests is not None else None, now)
        for i, raw in enumerate(raw_entries)
    ]
    alone = _keyed_alone([item.guid for item in items], [item.minute for item in items])
    return _parsed_feed(document, prepared.warnings, items, alone, known)


def _read_item(raw: Any, raw_digest: int | None, now: datetime) -> _Item:
    fields = _item_fields(raw)
    guid = _guid(fields.guid)
    published = _published(fields.published, now)
    minute = title_key_minute(published)
    # A date refused today (too far ahead) may be accepted tomorrow: that item's entry
    # depends on when it is parsed, so it gets no digest, as one not keyed alone.
    if published is None and fields.published:
        return _Item(fields, guid, published, minute, None, None)
    if raw_digest is None:
        return _Item(fields, guid, published, minute, item_digest(fields), None)
    return _Item(fields, guid, published, minute, raw_digest, item_digest(fields))


def _parse_leaving_out(
    prepared: _Prepared,
    layout: ItemLayout,
    digests: list[int],
    left_out: set[int],
    known: Mapping[int, KnownItem],
    now: datetime,
) -> ParsedFeed | None:
    """The parse of a document whose items at `left_out` are known, with feedparser reading
    only the others; None if the whole document must be read after all (a kept item shares
    a guid or a minute with a known one, feedparser saw other items than expat, or the cut
    document does not parse)."""
    body = without_items(prepared.body, layout, left_out)
    try:
        document = _feedparser(body, prepared.headers)
    except ParseError:
        return None  # the whole document, which may well parse, decides
    read = iter(document.get("entries", []))
    items: list[_Item] = []
    for index, digest in enumerate(digests):
        if index in left_out:
            item = known[digest]
            items.append(_Item(None, item.guid, None, item.minute, digest, None))
            continue
        raw = next(read, None)
        if raw is None:
            return None
        items.append(_read_item(raw, digest, now))
    if next(read, None) is not None:
        return None
    alone = _keyed_alone([item.guid for item in items], [item.minute for item in items])
    if not all(alone[index] for index in left_out):
        return None  # read in full, that item would be keyed otherwise
    return _parsed_feed(document, prepared.warnings, items, alone, known)


def _parsed_feed(
    document: Any,
    warnings: list[str],
    items: list[_Item],
    alone: list[bool],
    known: Mapping[int, KnownItem],
) -> ParsedFeed:
    """The document's entries and unchanged items; every item left out unread must be
    keyed alone (`_keyed_alone`) and known."""
    version = document.get("version", "") or ""
    if document.get("bozo"):
        problem = document.get("bozo_exception")
        warnings = [*warnings, f"{type(problem).__name__}: {problem}"[:500]]
    if not items and not version:
        reason = warnings[-1] if warnings else "no feed found"
        raise ParseError(f"not a feed: {reason}")
    entries: list[Entry] = []
    unchanged: list[UnchangedItem] = []
    for item, keyed_alone in zip(items, alone, strict=True):
        digests = (item.digest, item.field_digest) if keyed_alone else (None, None)
        position = len(entries) + len(unchanged)
        if digests[0] is not None and digests[0] in known:
            unchanged.append(UnchangedItem(position, digests[0]))
        elif digests[1] is not None and digests[1] in known:
            # Read again (its bytes changed), known by its fields: known by its new bytes
            # from now on.
            unchanged.append(UnchangedItem(position, digests[1], digests[0]))
        elif item.fields is None:
            raise AssertionError("an item left out unread must be keyed alone and known")
        elif (entry := _entry(item.fields, item.guid, item.published, digests)) is not None:
            entries.append(entry)
    return ParsedFeed(
        entries=tuple(entries),
        unchanged=tuple(unchanged),
        version=version,
        encoding=document.get("encoding") or None,
        warnings=tuple(warnings),
        ttl_s=_ttl_seconds(document.get("feed", {}).get("ttl")),
    )


_MAX_TTL_S = 7 * 24 * 3600


def _ttl_seconds(value: object) -> int | None:
    """RSS <ttl> is in minutes; nonsense is ignored rather than trusted."""
    try:
        minutes = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return min(minutes * 60, _MAX_TTL_S) if minutes > 0 else None
