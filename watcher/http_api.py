"""The operator's HTTP endpoint inside the daemon's event loop: `GET /metrics` for Prometheus
and `GET /healthz` for systemd watchdogs, load balancers and uptime checks.

Health is a set of named checks handed in by the caller, each answering None when all is
well or a short reason when not, so this module knows nothing of the daemon and the server
can be tested on its own. The checks provided here cover what "alive" means for Watcher:
the event loop turns, the database accepts a writer, the scheduler ticks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import closing
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from watcher.loop_lag import LoopLagMonitor
from watcher.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[str | None]]
"""Returns None when healthy, else a short reason an operator can act on."""

CHECK_TIMEOUT_S = 2.0  # a check that takes longer is a failed check
REFRESH_TIMEOUT_S = 5.0  # scrape-time reads; Prometheus's default scrape timeout is 10 s
_SHUTDOWN_S = 1.0  # a scrape in progress at stop gets this long (stop must stay quick)
IDLE_S = 10.0


# -- health checks ---------------------------------------------------------------------------


def loop_check(
    monitor: LoopLagMonitor,
    *,
    max_lag_s: float = 1.0,
    max_beat_age_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> HealthCheck:
    """The lag monitor woke recently, and not too late. (A loop blocked outright cannot
    answer at all: the prober's own timeout covers that case.)"""

    async def check() -> str | None:
        if monitor.last_beat is None:
            return "event loop monitor has not run yet"
        age = clock() - monitor.last_beat
        if age > max_beat_age_s:
            return f"event loop monitor silent for {age:.1f}s"
        if monitor.last_lag_s > max_lag_s:
            return f"event loop lag {monitor.last_lag_s:.3f}s exceeds {max_lag_s:g}s"
        return None

    return check


def tick_check(
    last_tick: Callable[[], float | None],
    *,
    max_age_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> HealthCheck:
    """The scheduler's last tick (a `clock` time, None before the first) is recent."""

    async def check() -> str | None:
        tick = last_tick()
        if tick is None:
            return "scheduler has not ticked yet"
        age = clock() - tick
        if age > max_age_s:
            return f"scheduler last ticked {age:.1f}s ago"
        return None

    return check


class DatabaseWritable:
    """A health check: can a writer start a transaction on the database right now?

    Runs `BEGIN IMMEDIATE` then `ROLLBACK` on its own short-lived stdlib connection in a
    thread (the store's connection must not be tied up, and its busy timeout is long), so
    another process holding the write lock turns the check red within `busy_timeout_s`.
    `mode=rw` never creates a missing database. A check still stuck in its thread (a hung
    disk) is not started again: it reports itself instead of piling up threads.
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 1.0,
        own_write_since: Callable[[], float | None] = lambda: None,
        max_own_write_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uri = path.resolve().as_uri() + "?mode=rw"
        self._busy_timeout_s = busy_timeout_s
        self._running: asyncio.Future[None] | None = None
        # While the daemon's own write transaction runs, the lock is ours: the database
        # is writable (it is being written), unless that transaction has run for too long.
        self._own_write_since = own_write_since
        self._max_own_write_s = max_own_write_s
        self._clock = clock

    async def __call__(self) -> str | None:
        since = self._own_write_since()
        if since is not None:
            held = self._clock() - since
            if held > self._max_own_write_s:
                return f"a write transaction of the daemon has been open for {held:.0f}s"
            return None
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(
                asyncio.to_thread(_begin_and_roll_back, self._uri, self._busy_timeout_s)
            )
            # Retrieved even when the caller gave up waiting, so asyncio does not complain.
            self._running.add_done_callback(_consume_exception)
        # Probes that overlap share one check (and one thread): each still gives up after
        # its own timeout if the database does not answer.
        try:
            await asyncio.shield(self._running)
        except sqlite3.Error as exc:
            return f"database is not writable: {exc}"
        return None


def _consume_exception(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _begin_and_roll_back(uri: str, busy_timeout_s: float) -> None:
    with closing(
        sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None)
    ) as db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")


# -- the server ------------------------------------------------------------------------------


class _BadRequestFilter(logging.Filter):
    """aiohttp logs a request it cannot parse (a header too long, a scanner's garbage) as an
    ERROR with a traceback: one malformed request a line of nine. Those are the client's
    fault and get one DEBUG line; errors of our own handlers still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            log.debug("http bad request error=%r", error)
            return False
        return True


def _quiet_bad_requests() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _BadRequestFilter) for f in server_log.filters):
        server_log.addFilter(_BadRequestFilter())


class HealthServer:
    """aiohttp on the running loop (AppRunner + TCPSite). `start()` binds, `stop()` closes;
    or `async with`. `port` is the bound port (useful with port 0)."""

    def __init__(
        self,
        listen: tuple[str, int],
        *,
        metrics: Metrics,
        before_scrape: Callable[[], Awaitable[None]] | None = None,
        checks: Mapping[str, HealthCheck] | None = None,
        check_timeout_s: float = CHECK_TIMEOUT_S,
        idle_s: float = IDLE_S,
    ) -> None:
        # (host, port) as config.HttpSettings.listen holds it; port 0 picks a free port.
        self.host, self._port = listen
        self._idle_s = idle_s
        self._metrics = metrics
        self._before_scrape = before_scrape
        self._checks = dict(checks or {})
        self._check_timeout_s = check_timeout_s
        self._runner: web.AppRunner | None = None
        self._was_healthy = True

    @property
    def port(self) -> int:
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the health server is not listening")
        return int(self._runner.addresses[0][1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        _quiet_bad_requests()
        app = web.Application()
        app.router.add_get("/metrics", self._serve_metrics)
        app.router.add_get("/healthz", self._serve_health)
        # No access log: a scrape every few seconds would drown the daemon's own lines.
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_S,
            # A connection idle (or a request unfinished) this long is closed: clients that
            # open connections and send nothing must not hold the daemon's descriptors.
            keepalive_timeout=self._idle_s,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("http listening url=%s endpoints=/metrics,/healthz", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

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

    async def _serve_metrics(self, _request: web.Request) -> web.Response:
        if self._before_scrape is not None:
            try:
                await asyncio.wait_for(self._before_scrape(), REFRESH_TIMEOUT_S)
            except Exception as exc:
                # The counters are still worth having; the gauges keep their last values.
                log.warning("metrics refresh failed error=%r", exc)
        return web.Response(
            body=self._metrics.exposition(),
            headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"},
        )

    async def _serve_health(self, _request: web.Request) -> web.Response:
        names = list(self._checks)
        results = dict(
            zip(
                names,
                await asyncio.gather(*(self._run_check(self._checks[n]) for n in names)),
                strict=True,
            )
        )
        reasons = [f"{name}: {reason}" for name, reason in results.items() if reason]
        checks = {name: reason or "ok" for name, reason in results.items()}
        healthy = not reasons
        if healthy != self._was_healthy:
            if healthy:
                log.info("health recovered")
            else:
                log.warning("health failing reasons=%s", "; ".join(reasons))
            self._was_healthy = healthy
        body: dict[str, object] = {"status": "ok" if healthy else "unhealthy"}
        if reasons:
            body["reasons"] = reasons
        body["checks"] = checks
        return web.Response(
            status=200 if healthy else 503,
            text=json.dumps(body),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def _run_check(self, check: HealthCheck) -> str | None:
        try:
            return await asyncio.wait_for(check(), self._check_timeout_s)
        except TimeoutError:
            return f"no answer within {self._check_timeout_s:g}s"
        except Exception as exc:
            return f"check failed: {exc!r}"
