"""Parser adapter: response bytes + headers → ParsedFeed, via feedparser, off the event loop.

feedparser is CPU-bound (tens of ms for a large feed, ~150 ms for a 1 MB one) and would stall
every other feed and the bot if called on the loop, so `FeedParser.parse` runs it in a pool
of worker processes (see `FeedParser` for why processes, and bench/parse_pool.py for the
figures).

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

import asyncio
import calendar
import codecs
import contextlib
import hashlib
import io
import multiprocessing
import os
import re
import signal
import threading
import time
import unicodedata
import zlib
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import feedparser

from watcher.errors import ParseError
from watcher.identity import text_identity
from watcher.model import Entry, FetchResult, ParsedFeed
from watcher.text import html_to_text

PoolKind = Literal["process", "thread"]
DEFAULT_POOL: PoolKind = "process"

_MAX_TITLE_CHARS = 1000
_MAX_SUMMARY_CHARS = 20_000
# Markup past this is not converted: nothing a subscriber reads sits 200 KB into one field,
# and converting a multi-megabyte field would hold a worker for nothing.
_MAX_MARKUP_CHARS = 200_000
# Longer guids are kept as a digest: still unique, but a bounded dedupe key.
_MAX_GUID_CHARS = 512
_MAX_LINK_CHARS = 2048
# A gzip body is decompressed up to this size (the fetcher's default body limit is 10 MiB;
# a feed compresses ~5-10x, and a gzip bomb must not be inflated in full).
_MAX_GUNZIPPED_BYTES = 64 * 1024 * 1024
# Dates before feeds existed, or further ahead than any time zone mistake, are wrong.
_EARLIEST_PUBLISHED = datetime(1990, 1, 1, tzinfo=UTC)
_FUTURE_TOLERANCE = timedelta(days=1)

# --- before feedparser: the bytes -----------------------------------------------------------

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
# An entity declaration; its quoted value may hold ">".
_ENTITY_DECLARATION = re.compile(r"<!ENTITY\s(?:[^>\"']|\"[^\"]*\"|'[^']*')*>")
# A reference to a named general or parameter entity (character references are harmless).
_NAMED_REFERENCE = re.compile(r"[&%][A-Za-z_:][\w.:-]*;")
# Character references long enough to name a surrogate or a code point past U+10FFFF.
_IMPOSSIBLE_CHARACTER = re.compile(r"&#(?:[xX]0*([0-9a-fA-F]{4,})|0*([0-9]{5,}));")


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
    return _ENTITY_DECLARATION.sub(
        lambda found: "" if _NAMED_REFERENCE.search(found.group()) else found.group(), text
    )


def _replace_impossible_character(found: re.Match[str]) -> str:
    hex_digits, decimal_digits = found.groups()
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


def _content_type(declared: str | None, body: bytes) -> tuple[str, str | None]:
    """The Content-Type to hand feedparser, and a warning when it differs from `declared`."""
    # Without a Content-Type feedparser falls back to ISO-8859-1; an XML media type makes it
    # follow the XML declaration and default to UTF-8, as XML itself does.
    media_type, charset = _split_content_type(declared or "application/xml")
    media_type = media_type or "application/xml"
    claimed = charset
    if claimed is None and _wide_encoding(body) is None:
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
    text = _LONE_SURROGATE.sub("\ufffd", text.translate(_CONTROLS))
    text = _SPACE_RUN.sub(" ", text).strip()
    # A field of only spaces and invisible characters (ZWSP, BOM, bidi marks) says nothing.
    if all(unicodedata.category(char)[0] in "CZ" for char in text):
        return ""
    return text[:limit].rstrip()


def _field_text(detail: Any, value: str, limit: int) -> str:
    value = value[:_MAX_MARKUP_CHARS]
    kind = getattr(detail, "type", None) if detail is not None else None
    text = " ".join(value.split()) if kind == "text/plain" else html_to_text(value)
    return _clean(text, limit)


def _guid(raw: Any) -> str | None:
    value = raw.get("id")
    if not isinstance(value, str):
        return None
    guid = _LONE_SURROGATE.sub("\ufffd", value.translate(_CONTROLS)).strip()
    if len(guid) > _MAX_GUID_CHARS:
        return "sha256:" + hashlib.sha256(guid.encode("utf-8")).hexdigest()
    return guid or None


def _link(raw: Any) -> str | None:
    value = raw.get("link")
    if not isinstance(value, str):
        return None
    link = "".join(value.split())  # links wrapped across lines or padded with spaces
    if not link or len(link) > _MAX_LINK_CHARS or _LONE_SURROGATE.search(link):
        return None
    if link.translate(_CONTROLS) != link:
        return None
    # A link is only ever opened by a subscriber: javascript:, data: and relative leftovers
    # are not links to an article.
    try:
        scheme = urlsplit(link).scheme.lower()
    except ValueError:
        return None
    return link if scheme in ("http", "https") else None


def _published(raw: Any, now: datetime) -> datetime | None:
    # dict.get: feedparser's own get() maps a missing updated_parsed to published_parsed
    # with a DeprecationWarning.
    parsed = dict.get(raw, "published_parsed") or dict.get(raw, "updated_parsed")
    if not isinstance(parsed, time.struct_time):
        return None
    try:
        published = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError):
        return None
    if not _EARLIEST_PUBLISHED <= published <= now + _FUTURE_TOLERANCE:
        return None
    return published


def _entry(raw: Any, now: datetime) -> Entry | None:
    title = _field_text(raw.get("title_detail"), raw.get("title") or "", _MAX_TITLE_CHARS)
    summary_html = raw.get("summary") or ""
    summary_detail = raw.get("summary_detail")
    if not summary_html and raw.get("content"):
        summary_html = raw["content"][0].get("value") or ""
        summary_detail = raw["content"][0]
    summary = _field_text(summary_detail, summary_html, _MAX_SUMMARY_CHARS)
    if not (title or summary):
        return None  # nothing a rule could match or a subscriber could read
    return Entry(
        guid=_guid(raw),
        link=_link(raw),
        title=title,
        summary=summary,
        published=_published(raw, now),
        text_identity=text_identity(title, summary),  # here, in the worker: not on the loop
    )


def parse_feed(result: FetchResult, *, now: datetime | None = None) -> ParsedFeed:
    """Parse a fetched body. Raises ParseError when the body is not a feed at all.

    feedparser's `bozo` flag is not failure: it recovers entries from most broken feeds, and
    its reason becomes one of the feed's `warnings`. `now` bounds plausible publication
    dates (default: the current time).
    """
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
        "content-location": result.content_location or result.url,
        "content-type": content_type,
    }
    try:
        # A BytesIO, never a str: feedparser would treat a str as a URL or a file path.
        document = feedparser.parse(
            io.BytesIO(body),
            response_headers=headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:
        # feedparser's lenient parser has crashed on hostile input before (see _defused);
        # a body that breaks the parser is a body we cannot read, not a daemon failure.
        raise ParseError(f"not a feed: feedparser failed: {type(exc).__name__}: {exc}") from exc
    raw_entries = document.get("entries", [])
    version = document.get("version", "") or ""
    if document.get("bozo"):
        problem = document.get("bozo_exception")
        warnings.append(f"{type(problem).__name__}: {problem}"[:500])
    if not raw_entries and not version:
        reason = warnings[-1] if warnings else "no feed found"
        raise ParseError(f"not a feed: {reason}")
    now = now or datetime.now(UTC)
    entries = tuple(e for e in (_entry(raw, now) for raw in raw_entries) if e is not None)
    return ParsedFeed(
        entries=entries,
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


# --- off the event loop ---------------------------------------------------------------------


_WORKER_NICENESS = 10


def _init_worker() -> None:
    """Run in each worker process as it starts: the daemon alone decides when it ends.

    Ctrl-C reaches the whole process group and systemd signals the whole control group:
    a worker that died of either would break the pool while the daemon drains its last
    feeds, so workers ignore both and exit when the daemon closes the pool. A worker waits
    on its task queue forever, so one orphaned by a SIGKILLed daemon is ended by a thread
    that waits for the daemon to be gone.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Parsing is batch work; the daemon's event loop (fetches, the bot, deliveries) is
    # not. A lower priority lets the loop run first when every core is busy parsing.
    with contextlib.suppress(OSError):
        os.nice(_WORKER_NICENESS)
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def exit_with_parent() -> None:
        parent.join()
        os._exit(0)

    threading.Thread(target=exit_with_parent, name="parent-watch", daemon=True).start()


