"""A real HTTP feed server on 127.0.0.1 for tests: serves feed documents with conditional GET
and can be told to misbehave per path (status codes, Retry-After, slow or truncated bodies,
redirects, huge bodies, charsets)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from aiohttp import web


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    validators: bool = True  # send ETag / Last-Modified and honour conditional requests
    last_modified: str = "Sat, 28 Nov 2026 10:00:00 GMT"
    delay_s: float = 0.0
    truncate_to: int | None = None  # announce the full length, send only this many bytes
    redirect_to: str | None = None
    redirect_status: int = 302
    drip_every_s: float | None = None  # send one byte per period, forever
    filler_bytes: int = 0  # stream this many bytes of filler instead of `body`
    gzip: bool = False  # `body` is already gzip-compressed: say so in Content-Encoding


@dataclass
class Request:
    path: str
    headers: dict[str, str]


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.in_flight = 0
        self.peak_in_flight = 0  # most requests handled at once
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()  # ends the delays of requests still waiting
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes | str, **options: object) -> str:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Route(body=data, **options)  # type: ignore[arg-type]
        return self.url(path)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Request(path=request.path, headers=dict(request.headers)))
        route = self.routes.get(request.path)
        if route is None:
            return web.Response(status=404, text="not found")
        if route.delay_s:
            # A client that gave up does not end the handler: stop() must not wait it out.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), route.delay_s)
        if route.redirect_to is not None:
            raise (
                web.HTTPFound(route.redirect_to)
                if route.redirect_status == 302
                else (web.HTTPMovedPermanently(route.redirect_to))
            )
        headers = dict(route.headers)
        if route.drip_every_s is not None or route.filler_bytes:
            return await self._stream(request, route)
        if route.gzip:
            headers["Content-Encoding"] = "gzip"
        if route.status != 200:
            return web.Response(status=route.status, headers=headers, text="error")
        etag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
        if route.validators:
            headers["ETag"] = etag
            headers["Last-Modified"] = route.last_modified
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers=headers)
        if route.truncate_to is not None:
            response = web.StreamResponse(status=200, headers=headers)
            response.content_type = route.content_type.split(";")[0]
            response.content_length = len(route.body)
            await response.prepare(request)
            await response.write(route.body[: route.truncate_to])
            # Closing the transport mid-body is what a dropped connection looks like.
            if request.transport is not None:
                request.transport.close()
            return response
        headers["Content-Type"] = route.content_type
        return web.Response(status=200, body=route.body, headers=headers)

    async def _stream(self, request: web.Request, route: Route) -> web.StreamResponse:
        """A body that never ends (drip) or is far too big (filler), without holding it."""
        response = web.StreamResponse(status=200)
        response.content_type = route.content_type.split(";")[0]
        await response.prepare(request)
        await response.write(b"<?xml version='1.0'?><rss version='2.0'><channel>")
        if route.drip_every_s is not None:
            with contextlib.suppress(ConnectionResetError):
                while True:  # ends when the client gives up and closes the connection
                    await asyncio.sleep(route.drip_every_s)
                    await response.write(b" ")
            return response
        chunk = b"<!-- filler -->" * 4096
        sent = 0
        while sent < route.filler_bytes:
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
        return response
