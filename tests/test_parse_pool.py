"""The parse pool: worker processes (or threads) that parse as `parse_feed` does, survive
what kills or cancels one of them, and end with the daemon."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import pytest

from tests.test_parse import SEEDS, fetched
from watcher.errors import ParseError
from watcher.model import FetchResult, ParsedFeed
from watcher.parse import parse_feed
from watcher.parse_pool import FeedParser

REAL_NEWS = Path(__file__).resolve().parent / "data/feeds-real/fastfeedparser-benchmark-en-news"


def test_the_default_pool_is_processes() -> None:
    # bench/parse_pool.py: loop lag p99 2-4 ms with processes against 27-40 ms with threads.
    parser = FeedParser()
    try:
        assert parser.pool == "process"
    finally:
        parser.close()


@pytest.mark.parametrize("pool", ["process", "thread"])
async def test_both_pools_parse_like_parse_feed(pool: Literal["process", "thread"]) -> None:
    results = [fetched((SEEDS / "turan-feed.xml").read_bytes())] + [
        FetchResult(status=200, url=f"http://127.0.0.1/{path.name}", body=path.read_bytes())
        for path in sorted(REAL_NEWS.glob("*.xml"))
    ]
    parser = FeedParser(workers=2, pool=pool)
    try:
        parsed = await asyncio.gather(*(parser.parse(result) for result in results))
        with pytest.raises(ParseError, match="not a feed"):
            await parser.parse(fetched(b"<html><body>no</body></html>", "text/html"))
    finally:
        parser.close()
    # A ParsedFeed that came back pickled from a worker equals one parsed here, with the
    # text identities (which equality leaves out) computed in the worker.
    here = [parse_feed(result) for result in results]
    assert parsed == here
    identities = [[e.text_identity for e in feed.entries] for feed in parsed]
    assert identities == [[e.text_identity for e in feed.entries] for feed in here]
    assert all(identity is not None for feed in identities for identity in feed)
    assert [len(p.entries) for p in parsed] == [3, 33, 141, 57, 9]


def largest_real_feed() -> FetchResult:
    path = max(REAL_NEWS.glob("*.xml"), key=lambda p: p.stat().st_size)
    return FetchResult(status=200, url="http://127.0.0.1/large", body=path.read_bytes())


def is_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until_gone(pids: Iterable[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in pids if is_running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def ignores_interrupts(pid: int) -> bool:
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = int(status.split("SigIgn:")[1].split()[0], 16)
    return ignored & wanted == wanted


async def test_a_killed_worker_costs_one_feed_not_the_pool() -> None:
    seed = fetched((SEEDS / "turan-feed.xml").read_bytes())
    large = largest_real_feed()
    parser = FeedParser(workers=2)
    try:
        await asyncio.gather(parser.parse(seed), parser.parse(seed))
        first, second = parser.worker_pids  # the process the pool started, and its sibling
        # Two parses sent (one to each worker: ~100 ms each), two waiting for a worker.
        jobs = [asyncio.create_task(parser.parse(large)) for _ in range(4)]
        await asyncio.sleep(0)
        os.kill(first, signal.SIGKILL)  # killed mid-parse, as by the OOM killer
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        failed = [str(o) for o in outcomes if isinstance(o, ParseError)]
        assert failed == ["parser worker died: killed by SIGKILL"]
        assert all(isinstance(o, ParsedFeed) for o in outcomes if not isinstance(o, ParseError))
        assert first not in parser.worker_pids and second in parser.worker_pids
        # A worker that dies between parses costs nothing once the loop has seen it go
        # (this one, forked by the other, is not the daemon's child).
        os.kill(second, signal.SIGKILL)
        for _ in range(500):
            if second not in parser.worker_pids:
                break
            await asyncio.sleep(0.01)
        assert len((await parser.parse(seed)).entries) == 3
    finally:
        parser.close()


async def test_a_cancelled_parse_does_not_desync_its_worker() -> None:
    seed = fetched((SEEDS / "turan-feed.xml").read_bytes())
    parser = FeedParser(workers=1)
    try:
        parsing = asyncio.create_task(parser.parse(largest_real_feed()))
        waiting = asyncio.create_task(parser.parse(largest_real_feed()))
        await asyncio.sleep(0)  # one sent to the worker, one waiting for it
        (pid,) = parser.worker_pids
        for task in (parsing, waiting):
            task.cancel()
        for task in (parsing, waiting):
            with pytest.raises(asyncio.CancelledError):
                await task
        # The next reply is this body's, not the cancelled one's, from the same worker.
        assert await parser.parse(seed) == parse_feed(seed)
        assert parser.worker_pids == (pid,)
    finally:
        parser.close()


async def test_close_ends_the_workers_and_they_ignore_interrupts() -> None:
    parser = FeedParser(workers=2)
    seed = fetched((SEEDS / "turan-feed.xml").read_bytes())
    try:
        first = asyncio.gather(parser.parse(seed), parser.parse(seed))
        await asyncio.sleep(0)
        # Ctrl-C and systemd's stop reach every process: the workers must outlive them
        # until the daemon closes the pool, even while starting, as this one is.
        (starting,) = parser.worker_pids  # its sibling, forked once it is ready, greets later
        os.kill(starting, signal.SIGINT)
        os.kill(starting, signal.SIGTERM)
        assert [len(parsed.entries) for parsed in await first] == [3, 3]
        pids = parser.worker_pids
        assert len(pids) == 2 and starting in pids
        assert all(ignores_interrupts(pid) for pid in pids)
        for pid in pids:
            os.kill(pid, signal.SIGINT)
            os.kill(pid, signal.SIGTERM)
        assert len((await parser.parse(seed)).entries) == 3
        assert parser.worker_pids == pids and all(is_running(pid) for pid in pids)
    finally:
        started = time.monotonic()
        parser.close()
    assert time.monotonic() - started < 1.9  # they left on their own: none waited for the kill
    assert not wait_until_gone(pids, 1.0)


ORPHAN_SCRIPT = """
import asyncio, sys, time
from watcher.model import FetchResult
from watcher.parse_pool import FeedParser

