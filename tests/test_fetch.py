"""The fetcher against a real aiohttp feed server on 127.0.0.1."""

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web

from tests.fakes.feed_server import FeedServer
from watcher.errors import FetchError
from watcher.fetch import (
    MAX_REDIRECTS,
    MAX_WAIT_S,
    USER_AGENT,
    Fetcher,
    freshness_seconds,
    parse_retry_after,
)

FEED = b"<rss version='2.0'><channel><title>t</title></channel></rss>"


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as running:
        yield running


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(timeout_s=2, max_body_bytes=100_000) as running:
        yield running


async def test_200_returns_body_validators_and_content_type(
    server: FeedServer, fetcher: Fetcher
) -> None:
    url = server.serve("/rss", FEED, content_type="application/rss+xml; charset=windows-1251")
    result = await fetcher.fetch(url)
    assert result.status == 200 and result.body == FEED
    assert result.etag and result.last_modified == "Sat, 28 Nov 2026 10:00:00 GMT"
    assert result.content_type == "application/rss+xml; charset=windows-1251"
    assert server.requests[0].headers["User-Agent"] == USER_AGENT
    await fetcher.fetch(url, user_agent="Mozilla/5.0 (X11) Watcher")  # a feed's own, if set
    assert server.requests[1].headers["User-Agent"] == "Mozilla/5.0 (X11) Watcher"


async def test_conditional_get_sends_validators_and_gets_304(
    server: FeedServer, fetcher: Fetcher
) -> None:
    url = server.serve("/rss", FEED)
    first = await fetcher.fetch(url)
    second = await fetcher.fetch(url, etag=first.etag, last_modified=first.last_modified)
    assert second.not_modified and second.body is None
    sent = server.requests[1].headers
    assert sent["If-None-Match"] == first.etag
    assert sent["If-Modified-Since"] == first.last_modified


@pytest.mark.parametrize("status", [404, 410, 500, 503])
async def test_error_statuses_raise_with_the_status(
    server: FeedServer, fetcher: Fetcher, status: int
) -> None:
    url = server.serve("/rss", FEED, status=status)
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(url)
    assert caught.value.status == status


async def test_429_carries_retry_after(server: FeedServer, fetcher: Fetcher) -> None:
    url = server.serve("/rss", FEED, status=429, headers={"Retry-After": "120"})
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(url)
    assert (caught.value.status, caught.value.retry_after) == (429, 120.0)


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert parse_retry_after("Sat, 28 Nov 2026 10:05:00 GMT", now) == 300.0
    assert parse_retry_after("Sat, 28 Nov 2026 09:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


async def test_slow_server_times_out(server: FeedServer) -> None:
    url = server.serve("/rss", FEED, delay_s=3)
    async with Fetcher(timeout_s=0.5, max_body_bytes=1000) as fetcher:
        with pytest.raises(FetchError, match="timed out"):
            await fetcher.fetch(url)


async def test_truncated_body_is_an_error(server: FeedServer, fetcher: Fetcher) -> None:
    url = server.serve("/rss", FEED * 10, truncate_to=50)
    with pytest.raises(FetchError, match="received 50 of 600 bytes"):
        await fetcher.fetch(url)


async def test_body_over_the_limit_is_cut_off(server: FeedServer) -> None:
    url = server.serve("/rss", b"x" * 5000)
    async with Fetcher(timeout_s=2, max_body_bytes=1000) as fetcher:
        with pytest.raises(FetchError, match="1000-byte limit"):
            await fetcher.fetch(url)


async def test_gzip_bomb_is_limited_by_its_decompressed_size() -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)  # ~5 KB on the wire

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/bomb", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        async with Fetcher(timeout_s=5, max_body_bytes=100_000) as fetcher:
            with pytest.raises(FetchError, match="limit"):
                await fetcher.fetch(f"http://127.0.0.1:{port}/bomb")
    finally:
        await runner.cleanup()


async def test_redirects_are_followed_and_the_final_url_reported(
    server: FeedServer, fetcher: Fetcher
) -> None:
    target = server.serve("/new", FEED)
    url = server.serve("/old", b"", redirect_to=target, redirect_status=301)
    result = await fetcher.fetch(url)
    assert result.body == FEED and result.url == target


async def test_redirect_loop_is_an_error(server: FeedServer, fetcher: Fetcher) -> None:
    url = server.serve("/loop", b"", redirect_to="/loop")
    with pytest.raises(FetchError, match="redirects"):
        await fetcher.fetch(url)


@pytest.mark.parametrize(("hops", "ok"), [(MAX_REDIRECTS, True), (MAX_REDIRECTS + 1, False)])
async def test_at_most_five_redirects_are_followed(
    server: FeedServer, fetcher: Fetcher, hops: int, ok: bool
) -> None:
    target = server.serve("/end", FEED)
    for hop in reversed(range(hops)):  # /hop0 → /hop1 → … → /end
        target = server.serve(f"/hop{hop}", b"", redirect_to=target, redirect_status=302)
    if ok:
        assert (await fetcher.fetch(target)).body == FEED
    else:
        with pytest.raises(FetchError, match=f"more than {MAX_REDIRECTS} redirects"):
            await fetcher.fetch(target)


async def test_connection_refused_is_an_error(fetcher: Fetcher) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError):
        await fetcher.fetch(f"http://127.0.0.1:{port}/rss")


