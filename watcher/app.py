"""Composition root and lifecycle: open the store, the HTTP session, the parser pool and the
Telegram sender; tick the scheduler; deliver the outbox; stop cleanly on SIGTERM/SIGINT.

This is the only module that knows every part, and it holds no policy of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from watcher import __version__
from watcher.bot_backend import StoreBackend
from watcher.config import (
    PollingSettings,
    Settings,
    TelegramSettings,
    compiled_rules,
    load_config,
)
from watcher.config_watch import FileStamps
from watcher.delivery import Delivery, Limits
from watcher.digests import send_due_digests
from watcher.errors import ConfigError
from watcher.fetch import Fetcher
from watcher.http_api import DatabaseWritable, HealthServer, loop_check, tick_check
from watcher.logs import RedactingFormatter
from watcher.loop_lag import LoopLagMonitor
from watcher.metrics import Metrics
from watcher.model import FeedDef, FeedState
from watcher.parse_pool import FeedParser
from watcher.pipeline import PollContext, PollReport, RuleSet, poll_feed, record_crash
from watcher.redaction import display_url, url_secrets
from watcher.rules import Matcher
from watcher.scheduler import Ticker
from watcher.sd_notify import SystemdNotifier
from watcher.service_status import read_service_status
from watcher.store import Store, prune
from watcher.story_alerts import StoryTracker, story_settings
from watcher.telegram.bot import SubscriberBot
from watcher.telegram.send import TelegramSender

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
_POLLS_STARTED_PER_TURN = 16  # then the tick lets the loop run: see _tick
# A tick that reads the wall clock this far behind the last one's: the clock stepped back.
CLOCK_STEP_TOLERANCE = timedelta(seconds=5)
# How long after a clock step a poll begun before it may still write: a fetch's timeout and
# a parse's deadline, with room to spare.
CLOCK_STEP_HEALING_S = 300.0
CONFIG_CHECK_SECONDS = 1.0  # edits to config files apply within a couple of seconds
# SIGTERM to exit must stay well under systemd's default 90 s and our promised 10 s.
POLL_GRACE_S = 5.0
DELIVERY_GRACE_S = 3.0
# systemd's STATUS= line is refreshed this often even without a watchdog.
STATUS_EVERY_S = 30.0
# A watchdog probe of the database that takes longer than this counts as no answer.
DATABASE_PROBE_TIMEOUT_S = 5.0
PROBE_RETRY_S = 1.0
# /healthz reports the scheduler stuck when it has not ticked for this long.
TICK_STALE_S = 30.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_ruleset(settings: Settings) -> RuleSet:
    telegram = settings.telegram
    return RuleSet(
        matcher=compiled_rules(settings),
        chats_by_rule={rule.name: rule.chats for rule in settings.rules},
        may_subscribe=(
            None
            if telegram.subscribers == "open"
            else frozenset(telegram.allow) | frozenset(telegram.admins)
        ),
    )


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        environ: Mapping[str, str],
        log_formatter: RedactingFormatter | None = None,
    ) -> None:
        self.settings = settings
        self._environ = environ
        self._log_formatter = log_formatter
        self._stop = asyncio.Event()
        self._reload_requested = asyncio.Event()
        self._last_reload_error: str | None = None
        self._orphaned_rules: set[str] = set()  # followed rules not configured, as last told
        self._last_reload_files: tuple[Path, ...] = ()  # the files a failed reload read
        # Fixed at start like the rest of [polling] (a reload warns): the polls, /metrics
        # and the status line must agree on when a feed is failing.
        self._failing_after = settings.polling.failing_after
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._ruleset = build_ruleset(settings)
        self._feeds: dict[str, FeedDef] = {feed.name: feed for feed in settings.feeds}
        # Polls started at once. Fetches are limited more finely inside the fetcher (per
        # host first, then overall), so a feed waiting for its host holds no global slot;
        # this bound only keeps the number of waiting tasks modest.
        self._max_polls = settings.polling.concurrency * 4
        self._in_flight_ids: dict[str, int] = {}
        self._moving: set[str] = set()  # feeds a reload is giving another URL or User-Agent
        self._last_tick_at: datetime | None = None  # the wall clock at the last tick
        self._on_clock_step: Callable[[], None] | None = None  # the ticker's cron jobs
        # A clock step, and until when (monotonic) polls under way at it may still write.
        self._step_to_heal: tuple[timedelta, float] | None = None
        self._notifier = SystemdNotifier(environ)
        self._ticked = asyncio.Event()
        self.last_tick_monotonic: float | None = None
        self.metrics = Metrics()
        self._retention = settings.retention  # changes apply after a restart
        # [telegram] timezone applies after a restart, to alerts, digests and the bot alike.
        self._timezone = ZoneInfo(settings.telegram.timezone)
        # As close to the load as the daemon gets: an edit made while it starts is a reload.
        self._initial_stamps = FileStamps(settings.files)

    def request_stop(self) -> None:
        self._stop.set()

    def _take_in(self, settings: Settings) -> None:
        """What a loaded config asks at start and at each reload: the log formatter learns
        the credentials its feed URLs carry, to scrub them wherever they turn up (a
        library's message, a traceback; what shows a URL masks them already), and what
        loads but looks wrong is logged."""
        if self._log_formatter is not None:
            for feed in settings.feeds:
                for secret in url_secrets(feed.url):
                    self._log_formatter.add_secret(secret)
        for warning in settings.warnings:
            log.warning("config: %s", warning)

    async def run(self) -> int:
        token = self.settings.telegram.read_token(self._environ)
        if token and self._log_formatter is not None:
            self._log_formatter.add_secret(token)
        self._take_in(self.settings)
        self._install_signal_handlers()

        store = await Store.open(self.settings.storage.path)
        try:
            await store.sync_feeds(self.settings.feeds, utc_now())
            await self._check_followed_rules(store)
            async with Fetcher(
                timeout_s=self.settings.polling.timeout,
                max_body_bytes=self.settings.polling.max_body_bytes,
                per_host=self.settings.polling.per_host,
                concurrency=self.settings.polling.concurrency,
            ) as fetcher:
                parser = FeedParser()
                sender = (
                    TelegramSender(
                        token,
                        api_base_url=self.settings.telegram.api_base_url,
                        disable_link_preview=self.settings.telegram.disable_link_preview,
                    )
                    if token
                    else None
                )
                try:
                    await self._serve(store, fetcher, parser, sender, token)
                finally:
                    if sender is not None:
                        await sender.close()
                    parser.close()
        finally:
            await store.close()
            self._notifier.close()
        log.info("stopped")
        return 0

    async def _serve(
        self,
        store: Store,
        fetcher: Fetcher,
        parser: FeedParser,
        sender: TelegramSender | None,
        token: str | None,
    ) -> None:
        delivery = Delivery(
            store,
            sender,
            clock=utc_now,
            retry_for=timedelta(seconds=self.settings.telegram.retry_for),
            max_retry_delay=timedelta(seconds=self.settings.telegram.max_retry_delay),
            admins=self.settings.telegram.admins,
            limits=Limits(max_in_flight=self.settings.telegram.max_in_flight),
            metrics=self.metrics,
        )
        context = PollContext(
            store=store,
            fetcher=fetcher,
            parser=parser,
            rules=lambda: self._ruleset,
            console=sender is None,
            clock=utc_now,
            failing_after=self._failing_after,
            timezone=self._timezone,
            min_interval_s=self.settings.polling.min_interval,
            max_interval_s=self.settings.polling.max_interval,
            metrics=self.metrics,
            retention_s=self._retention.entries,
            realert_on_update=self.settings.stories.realert_on_update,
            stories=await self._story_tracker(store),
        )

        async def tick() -> None:
            await self._follow_the_clock(store, delivery)
            await self._tick(store, context, delivery)
            self.last_tick_monotonic = time.monotonic()
            self._ticked.set()

        async def minutely() -> None:
            try:
                if await send_due_digests(store, utc_now(), self._timezone):
                    delivery.wake()
            except Exception:
                log.exception("digest round failed")

        async def daily() -> None:
            await self._upkeep(store)

        ticker = Ticker(tick, every_s=TICK_SECONDS, minutely=minutely, daily=daily)
        self._on_clock_step = ticker.clock_stepped
        lag = LoopLagMonitor(on_lag=self.metrics.observe_loop_lag)
        lag.start()
        http = self._health_server(store, lag)
        if http is not None:
            await http.start()
        delivery_task = asyncio.create_task(delivery.run(self._stop), name="delivery")
        watch_task = asyncio.create_task(self._watch_config(store, delivery), name="config-watch")
        ticker.start()
        await self._first_tick()
        bot = None
        if token is not None:
            backend = StoreBackend(
                store, lambda: self.settings, clock=utc_now, wake_delivery=delivery.wake
            )
            bot = SubscriberBot(
                token,
                api_base_url=self.settings.telegram.api_base_url,
                backend=backend,
                reply_slot=delivery.reply_slot,
            )
            await bot.start()  # never raises for Telegram's sake: retries in the background
        log.info(
            "started version=%s feeds=%d rules=%d matcher=%s db=%s alerts_to=%s",
            __version__,
            len(self._feeds),
            len(self.settings.rules),
            self._ruleset.matcher.engine,
            self.settings.storage.path,
            "telegram" if sender is not None else "console",
        )
        # READY=1 only now: migrations ran (Store.open), the scheduler ticked, the bot
        # started (or, with Telegram unreachable, is retrying in the background: holding
        # READY back would only make systemd kill a daemon that polls fine).
        self._notifier.ready(await self._status_line(store))
        health_task = asyncio.create_task(self._report_health(store), name="systemd-health")
        try:
            await self._stop.wait()
        finally:
            log.info("stopping in_flight_polls=%d", len(self._in_flight))
            self._notifier.stopping()
            health_task.cancel()
            await asyncio.gather(health_task, return_exceptions=True)
            if http is not None:
                await http.stop()
            await lag.stop()
            ticker.stop()
            if bot is not None:
                await bot.stop()  # before the store closes: a command may be using it
            watch_task.cancel()
            await asyncio.gather(watch_task, return_exceptions=True)
            await self._drain_polls()
            await _finish(delivery_task, DELIVERY_GRACE_S)

    def _current_rules(self) -> tuple[Matcher, dict[str, str | None]]:
        """The rules in force and each feed's language (the story index's rebuilds)."""
        languages = {feed.name: feed.language for feed in self.settings.feeds}
        return self._ruleset.matcher, languages

    async def _story_tracker(self, store: Store) -> StoryTracker:
        """The story index, rebuilt from the store: a story begun before a restart goes on."""
        tracker = StoryTracker(story_settings(self.settings.stories), rules=self._current_rules)
        await tracker.load(store, utc_now())
        return tracker

    async def _upkeep(self, store: Store) -> None:
        """Retention: forget what is older than [retention] allows, then PRAGMA optimize.
        [retention] as the daemon started: the pipeline's horizon (never alert an entry
        published before it) is fixed at start too, and the two must agree."""
        retention = self._retention
        try:
            await prune(
                store, utc_now(), keep_entries_s=retention.entries, keep_outbox_s=retention.outbox
            )
        except Exception:
            log.exception("retention failed; it runs again tomorrow")

    def _health_server(self, store: Store, lag: LoopLagMonitor) -> HealthServer | None:
        listen = self.settings.http.listen
        if listen is None:
            return None

        async def before_scrape() -> None:
            await self.metrics.refresh(store, now=utc_now(), failing_after=self._failing_after)

        return HealthServer(
            listen,
            metrics=self.metrics,
            before_scrape=before_scrape,
            checks={
                "event_loop": loop_check(lag),
                "database": DatabaseWritable(
                    self.settings.storage.path, own_write_since=lambda: store.write_since
                ),
                "scheduler": tick_check(lambda: self.last_tick_monotonic, max_age_s=TICK_STALE_S),
            },
        )

    async def _first_tick(self) -> None:
        stop = asyncio.create_task(self._stop.wait())
        ticked = asyncio.create_task(self._ticked.wait())
        await asyncio.wait({stop, ticked}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stop, ticked):
            task.cancel()

    async def _status_line(self, store: Store) -> str:
        try:
            return (await read_service_status(store, self._failing_after)).line()
        except Exception as exc:
            log.warning("could not read the service status: %r", exc)
            return "running; status unavailable (database did not answer)"

    async def _report_health(self, store: Store) -> None:
        """WATCHDOG=1 at half of WATCHDOG_USEC, but only while this loop runs (this task
        is scheduled on it) and the database answers; STATUS= every STATUS_EVERY_S. A
        probe that fails is retried every PROBE_RETRY_S: one slow answer costs a late
        ping, not a restart; systemd restarts the daemon only when the database stays
        silent for about WATCHDOG_USEC."""
        interval = self._notifier.watchdog_interval_s
        every = min(interval, STATUS_EVERY_S) if interval is not None else STATUS_EVERY_S
        last_status = time.monotonic()
        wait = every
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
            if self._stop.is_set() or not self._notifier.enabled:
                return
            try:
                status = await asyncio.wait_for(
                    read_service_status(store, self._failing_after),
                    DATABASE_PROBE_TIMEOUT_S,
                )
            except Exception as exc:
                log.warning("watchdog: the database did not answer: %r", exc)
                wait = PROBE_RETRY_S
                continue
            wait = every
            if interval is not None:
                self._notifier.watchdog()
            if time.monotonic() - last_status >= STATUS_EVERY_S:
                last_status = time.monotonic()
                self._notifier.status(status.line())

    async def _tick(self, store: Store, context: PollContext, delivery: Delivery) -> None:
        if self._stop.is_set():
            return
        capacity = self._max_polls - len(self._in_flight)
        if capacity <= 0:
            return
        # Feeds in flight when the query starts are excluded even if they finish while it
        # runs: the rows read may predate their new next check, and they would poll twice.
        busy = list(self._in_flight_ids.values())
        try:
            due = await store.due_feeds(utc_now(), limit=capacity, exclude=busy)
        except Exception:
            log.exception("tick failed: could not read due feeds")
            return
        started = 0
        for state in due:
            feed = self._feeds.get(state.name)
            if feed is None or state.name in self._in_flight or state.name in self._moving:
                continue
            task = asyncio.create_task(self._poll(feed, state, context, delivery))
            self._in_flight[state.name] = task
            self._in_flight_ids[state.name] = state.id
            task.add_done_callback(functools.partial(self._forget_poll, state.name))
            started += 1
            if started % _POLLS_STARTED_PER_TURN == 0:
                # Every task created so far takes its first step in the loop's next turn:
                # hundreds at once would hold the loop for 100 ms (bench/poll.py).
                await asyncio.sleep(0)
                if self._stop.is_set():
                    return

    async def _follow_the_clock(self, store: Store, delivery: Delivery) -> None:
        """Ticks come every second by the monotonic clock; the wall clock read at one that
        is well behind the last one's stepped back, and the schedules, kept in wall time,
        move back with it."""
        now = utc_now()
        last, self._last_tick_at = self._last_tick_at, now
        if last is not None and now < last - CLOCK_STEP_TOLERANCE:
            await self._clock_stepped_back(store, delivery, last - now, last)
        elif self._step_to_heal is not None:
            await self._heal_clock_step(store, now)

    async def _heal_clock_step(self, store: Store, now: datetime) -> None:
        """Polls under way at a clock step write their schedules after it, in the old time."""
        assert self._step_to_heal is not None
        step, until = self._step_to_heal
        try:
            await store.late_checks_stepped_back(step, now + CLOCK_STEP_TOLERANCE)
        except Exception:
            log.exception("could not move back a schedule written after a clock step")
        if time.monotonic() > until:
            self._step_to_heal = None

    async def _clock_stepped_back(
        self, store: Store, delivery: Delivery, step: timedelta, last: datetime
    ) -> None:
        """Move every schedule back `step`; if the database refuses, the next tick tries
        again, still measuring from `last`, the last tick's wall clock."""
        log.warning(
            "clock stepped back %.0fs: moving the schedules back as much", step.total_seconds()
        )
        try:
            await store.clock_stepped_back(step)
        except Exception:
            log.exception("could not move the schedules back; trying again at the next tick")
            self._last_tick_at = last
            return
        delivery.clock_stepped_back(step)
        self._step_to_heal = (step, time.monotonic() + CLOCK_STEP_HEALING_S)
        if self._on_clock_step is not None:
            self._on_clock_step()

    def _forget_poll(self, name: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(name, None)
        self._in_flight_ids.pop(name, None)

    async def _poll(
        self, feed: FeedDef, state: FeedState, context: PollContext, delivery: Delivery
    ) -> None:
        started = time.perf_counter()
        try:
            report = await poll_feed(feed, state, context)
        except Exception as exc:
            # A bug, not a feed problem: log it, and still reschedule the feed so it is
            # neither lost nor retried every tick.
            log.exception("poll crashed feed=%s", feed.name)
            error = f"internal error: {exc!r}"
            report = PollReport(feed=feed.name, error=error)
            try:
                report = await record_crash(feed, state, context, error)
            except Exception:
                log.exception("could not record the failure of feed=%s", feed.name)
        _log_poll(report, time.perf_counter() - started)
        if report.alerts:
            delivery.wake()
        await self._report_feed_health(report, feed, context, delivery)

    async def _report_feed_health(
        self, report: PollReport, feed: FeedDef, context: PollContext, delivery: Delivery
    ) -> None:
        """Tell the operator about a feed once when it changes state, never on every poll."""
        notice = None
        if report.became_failing:
            notice = (
                f"Feed {feed.name} is failing: {context.failing_after} failures in a row; "
                f"last error: {report.error}. Watcher keeps retrying with backoff."
            )
            log.warning("feed failing feed=%s last_error=%r", feed.name, report.error)
        elif report.recovered:
            notice = f"Feed {feed.name} has recovered (HTTP {report.status})."
            log.info("feed recovered feed=%s status=%s", feed.name, report.status)
        elif report.disabled:
            notice = (
                f"Feed {feed.name} is gone (HTTP 410) and is no longer polled; "
                "change or remove its url in the config."
            )
            log.warning("feed disabled feed=%s reason=%r", feed.name, report.error)
        if report.moved_to is not None:
            log.warning(
                "feed moved permanently feed=%s new_url=%s: update its url in the config",
                feed.name,
                display_url(report.moved_to),
            )
        if notice is not None:
            await delivery.notify_admins(notice)

    async def _drain_polls(self) -> None:
        tasks = list(self._in_flight.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=POLL_GRACE_S)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
            log.warning(
                "stop: cancelled %d polls still running after %.0fs", len(pending), POLL_GRACE_S
            )

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        log.info("signal SIGHUP received: reloading the config")
        self._reload_requested.set()

    # -- hot reload ----------------------------------------------------------------------

    async def _watch_config(self, store: Store, delivery: Delivery) -> None:
        """Reload when a config file changes or on SIGHUP. Stamps are taken before loading,
        so an edit made while a reload runs is seen on the next round."""
        stamps = self._initial_stamps
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload_requested.wait(), CONFIG_CHECK_SECONDS)
            requested = self._reload_requested.is_set()
            self._reload_requested.clear()
            if not requested and not stamps.changed():
                continue
            stamps = FileStamps(self.settings.files)
            try:
                self._notifier.reloading()
                applied = await self.reload(store, delivery)
                self.metrics.observe_reload(applied=applied)
                if applied:  # the new set of files, as they were before this load
                    stamps = stamps.for_files(self.settings.files)
                else:  # watch too the files the failed edit brought in: the fix goes there
                    stamps = stamps.including(self._last_reload_files)
                self._notifier.reloaded(await self._status_line(store))
            except Exception:  # this task ending would end hot reload until a restart
                log.exception("config reload round failed; still watching the config")

    async def reload(self, store: Store, delivery: Delivery) -> bool:
        """Apply the config files as they are now; on any error keep running on the last
        good config, log the error and tell the admins. Returns whether it applied."""
        self._last_reload_files = ()
        try:
            new = await asyncio.to_thread(
                functools.partial(load_config, self.settings.path, previous=self.settings)
            )
            ruleset = build_ruleset(new)
        except ConfigError as exc:
            self._last_reload_files = exc.files
            log.error("config reload failed, still running the last good config: %s", exc)
            await self._tell_admins_once(delivery, str(exc))
            return False
        except Exception:  # a fault of ours, not of the edit: the daemon still goes on
            log.exception("config reload failed, still running the last good config")
            await self._tell_admins_once(delivery, "an internal error; the log has the details")
            return False
        old = self.settings
        feeds = {feed.name: feed for feed in new.feeds}
        try:
            # A poll of a URL (or with a User-Agent) no longer configured would write its
            # outcome over the fresh state sync_feeds gives the new one: stop it first.
            # Nor may the tick start a new one while the new state is being recorded.
            self._moving = {
                name
                for name, before in self._feeds.items()
                if (after := feeds.get(name)) is not None
                and (before.url, before.user_agent) != (after.url, after.user_agent)
            }
            moved = [task for name, task in self._in_flight.items() if name in self._moving]
            for task in moved:
                task.cancel()
            await asyncio.gather(*moved, return_exceptions=True)
            await store.sync_feeds(new.feeds, utc_now())
        except Exception:
            self._moving = set()
            log.exception(
                "config reload failed: could not record the feeds; still running "
                "the last good config"
            )
            await self._tell_admins_once(
                delivery, "the database refused the new feeds; the log has the details"
            )
            return False
        fixed = self._last_reload_error is not None
        self._last_reload_error = None
        self._ruleset = ruleset
        self._feeds = feeds
        self._moving = set()
        self.settings = new
        self._take_in(new)
        delivery.set_admins(new.telegram.admins)
        if fixed:
            await delivery.notify_admins("Config reloaded: the error reported before is fixed.")
        await self._check_followed_rules(store, delivery)
        added = sorted(set(self._feeds) - {feed.name for feed in old.feeds})
        removed = sorted({feed.name for feed in old.feeds} - set(self._feeds))
        log.info(
            "config reloaded feeds=%d rules=%d matcher=%s added_feeds=%s removed_feeds=%s",
            len(new.feeds),
            len(new.rules),
            self._ruleset.matcher.engine,
            ",".join(added) or "-",
            ",".join(removed) or "-",
        )
        needs_restart = [
            section
            for section, before, after in (
                ("storage", old.storage, new.storage),
                ("telegram", _fixed_telegram(old), _fixed_telegram(new)),
                ("polling", _fixed_polling(old), _fixed_polling(new)),
                ("logging", old.logging, new.logging),
                ("retention", old.retention, new.retention),
                ("http", old.http, new.http),
                ("stories", old.stories, new.stories),
            )
            if before != after
        ]
        if needs_restart:
            log.warning("changes to [%s] take effect after a restart", "], [".join(needs_restart))
        return True

    async def _check_followed_rules(self, store: Store, delivery: Delivery | None = None) -> None:
        """Subscriptions follow a rule renamed in case only; followers of a rule no longer
        configured (removed, or renamed) get nothing from it, which the log says, and a
        reload tells the admins (once for the same rules)."""
        names = {rule.name for rule in self.settings.rules}
        try:
            for old, new in (await store.follow_renamed_rules(names)).items():
                log.info("subscriptions moved from rule=%s to rule=%s", old, new)
            orphans = await store.followed_elsewhere(names)
        except Exception:
            log.exception("could not check the rules chats follow")
            return
        if orphans and orphans.keys() != self._orphaned_rules:
            listing = ", ".join(
                f"{name} ({count} chats)" for name, count in sorted(orphans.items())
            )
            log.warning("rules chats follow are not in the config: %s", listing)
            if delivery is not None:
                await delivery.notify_admins(
                    f"Chats follow rules no longer in the config: {listing}. They get nothing "
                    "from them: put the rules back under the same names, or leave it so."
                )
        self._orphaned_rules = set(orphans)

    async def _tell_admins_once(self, delivery: Delivery, error: str) -> None:
        """Tell the admins a reload failed, once per distinct error."""
        if error == self._last_reload_error:
            return
        self._last_reload_error = error
        await delivery.notify_admins(
            f"Config reload failed; still running the last good config.\n{error}"
        )

    def _on_signal(self, signum: int) -> None:
        log.info("signal %s received: stopping", signal.Signals(signum).name)
        self._stop.set()


