"""Parser adapter: response bytes + headers → ParsedFeed, via feedparser, off the event loop.

feedparser is CPU-bound (tens of ms for a large feed) and would stall every other feed and
the bot if called on the loop, so `FeedParser.parse` runs it in a worker thread.
"""

from __future__ import annotations

import asyncio
import calendar
import io
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import feedparser

from watcher.errors import ParseError
from watcher.model import Entry, FetchResult, ParsedFeed
from watcher.text import html_to_text

_MAX_TITLE_CHARS = 1000
_MAX_SUMMARY_CHARS = 20_000


def _plain(value: str) -> str:
    return " ".join(value.split())


def _field_text(detail: Any, value: str) -> str:
    kind = getattr(detail, "type", None) if detail is not None else None
    if kind == "text/plain":
        return _plain(value)
    return html_to_text(value)


def _published(raw: Any) -> datetime | None:
    parsed = raw.get("published_parsed") or raw.get("updated_parsed")
    if not isinstance(parsed, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _entry(raw: Any) -> Entry | None:
    title = _field_text(raw.get("title_detail"), raw.get("title", "") or "")[:_MAX_TITLE_CHARS]
    summary_html = raw.get("summary", "") or ""
    summary_detail = raw.get("summary_detail")
    if not summary_html and raw.get("content"):
        summary_html = raw["content"][0].get("value", "") or ""
        summary_detail = raw["content"][0]
    summary = _field_text(summary_detail, summary_html)[:_MAX_SUMMARY_CHARS]
    guid = (raw.get("id") or "").strip() or None
    link = (raw.get("link") or "").strip() or None
    if not (title or summary):
        return None  # nothing a rule could match or a subscriber could read
    return Entry(guid=guid, link=link, title=title, summary=summary, published=_published(raw))


def parse_feed(result: FetchResult) -> ParsedFeed:
    """Parse a fetched body. Raises ParseError when the body is not a feed at all.

    feedparser's `bozo` flag is not failure: it recovers entries from most broken feeds.
    """
    if result.body is None:
        raise ParseError("nothing to parse (304 Not Modified)")
    headers = {"content-location": result.content_location or result.url}
    if result.content_type:
        headers["content-type"] = result.content_type
    # A BytesIO, never a str: feedparser would treat a str as a URL or a file path.
    document = feedparser.parse(
        io.BytesIO(result.body),
        response_headers=headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    raw_entries = document.get("entries", [])
    version = document.get("version", "") or ""
    warnings: list[str] = []
    if document.get("bozo"):
        warnings.append(
            f"{type(document.get('bozo_exception')).__name__}: {document.get('bozo_exception')}"
        )
    if not raw_entries and not version:
        reason = warnings[0] if warnings else "no feed found"
        raise ParseError(f"not a feed: {reason}")
    entries = tuple(entry for entry in map(_entry, raw_entries) if entry is not None)
    return ParsedFeed(
        entries=entries,
        version=version,
        encoding=document.get("encoding"),
        warnings=tuple(warnings),
    )


class FeedParser:
    """Runs `parse_feed` in a small thread pool. Use as a context manager-free object;
    call `close()` on shutdown."""

    def __init__(self, workers: int = 2) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parse")

    async def parse(self, result: FetchResult) -> ParsedFeed:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, parse_feed, result)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
