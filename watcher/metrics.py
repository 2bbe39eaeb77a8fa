"""Prometheus metrics: what the daemon counts and measures, in one registry per daemon.

Each `Metrics` owns its `CollectorRegistry` rather than using prometheus_client's global one,
so tests and several daemons in one process never see each other's figures. Call sites use
the `observe_*` methods and never touch prometheus_client themselves. Gauges that describe
the database (outbox, feed states) are read from the store just before a scrape by
`refresh`, so they are never stale and cost nothing between scrapes.

Names follow Prometheus conventions: `watcher_` prefix, `_total` on counters, seconds.
Every label takes its values from a small fixed set (rule names are the operator's own,
bounded by the config), and the fixed ones are created at zero so a rate() sees them from
the start.
"""

from __future__ import annotations

import platform
from collections import Counter as Tally
from collections.abc import Iterable
from datetime import datetime
from typing import Final, Literal, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from watcher import __version__
from watcher.store import Store

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

PollOutcome = Literal[
    "new_entries",  # the feed changed and had entries never seen before
    "no_new_entries",  # the feed changed, but every entry was known already
    "unchanged",  # a 200 whose body hashes like the last one: not parsed
    "not_modified",  # a 304
    "fetch_error",  # network, HTTP status, size or time limits
    "parse_error",  # the body is not a feed
    "gone",  # 410: no longer polled
    "crashed",  # a bug in Watcher, recorded as a failure
]
SendOutcome = Literal[
    "sent",
    "sent_plain_text",  # Telegram refused our HTML (our bug): sent without formatting
    "retry",  # a transient failure (network, 5xx): retried with backoff
    "rate_limited",  # a 429 from Telegram: the chat waits for its retry_after
    "bot_paused",  # every chat waits (the token was rejected)
    "dead",  # transient failures for longer than retry_for: given up
    "blocked",  # the chat blocked or removed the bot: its queue is dropped
    "rejected",  # a permanent error for this message (400)
    "migrated",  # the group became a supergroup: resent to its new id
    "edited",  # a message edited to name another outlet of its story (or already so)
    "edit_dropped",  # an edit whose message is gone (deleted, given up): nothing to edit
    "edit_superseded",  # an edit a later one of the same message carries: not sent
]
FEED_STATES: Final = ("ok", "new", "failing", "disabled")
OUTBOX_STATUSES: Final = ("pending", "sent", "dead")

# Parsing a feed takes ~1 ms for a small one to ~25 ms for 100 KB, seconds when it is huge.
PARSE_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# A poll is one HTTP request (bounded by the fetch timeout) plus parsing and one transaction.
POLL_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# A healthy loop wakes within a millisecond; anything near a second delays every feed.
LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

# Later than any row's next attempt: due_outbox then lists every pending row.


