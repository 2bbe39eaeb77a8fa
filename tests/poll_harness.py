"""The real parts a poll runs on, for tests of the pipeline: a feed server on 127.0.0.1,
a SQLite file, the aiohttp fetcher, the parser's process pool and the compiled rules."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.fakes.feed_server import FeedServer
from watcher.fetch import Fetcher
from watcher.model import RuleDef
from watcher.parse_pool import FeedParser
from watcher.pipeline import PollContext, RuleSet
from watcher.rules import compile_rules
from watcher.store import Store


class Clock:
    """The pipeline's clock, moved by the test."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def poll_parts(
    database: Path,
    rules: Sequence[RuleDef],
    actors: Mapping[str, Sequence[str]] | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    store: Store | None = None,
    **options: Any,
) -> AsyncIterator[tuple[FeedServer, PollContext]]:
    """A PollContext on real parts; `options` are further PollContext fields. The store is
    opened on `database` unless one is given (then the caller closes it)."""
    parser = FeedParser()
    ruleset = RuleSet(compile_rules(rules, actors or {}), {r.name: r.chats for r in rules})
    try:
        async with (
            FeedServer() as server,
            Fetcher(timeout_s=2, max_body_bytes=1_000_000) as fetcher,
        ):
            opened = store or await Store.open(database)
            try:
                yield (
                    server,
                    PollContext(
                        store=opened,
                        fetcher=fetcher,
                        parser=parser,
                        rules=lambda: ruleset,
                        console=False,
                        clock=clock or Clock(),
                        rng=random.Random(7),
                        **options,
                    ),
                )
            finally:
                if store is None:
                    await opened.close()
    finally:
        parser.close()
