"""`watcher check --fetch`: fetch and parse every configured feed once, now, and say how
each one did — the first thing to run after adding feeds. Writes nothing."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from watcher.config import Settings
from watcher.errors import FetchError, ParseError
from watcher.fetch import Fetcher
from watcher.model import FeedDef
from watcher.parse_pool import FeedParser


@dataclass(frozen=True, slots=True)
class FeedCheck:
    feed: str
    status: int | None
    entries: int
    encoding: str | None
    warnings: int
    seconds: float
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


async def _check_one(feed: FeedDef, fetcher: Fetcher, parser: FeedParser) -> FeedCheck:
    started = time.perf_counter()
    status: int | None = None
    try:
        result = await fetcher.fetch(feed.url, user_agent=feed.user_agent)
        status = result.status
        parsed = await parser.parse(result)
    except (FetchError, ParseError) as exc:
        status = exc.status if isinstance(exc, FetchError) else status
        return FeedCheck(feed.name, status, 0, None, 0, time.perf_counter() - started, str(exc))
    return FeedCheck(
        feed.name,
        status,
        len(parsed.entries),
        parsed.encoding,
        len(parsed.warnings),
        time.perf_counter() - started,
        None,
    )


async def check_feeds(
    settings: Settings, on_done: Callable[[FeedCheck], None] | None = None
) -> list[FeedCheck]:
    """Every feed once, as the daemon would fetch it (same limits), in config order."""
    polling = settings.polling
    slots = asyncio.Semaphore(polling.concurrency)
    parser = FeedParser()
    try:
        async with Fetcher(
            timeout_s=polling.timeout,
            max_body_bytes=polling.max_body_bytes,
            per_host=polling.per_host,
        ) as fetcher:

            async def bounded(feed: FeedDef) -> FeedCheck:
                async with slots:
                    outcome = await _check_one(feed, fetcher, parser)
                if on_done is not None:
                    on_done(outcome)
                return outcome

            return list(await asyncio.gather(*(bounded(feed) for feed in settings.feeds)))
    finally:
        parser.close()


class ProgressBar:
    """`[######......] 12/36 feeds` on one terminal line; silent when not a terminal."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self._total = total
        self._done = 0
        self._stream = stream or sys.stderr
        self._width = width
        self._live = self._stream.isatty()

    def advance(self, _check: FeedCheck) -> None:
        self._done += 1
        if not self._live:
            return
        filled = self._width * self._done // max(self._total, 1)
        bar = "#" * filled + "." * (self._width - filled)
        self._stream.write(f"\r[{bar}] {self._done}/{self._total} feeds")
        if self._done == self._total:
            self._stream.write("\n")
        self._stream.flush()


def to_table(checks: Sequence[FeedCheck]) -> str:
    header = ("FEED", "STATUS", "ENTRIES", "ENCODING", "WARNINGS", "TIME", "ERROR")
    rows = [
        (
            c.feed,
            str(c.status) if c.status is not None else "-",
            str(c.entries),
            c.encoding or "-",
            str(c.warnings),
            f"{c.seconds:.2f}s",
            (c.error or "")[:70],
        )
        for c in checks
    ]
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()
        for cells in [header, *rows]
    ]
    failed = sum(1 for c in checks if not c.ok)
    lines += ["", f"{len(checks) - failed} of {len(checks)} feeds fetched and parsed"]
    return "\n".join(lines)