def _fixed_telegram(settings: Settings) -> TelegramSettings:
    """[telegram] as far as a reload does not apply it: who the admins are and who may
    subscribe apply at once (the bot, the pipeline and the notices read them live)."""
    return replace(settings.telegram, admins=(), subscribers="open", allow=())


def _fixed_polling(settings: Settings) -> PollingSettings:
    """Polling settings fixed at start: all but the default interval, which is each feed's
    and applies at once."""
    return replace(settings.polling, interval=0, auto_interval=False)


async def _finish(task: asyncio.Task[None], grace_s: float) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=grace_s)
    except TimeoutError:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _log_poll(report: PollReport, seconds: float) -> None:
    if report.error:
        level = logging.WARNING
    elif report.primed or report.new or report.updated or report.moved_to or report.recovered:
        level = logging.INFO
    else:
        # Nothing new (a 304, the same body, no new entry): most polls, and no news to an
        # operator reading the log at INFO; `watcher status` and /metrics count them.
        level = logging.DEBUG
    if not log.isEnabledFor(level):
        return
    fields = (
        f"feed={report.feed} status={report.status if report.status is not None else '-'} "
        f"entries={report.entries} new={report.new} hits={report.hits} alerts={report.alerts} "
        f"ms={seconds * 1000:.0f}"
    )
    if report.unchanged:
        fields += f" unchanged={report.unchanged}"
    if report.primed:
        fields += " primed=1"
    if report.error:
        log.warning("poll %s error=%r", fields, report.error)
    else:
        log.log(level, "poll %s", fields)
