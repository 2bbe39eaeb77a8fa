"""HTTP adapter: conditional GET of a feed with bounded time and size.

Turns every way a request can go wrong into a FetchError carrying the status and any
Retry-After, so the caller decides about scheduling without knowing aiohttp.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import aiohttp

from watcher import PROJECT_URL, __version__
from watcher.errors import FetchError
from watcher.model import FetchResult

USER_AGENT = f"Watcher/{__version__} (+{PROJECT_URL})"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
MAX_REDIRECTS = 5
_CHUNK_BYTES = 64 * 1024
# Longer waits are honoured as this long: a year is past any use, and far longer values
# overflow the dates they are added to.
MAX_WAIT_S = 365 * 86400.0


def _seconds(value: str) -> float | None:
    """Delta-seconds as HTTP writes them: ASCII digits only (`str.isdigit` takes "²")."""
    value = value.strip().strip('"')
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_WAIT_S)
    return None


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # junk, and hours like 99999999999
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    when = _http_date(value.strip())
    if when is None:
        return None
    return min(max(0.0, (when - (now or datetime.now(UTC))).total_seconds()), MAX_WAIT_S)


def freshness_seconds(
    cache_control: str | None,
    expires: str | None,
    date: str | None,
    age: str | None,
    now: datetime | None = None,
) -> float | None:
    """How long the server says the response stays fresh: Cache-Control max-age (less
    Age) wins over Expires (against the server's Date, so clock skew does not matter)."""
    if cache_control:
        directives = [part.strip().lower() for part in cache_control.split(",")]
        if "no-cache" in directives or "no-store" in directives:
            return None
        for directive in directives:
            name, _, value = directive.partition("=")
            max_age = _seconds(value) if name.strip() == "max-age" else None
            if max_age is not None:
                already = (_seconds(age) or 0.0) if age else 0.0
                return max(0.0, max_age - already)
    if expires:
        until = _http_date(expires)
        base = _http_date(date) if date else (now or datetime.now(UTC))
        if until is None or base is None:
            return None  # "Expires: 0" and other junk mean "already stale"
        return min(max(0.0, (until - base).total_seconds()), MAX_WAIT_S)
    return None


def _validator(response: aiohttp.ClientResponse, name: str) -> str | None:
    """An ETag or Last-Modified to send back, or None. aiohttp keeps bytes that are not
    UTF-8 (legal in an ETag) as lone surrogates, which neither SQLite nor the next request
    can carry: without the validator the body's digest still tells an unchanged feed."""
    value = response.headers.get(name)
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def _freshness(response: aiohttp.ClientResponse) -> float | None:
    headers = response.headers
    return freshness_seconds(
        headers.get("Cache-Control"),
        headers.get("Expires"),
        headers.get("Date"),
        headers.get("Age"),
    )


class Fetcher:
    """One shared aiohttp session for every feed. Use as an async context manager."""

    def __init__(
        self,
        *,
        timeout_s: float,
        max_body_bytes: int,
        per_host: int = 2,
        concurrency: int | None = None,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(10.0, timeout_s))
        self._max_body_bytes = max_body_bytes
        self._per_host = per_host
        # Waiting for a host's turn happens before the request, so it does not eat into
        # the request's own timeout.
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout,
            headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        user_agent: str | None = None,
    ) -> FetchResult:
        """GET `url`, conditionally when validators are given; `user_agent` replaces
        Watcher's own for this request."""
        if self._session is None:
            raise RuntimeError("Fetcher used outside `async with`")
        headers: dict[str, str] = {}
        if user_agent:
            headers["User-Agent"] = user_agent
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        # The host's turn first, then a global slot: a feed queued behind its own host
        # must not hold a slot that another host's feed could use.
        try:
            host_slot = self._host_slot(url)
        except ValueError as exc:  # "http://[::1/x": an IPv6 host not closed
            raise FetchError(str(exc), url=url) from exc
        async with host_slot:
            if self._slots is None:
                return await self._get(self._session, url, headers)
            async with self._slots:
                return await self._get(self._session, url, headers)

    def _host_slot(self, url: str) -> asyncio.Semaphore:
        host = (urlsplit(url).hostname or "").lower()
        slot = self._host_slots.get(host)
        if slot is None:
            slot = self._host_slots[host] = asyncio.Semaphore(self._per_host)
        return slot

    async def _get(
        self, session: aiohttp.ClientSession, url: str, headers: dict[str, str]
    ) -> FetchResult:
        try:
            # aiohttp refuses the redirect that brings its count *to* max_redirects.
            redirects = MAX_REDIRECTS + 1
            async with session.get(url, headers=headers, max_redirects=redirects) as response:
                conditional = "If-None-Match" in headers or "If-Modified-Since" in headers
                return await self._read(url, response, conditional=conditional)
        except FetchError:
            raise
        except aiohttp.TooManyRedirects as exc:
            raise FetchError(f"more than {MAX_REDIRECTS} redirects", url=url) from exc
        except TimeoutError as exc:
            raise FetchError("timed out", url=url) from exc
        except aiohttp.ClientResponseError as exc:
            raise FetchError(exc.message or "bad response", url=url, status=exc.status) from exc
        except aiohttp.ClientError as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}", url=url) from exc
        except ValueError as exc:  # e.g. an invalid URL
            raise FetchError(str(exc), url=url) from exc

    async def _read(
        self, url: str, response: aiohttp.ClientResponse, *, conditional: bool
    ) -> FetchResult:
        final_url = str(response.url)
        # Only a chain of permanent redirects moves a feed; one temporary hop does not.
        moved_to = (
            final_url
            if response.history and all(r.status in (301, 308) for r in response.history)
            else None
        )
        if response.status == 304:
            if not conditional:
                # "Not modified" since nothing: taken as success, it would make the feed's
                # first real document look like news, backlog and all.
                raise FetchError(
                    "answered 304 Not Modified to a request without validators",
                    url=url,
                    status=304,
                )
            return FetchResult(
                status=304,
                url=final_url,
                body=None,
                etag=_validator(response, "ETag"),
                last_modified=_validator(response, "Last-Modified"),
                moved_to=moved_to,
                fresh_for_s=_freshness(response),
            )
        if not 200 <= response.status < 300:
            raise FetchError(
                response.reason or "HTTP error",
                url=url,
                status=response.status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        declared = response.content_length
        if declared is not None and declared > self._max_body_bytes:
            raise FetchError(
                f"body of {declared} bytes exceeds the {self._max_body_bytes}-byte limit",
                url=url,
                status=response.status,
            )
        # Counted after decompression, so a small gzip bomb is cut off, not inflated.
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
            body += chunk
            if len(body) > self._max_body_bytes:
                raise FetchError(
                    f"body exceeds the {self._max_body_bytes}-byte limit",
                    url=url,
                    status=response.status,
                )
        return FetchResult(
            status=response.status,
            url=final_url,
            body=bytes(body),
            etag=_validator(response, "ETag"),
            last_modified=_validator(response, "Last-Modified"),
            content_type=response.headers.get("Content-Type"),
            moved_to=moved_to,
            fresh_for_s=_freshness(response),
        )