class Metrics:
    def __init__(self, *, version: str = __version__, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        if process_metrics:
            # CPU, memory, open files, start time; the Python version; GC pauses.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)

        build = Gauge(
            "watcher_build_info",
            "Always 1; the labels say which Watcher is running.",
            ["version", "python"],
            registry=registry,
        )
        build.labels(version, platform.python_version()).set(1)

        self._polls = Counter(
            "watcher_polls",
            "Feed polls by outcome.",
            ["outcome"],
            registry=registry,
        )
        self._poll_seconds = Histogram(
            "watcher_poll_duration_seconds",
            "Time from the start of a poll to its outcome being recorded.",
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self._parse_seconds = Histogram(
            "watcher_parse_duration_seconds",
            "Time to parse one feed body, including the hand-off to the parser pool.",
            buckets=PARSE_BUCKETS,
            registry=registry,
        )
        self._new_entries = Counter(
            "watcher_new_entries",
            "Entries recorded for the first time.",
            registry=registry,
        )
        self._rule_hits = Counter(
            "watcher_rule_hits",
            "Rule hits on new entries, by rule.",
            ["rule"],
            registry=registry,
        )
        self._alerts_queued = Counter(
            "watcher_alerts_queued",
            "Messages written to the outbox (one per entry and chat).",
            registry=registry,
        )
        self._alerts_held = Counter(
            "watcher_alerts_held",
            "Alerts kept for muted subscribers or their digests.",
            registry=registry,
        )
        self._outbox = Gauge(
            "watcher_outbox_messages",
            "Outbox rows by status, read at scrape time.",
            ["status"],
            registry=registry,
        )
        self._oldest_pending = Gauge(
            "watcher_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered outbox row (0 when none), read at scrape time.",
            registry=registry,
        )
        self._sends = Counter(
            "watcher_telegram_sends",
            "Attempts to send an outbox row to Telegram, by outcome; "
            'outcome="rate_limited" counts the 429 answers.',
            ["outcome"],
            registry=registry,
        )
        self._retry_after = Counter(
            "watcher_telegram_retry_after_seconds",
            "Seconds Telegram asked us to wait, summed over its 429 answers.",
            registry=registry,
        )
        self._console_alerts = Counter(
            "watcher_console_alerts",
            "Alerts printed to the console (no Telegram token).",
            registry=registry,
        )
        self._loop_lag = Histogram(
            "watcher_event_loop_lag_seconds",
            "How late the event loop ran a timer that was due.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self._loop_last_lag = Gauge(
            "watcher_event_loop_last_lag_seconds",
            "The most recent event loop lag measurement.",
            registry=registry,
        )
        self._reloads = Counter(
            "watcher_config_reloads",
            "Config reloads by result.",
            ["result"],
            registry=registry,
        )
        self._reload_ok = Gauge(
            "watcher_config_last_reload_successful",
            "1 if the last config reload applied (or none was tried), 0 if it failed.",
            registry=registry,
        )
        self._reload_ok.set(1)
        self._feeds = Gauge(
            "watcher_feeds",
            "Configured feeds by state (as `watcher status` names them), read at scrape time.",
            ["state"],
            registry=registry,
        )

        for outcome in get_args(PollOutcome):
            self._polls.labels(outcome)
        for send in get_args(SendOutcome):
            self._sends.labels(send)
        for result in ("success", "failure"):
            self._reloads.labels(result)
        for status in OUTBOX_STATUSES:
            self._outbox.labels(status)
        for state in FEED_STATES:
            self._feeds.labels(state)

    # -- the pipeline ----------------------------------------------------------------------

    def observe_poll(self, outcome: PollOutcome, seconds: float | None = None) -> None:
        self._polls.labels(outcome).inc()
        if seconds is not None:
            self._poll_seconds.observe(seconds)

    def observe_parse(self, seconds: float) -> None:
        self._parse_seconds.observe(seconds)

    def observe_new_entries(self, count: int) -> None:
        self._new_entries.inc(count)

    def observe_rule_hits(self, rules: Iterable[str]) -> None:
        """One name per hit: a rule named twice hit twice."""
        for rule, count in Tally(rules).items():
            self._rule_hits.labels(rule).inc(count)

    def observe_alerts(self, *, queued: int, held: int = 0) -> None:
        self._alerts_queued.inc(queued)
        self._alerts_held.inc(held)

    # -- delivery --------------------------------------------------------------------------

    def observe_send(self, outcome: SendOutcome, *, retry_after_s: float | None = None) -> None:
        self._sends.labels(outcome).inc()
        if outcome == "rate_limited" and retry_after_s is not None:
            self._retry_after.inc(retry_after_s)

    def observe_console_alert(self) -> None:
        self._console_alerts.inc()

    # -- the daemon ------------------------------------------------------------------------

    def observe_loop_lag(self, seconds: float) -> None:
        self._loop_lag.observe(seconds)
        self._loop_last_lag.set(seconds)

    def observe_reload(self, *, applied: bool) -> None:
        self._reloads.labels("success" if applied else "failure").inc()
        self._reload_ok.set(1 if applied else 0)

    async def refresh(self, store: Store, *, now: datetime, failing_after: int) -> None:
        """Read the scrape-time gauges from the store (a few indexed reads)."""
        counts = await store.outbox_counts()
        for status in OUTBOX_STATUSES:
            self._outbox.labels(status).set(counts.get(status, 0))
        oldest = await store.oldest_pending_at()
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        self._oldest_pending.set(max(age, 0.0))
        states = await store.feed_state_counts(failing_after)
        for state in FEED_STATES:
            self._feeds.labels(state).set(states.get(state, 0))

    def exposition(self) -> bytes:
        """The registry in Prometheus text format; serve it as `CONTENT_TYPE`."""
        return generate_latest(self.registry)