@pytest.mark.parametrize("url", ["not a url", "http://[::1/x"])
async def test_invalid_url_is_an_error(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(FetchError):
        await fetcher.fetch(url)


async def test_no_more_than_per_host_fetches_at_once(server: FeedServer) -> None:
    urls = [server.serve(f"/feed{n}", FEED, delay_s=0.3) for n in range(5)]
    async with Fetcher(timeout_s=5, max_body_bytes=10_000, per_host=2) as fetcher:
        results = await asyncio.gather(*(fetcher.fetch(url) for url in urls))
    assert all(r.body == FEED for r in results)
    assert server.peak_in_flight == 2


async def test_no_more_than_concurrency_fetches_at_once_over_all_hosts(
    server: FeedServer,
) -> None:
    urls = [server.serve(f"/feed{n}", FEED, delay_s=0.3) for n in range(5)]
    async with Fetcher(timeout_s=5, max_body_bytes=10_000, per_host=10, concurrency=2) as fetcher:
        results = await asyncio.gather(*(fetcher.fetch(url) for url in urls))
    assert all(r.body == FEED for r in results)
    assert server.peak_in_flight == 2


@pytest.mark.parametrize(
    ("cache_control", "expires", "date", "age", "seconds"),
    [
        ("public, max-age=900", None, None, None, 900.0),
        ('max-age="600"', None, None, "100", 500.0),
        ("no-cache, max-age=900", None, None, None, None),
        (None, "Sat, 28 Nov 2026 11:00:00 GMT", "Sat, 28 Nov 2026 10:00:00 GMT", None, 3600.0),
        ("max-age=60", "Sat, 28 Nov 2026 11:00:00 GMT", "Sat, 28 Nov 2026 10:00:00 GMT", None, 60),
        (None, "0", None, None, None),
        (None, None, None, None, None),
        # From the network: odd digits and numbers that overflow never raise.
        ("max-age=\u00b2", None, None, None, None),
        ("max-age=60", None, None, "\u00b2", 60.0),
        ("max-age=99999999999999", None, None, None, MAX_WAIT_S),
        (None, "Sat, 28 Nov 2026 99999999999:00:00 GMT", None, None, None),
        (
            None,
            "Sat, 28 Nov 2026 11:00:00 GMT",
            "Sat, 28 Nov 2026 99999999999:00:00 GMT",
            None,
            None,
        ),
    ],
)
def test_freshness_from_cache_headers(
    cache_control: str | None,
    expires: str | None,
    date: str | None,
    age: str | None,
    seconds: float | None,
) -> None:
    assert freshness_seconds(cache_control, expires, date, age) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("\u00b2", None),  # str.isdigit() says yes, float() says no
        ("-5", None),
        ("1.5", None),
        ("99999999999999", MAX_WAIT_S),  # added to now, it overflowed
        ("Sat, 28 Nov 2026 99999999999:00:00 GMT", None),  # parsing overflowed
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_WAIT_S),
    ],
)
def test_retry_after_from_the_network_is_bounded(value: str, seconds: float | None) -> None:
    now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert parse_retry_after(value, now) == seconds


async def test_a_304_to_a_request_without_validators_is_an_error(
    server: FeedServer, fetcher: Fetcher
) -> None:
    # Taken as "unchanged", it made the first real document look like news, backlog and all.
    url = server.serve("/rss", FEED, status=304)
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(url)
    assert caught.value.status == 304 and "without validators" in str(caught.value)


class RawServer:
    """Answers every GET with FEED and header lines given as raw bytes (aiohttp's own server
    would not send bytes that are not UTF-8)."""

    def __init__(self, headers: bytes) -> None:
        self.headers = headers

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
            + self.headers
            + f"Content-Length: {len(FEED)}\r\nConnection: close\r\n\r\n".encode()
            + FEED
        )
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/rss"

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        await self._server.wait_closed()


async def test_validators_that_are_not_utf8_are_not_kept(fetcher: Fetcher) -> None:
    # RFC 9110 allows any byte from 0x80 in an ETag; aiohttp keeps such bytes as lone
    # surrogates, which SQLite refused (the poll's whole write failed, at every poll).
    raw = b'ETag: "caf\xe9"\r\nLast-Modified: Sat, 28 Nov 2026 10:00:00 GMT\xff\r\n'
    async with RawServer(raw) as url:
        result = await fetcher.fetch(url)
    assert result.body == FEED and (result.etag, result.last_modified) == (None, None)
    async with RawServer('ETag: "café"\r\n'.encode()) as url:
        assert (await fetcher.fetch(url)).etag == '"café"'


async def test_fetch_reports_freshness(server: FeedServer, fetcher: Fetcher) -> None:
    url = server.serve("/rss", FEED, headers={"Cache-Control": "max-age=1800"})
    assert (await fetcher.fetch(url)).fresh_for_s == 1800.0


async def test_a_relative_guid_is_read_against_the_feeds_url_whatever_its_content_location(
    server: FeedServer, fetcher: Fetcher
) -> None:
    from watcher.parse import parse_feed

    body = (
        b"<rss version='2.0'><channel><title>t</title>"
        b"<item><title>Breaking news</title><guid>12345</guid></item></channel></rss>"
    )
    guids = []
    for edge in ("edge1", "edge7"):  # two CDN nodes answer in turn
        url = server.serve(
            "/rss", body, headers={"Content-Location": f"https://{edge}.cdn.example/rss"}
        )
        (entry,) = parse_feed(await fetcher.fetch(url)).entries
        guids.append(entry.guid)
    assert guids == [server.url("/12345")] * 2