async def main():
    parser = FeedParser(workers=2)
    body = open(sys.argv[1], "rb").read()
    result = FetchResult(status=200, url="http://127.0.0.1/f", body=body)
    await asyncio.gather(parser.parse(result), parser.parse(result))
    print(*parser.worker_pids, flush=True)
    time.sleep(60)

asyncio.run(main())
"""


def test_workers_exit_when_the_daemon_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "orphans.py"
    script.write_text(ORPHAN_SCRIPT, encoding="utf-8")
    daemon = subprocess.Popen(
        [sys.executable, str(script), str(SEEDS / "turan-feed.xml")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        pids = [int(pid) for pid in daemon.stdout.readline().split()]
        assert len(pids) == 2 and all(is_running(pid) for pid in pids)
    finally:
        daemon.kill()
        daemon.wait()
    # End of file on their request pipes ends them (init reaps them).
    assert not wait_until_gone(pids, 5.0)


def slow_body(attributes: int = 30_000) -> FetchResult:
    """A feed feedparser takes quadratic time over: one element with thousands of
    attributes (each looked up by a linear scan): about 15 s of a core."""
    attrs = " ".join(f'a{n}="v"' for n in range(attributes))
    return fetched(
        f"<rss version='2.0'><channel><title>t</title><item {attrs}><guid>g</guid></item>"
        "</channel></rss>".encode()
    )


async def test_a_parse_past_its_deadline_is_stopped_and_the_worker_replaced() -> None:
    parser = FeedParser(workers=1, deadline_s=1.0)
    seed = fetched((SEEDS / "turan-feed.xml").read_bytes())
    try:
        await parser.parse(seed)
        (first,) = parser.worker_pids
        waiting = asyncio.create_task(parser.parse(seed))  # behind the slow one
        with pytest.raises(ParseError, match="longer than 1s"):
            await parser.parse(slow_body())
        assert (await waiting).entries == (await parser.parse(seed)).entries
        (replacement,) = parser.worker_pids
        assert replacement != first
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)
    finally:
        parser.close()