def _process_context() -> multiprocessing.context.BaseContext:
    # Never fork: the daemon has threads (aiosqlite, the resolver, this pool's manager), and
    # a thread holding a lock at fork time leaves that lock held forever in the child. The
    # forkserver is a fresh, single-threaded interpreter that imports this module once and
    # forks each worker from there, so a worker starts in milliseconds.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _new_executor(kind: PoolKind, workers: int) -> Executor:
    if kind == "thread":
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parse")
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=_process_context(), initializer=_init_worker
    )


class FeedParser:
    """Runs `parse_feed` off the event loop; call `close()` on shutdown.

    `pool="process"` (the default) parses in worker processes. feedparser is pure Python and
    holds the GIL, so in a thread pool the event loop waits for the GIL at every turn and
    parsing shares one core with it. Measured by bench/parse_pool.py (2 workers, 2 cores,
    100 parses of 17 real news feeds, a 10 ms ticker on the loop): loop lag p99 33-40 ms
    (max 56-72 ms) with threads against 4 ms (max 7 ms) with processes, in half the wall
    time, for the same CPU. The price: ~30 MB per worker, a pickled body in and a
    ParsedFeed out (well under a millisecond), and ~300 ms to start the forkserver on first
    use, waited for off the loop. `pool="thread"` remains for embeddings where child
    processes are unwelcome.
    """

    def __init__(self, workers: int = 2, *, pool: PoolKind = DEFAULT_POOL) -> None:
        self.pool: PoolKind = pool
        self._workers = workers
        self._executor = _new_executor(pool, workers)
        self._closed = False

    async def parse(self, result: FetchResult) -> ParsedFeed:
        executor = self._executor
        if isinstance(executor, ThreadPoolExecutor):
            return await asyncio.wrap_future(executor.submit(parse_feed, result))
        try:
            # submit() may start a worker process, which waits for the forkserver (a fresh
            # interpreter importing feedparser) on first use: a thread waits, not the loop.
            future = await asyncio.to_thread(executor.submit, parse_feed, result)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool as exc:
            # A worker died (killed, out of memory): the whole pool is unusable. Replace it
            # so the next feed parses, and report this body as unparsable.
            if self._executor is executor and not self._closed:
                executor.shutdown(wait=False, cancel_futures=True)
                self._executor = _new_executor(self.pool, self._workers)
            raise ParseError(f"parser worker died: {exc}") from exc

    def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
