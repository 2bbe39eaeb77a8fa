"""poll_feed(): the one place that knows the whole sequence for a feed —
fetch → parse → record new entries → match → outbox — and returns what happened.

Like miniflux's RefreshFeed, it hands back only what is new; the store decides newness in
the same transaction that writes the outbox, so an alert can never be recorded as seen
without also being queued (or queued twice).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from typing import Protocol, TypeVar

from watcher.errors import FetchError, ParseError
from watcher.fetch import Fetcher
from watcher.identity import text_identity
from watcher.metrics import Metrics, PollOutcome
from watcher.model import (
    CONSOLE_CHAT,
    Alert,
    Entry,
    FeedDef,
    FeedState,
    FeedSuccess,
    FetchResult,
    Hit,
    NewEntry,
    Subscriber,
    UpdatedEntry,
    oldest_first,
)
from watcher.parse_pool import FeedParser
from watcher.rules import Matcher
from watcher.schedule import (
    auto_interval,
    next_check_after_failure,
    next_check_after_success,
)
from watcher.store import Store, StoryEdit, WriteTransaction, unchanged_for_recording
from watcher.stories import hit_texts
from watcher.story_alerts import StoryTracker
from watcher.telegram.format import render_alert

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Compiled rules plus where each rule's hits go."""

    matcher: Matcher
    chats_by_rule: dict[str, tuple[int, ...]]
    # The chats that may subscribe ([telegram] subscribers = "allowlist": allow and admins);
    # None when any chat may. A subscriber dropped from the list gets no more alerts.
    may_subscribe: frozenset[int] | None = None


@dataclass(slots=True)
class PollReport:
    feed: str
    status: int | None = None
    entries: int = 0
    unchanged: int = 0  # of `entries`, as in the previous document: not parsed again
    new: int = 0
    updated: int = 0  # known entries of this feed that came back with other words
    hits: int = 0
    alerts: int = 0
    primed: bool = False  # first successful poll: recorded without alerting
    parsed: bool = False
    error: str | None = None
    held: int = 0  # alerts kept for muted or digest subscribers
    moved_to: str | None = None  # a permanent redirect moved the feed here
    disabled: bool = False  # 410 Gone: the feed is no longer polled
    became_failing: bool = False  # reached the failing threshold with this poll
    recovered: bool = False  # succeeded after having been reported failing


@dataclass(slots=True)
class PollContext:
    store: Store
    fetcher: Fetcher
    parser: FeedParser
    rules: Callable[[], RuleSet]  # read at each poll, so a reload takes effect at once
    console: bool  # no Telegram token: every alert goes to the console
    clock: Callable[[], datetime]
    failing_after: int = 5  # consecutive failures before a feed is reported failing
    timezone: tzinfo | None = None  # the operator's, for times shown in alerts
    min_interval_s: int = 60  # bounds of "auto" intervals
    max_interval_s: int = 3600  # bounds of "auto", and of waits servers ask for
    rng: random.Random = field(default_factory=random.Random)
    metrics: Metrics | None = None
    # [retention] entries: identities older than this may have been pruned, so an entry
    # published before this horizon is recorded but never alerted (it could be one we
    # alerted long ago and forgot).
    retention_s: int | None = None
    # [stories] realert_on_update: an updated entry alerts (again) for every rule it hits, not
    # only for those its change made it hit, also to the chats that had it: once for each
    # version of its text.
    realert_on_update: bool = False
    # One alert per story and chat: later outlets edit the message sent (None: every
    # entry alerts on its own).
    stories: StoryTracker | None = None


@dataclass(frozen=True, slots=True)
class Matched:
    new: NewEntry
    hits: list[Hit]


@dataclass(slots=True)
class Plan:
    """Who gets what: messages for the outbox, alerts held for digests."""

    alerts: list[Alert] = field(default_factory=list)
    held: list[tuple[int, int, tuple[str, ...]]] = field(default_factory=list)  # chat, entry


def match_new_entries(
    new_entries: Sequence[NewEntry], feed: FeedDef, rules: RuleSet
) -> list[Matched]:
    """PURE: the new entries that hit at least one rule, with their hits, oldest first
    (feeds list the newest first; subscribers read alerts in the order things happened)."""
    matched: list[Matched] = []
    for new in _chronological(new_entries):
        hits = rules.matcher.match(
            new.entry.title, new.entry.summary, feed=feed.name, language=feed.language
        )
        if hits:
            matched.append(Matched(new, hits))
    return matched


def match_updated_entries(
    updated: Sequence[UpdatedEntry], feed: FeedDef, rules: RuleSet, *, realert: bool = False
) -> list[Matched]:
    """PURE: the updated entries to alert about, oldest first, each with the rules to alert
    for: those its new text hits and its old text did not (a rule it hit before alerted
    then, or would have), or with `realert` every rule its new text hits."""
    previous = {item.id: item.previous for item in updated}
    matched: list[Matched] = []
    for new in _chronological([NewEntry(item.id, item.entry) for item in updated]):
        hits = rules.matcher.match(
            new.entry.title, new.entry.summary, feed=feed.name, language=feed.language
        )
        if hits and not realert:
            before = previous[new.id]
            hit_before = {
                hit.rule
                for hit in rules.matcher.match(
                    before.title, before.summary, feed=feed.name, language=feed.language
                )
            }
            hits = [hit for hit in hits if hit.rule not in hit_before]
        if hits:
            matched.append(Matched(new, hits))
    return matched


def _content_key(entry: Entry) -> str:
    return (entry.text_identity or text_identity(entry.title, entry.summary)).content_key


def matched_texts(matched: Sequence[Matched]) -> dict[int, list[str]]:
    """PURE: per entry id, the texts its rules matched."""
    return {item.new.id: hit_texts(item.hits) for item in matched}


class _WithEntry(Protocol):
    @property
    def entry(self) -> Entry: ...


_Item = TypeVar("_Item", bound=_WithEntry)


def published_within(items: Sequence[_Item], retention_s: int | None, now: datetime) -> list[_Item]:
    """PURE: the new or updated entries not published before the retention horizon, which
    are never alerted (undated ones count as recent: the store forgets an entry only a
    horizon after it was last seen)."""
    if retention_s is None:
        return list(items)
    horizon = now - timedelta(seconds=retention_s)
    return [
        item for item in items if item.entry.published is None or item.entry.published >= horizon
    ]


def published_since(new_entries: Sequence[NewEntry], since: datetime) -> list[NewEntry]:
    """PURE: the entries dated after `since` (undated ones cannot be told from history)."""
    return [
        new
        for new in new_entries
        if new.entry.published is not None and new.entry.published > since
    ]


def _chronological(new_entries: Sequence[NewEntry]) -> list[NewEntry]:
    """Oldest first (`watcher.model.oldest_first`)."""
    return oldest_first(new_entries, lambda new: new.entry.published)


def plan_alerts(
    matched: Sequence[Matched],
    feed: FeedDef,
    rules: RuleSet,
    *,
    subscribers: Mapping[str, Sequence[Subscriber]] | None = None,
    migrations: Mapping[int, int] | None = None,
    console: bool = False,
    now: datetime,
    tz: tzinfo | None = None,
    updated: bool = False,
) -> Plan:
    """PURE: one message per entry per chat, listing every rule that sent it there. A
    rule's configured chats (through any migration Telegram reported) and its followers
    get it; followers who are muted or take digests get it held for their next digest."""
    plan = Plan()
    for item in matched:
        hits_by_chat: dict[int, list[Hit]] = {}
        held_rules: dict[int, list[str]] = {}
        for hit in item.hits:
            if console:
                hits_by_chat.setdefault(CONSOLE_CHAT, []).append(hit)
                continue
            for chat in rules.chats_by_rule.get(hit.rule, ()):
                chat = (migrations or {}).get(chat, chat)
                hits_by_chat.setdefault(chat, []).append(hit)
            for subscriber in (subscribers or {}).get(hit.rule, ()):
                if subscriber.holds_alerts(now):
                    held_rules.setdefault(subscriber.chat_id, []).append(hit.rule)
                else:
                    hits_by_chat.setdefault(subscriber.chat_id, []).append(hit)
        for chat, chat_hits in hits_by_chat.items():
            unique = list({hit.rule: hit for hit in chat_hits}.values())
            plan.alerts.append(
                Alert(
                    entry_id=item.new.id,
                    chat_id=chat,
                    text=render_alert(item.new.entry, feed.name, unique, tz=tz, updated=updated),
                    rules=tuple(hit.rule for hit in unique),
                )
            )
        for chat, held in held_rules.items():
            if chat not in hits_by_chat:  # a configured chat that also follows: sent already
                plan.held.append((chat, item.new.id, tuple(dict.fromkeys(held))))
    return plan


async def poll_feed(feed: FeedDef, state: FeedState, ctx: PollContext) -> PollReport:
    started = time.perf_counter()
    report = PollReport(feed=feed.name)
    outcome = await _poll(feed, state, ctx, report)
    # Only a poll whose outcome was recorded counts: one that raised is counted by
    # record_crash, so every poll counts once.
    if ctx.metrics is not None:
        ctx.metrics.observe_poll(outcome, time.perf_counter() - started)
    return report


async def _poll(
    feed: FeedDef, state: FeedState, ctx: PollContext, report: PollReport
) -> PollOutcome:
    try:
        result = await ctx.fetcher.fetch(
            state.url,
            etag=state.etag,
            last_modified=state.last_modified,
            user_agent=feed.user_agent,
        )
    except FetchError as exc:
        if exc.status == 410:
            await _record_gone(state, ctx, report, str(exc))
            return "gone"
        await _record_failure(feed, state, ctx, report, exc.status, str(exc), exc.retry_after)
        return "fetch_error"
    report.status = result.status
    report.recovered = state.failing_since is not None
    if result.moved_to is not None and result.moved_to != state.url:
        report.moved_to = result.moved_to
    body_hash = hashlib.sha256(result.body).hexdigest() if result.body is not None else None
    if result.not_modified or (body_hash is not None and body_hash == state.body_hash):
        await _record_unchanged(feed, state, ctx, result, report)
        return "not_modified" if result.not_modified else "unchanged"

    # The items of the feed's previous document: those that come back unchanged (most of
    # a changed document) are not parsed into entries again, only marked seen.
    listed = await ctx.store.listed_items(state.id)
    parse_started = time.perf_counter()
    try:
        parsed = await ctx.parser.parse(
            result, {digest: item.known for digest, item in listed.items()}
        )
    except ParseError as exc:
        await _record_failure(feed, state, ctx, report, result.status, str(exc), None)
        return "parse_error"
    finally:
        if ctx.metrics is not None:
            ctx.metrics.observe_parse(time.perf_counter() - parse_started)
    report.parsed = True
    report.entries = parsed.item_count
    report.unchanged = len(parsed.unchanged)

    now = ctx.clock()
    rules = ctx.rules()
    hit_rules: list[str] = []  # one name per hit
    async with ctx.store.write() as tx:
        if report.moved_to is not None:
            await tx.feed_moved(state.id, report.moved_to)
        unchanged, redigested = unchanged_for_recording(parsed.unchanged, listed)
        recorded = await tx.record_entries(
            state.id, parsed.entries, now, unchanged=unchanged, redigested=redigested
        )
        new_entries = recorded.new
        report.new = len(new_entries)
        report.updated = len(recorded.updated)
        if state.last_success_at is None:
            report.primed = True  # a newly added feed: its backlog is history, not news
            await tx.mark_history([new.id for new in new_entries])
        else:
            recent = published_within(new_entries, ctx.retention_s, now)
            if state.moved_at is not None:
                # The first document at a URL the config just gave the feed: its backlog
                # is history; what is dated since the old URL's last success is news.
                recent = published_since(recent, state.last_success_at)
            news = {new.id for new in recent}
            await tx.mark_history([new.id for new in new_entries if new.id not in news])
            matched = match_new_entries(recent, feed, rules)
            hit_rules = [hit.rule for item in matched for hit in item.hits]
            report.hits = len(hit_rules)
            if matched:
                await _queue(matched, feed, rules, ctx, tx, now, report)
            # A moved feed's first document words old items its own way: not news.
            updated = recorded.updated if state.moved_at is None else []
            rematched = match_updated_entries(
                published_within(updated, ctx.retention_s, now),
                feed,
                rules,
                realert=ctx.realert_on_update,
            )
            if rematched:
                hit_rules += [hit.rule for item in rematched for hit in item.hits]
                report.hits = len(hit_rules)
                await _queue_updates(rematched, feed, rules, ctx, tx, now, report)
        interval = await _interval(feed, state, ctx, uncommitted=report.new)
        await tx.feed_succeeded(
            state.id,
            FeedSuccess(
                checked_at=now,
                status=result.status,
                etag=result.etag,
                last_modified=result.last_modified,
                body_hash=body_hash,
                next_check_at=_next_check(now, interval, ctx, result, parsed.ttl_s),
                ttl_s=parsed.ttl_s,
            ),
        )
    if ctx.metrics is not None:  # after the commit: counted only once it is true
        ctx.metrics.observe_new_entries(report.new)
        ctx.metrics.observe_rule_hits(hit_rules)
        ctx.metrics.observe_alerts(queued=report.alerts, held=report.held)
    return "new_entries" if report.new else "no_new_entries"


async def _plan(
    matched: Sequence[Matched],
    feed: FeedDef,
    rules: RuleSet,
    ctx: PollContext,
    now: datetime,
    *,
    updated: bool = False,
) -> Plan:
    """plan_alerts with the followers of the rules that hit and the chat migrations."""
    hit_rules = {hit.rule for item in matched for hit in item.hits}
    subscribers = {} if ctx.console else await ctx.store.subscribers_of(hit_rules)
    migrations = {} if ctx.console else await ctx.store.chat_migrations()
    if rules.may_subscribe is not None:
        allowed = rules.may_subscribe | {
            new for old, new in migrations.items() if old in rules.may_subscribe
        }
        subscribers = {
            rule: [s for s in followers if s.chat_id in allowed]
            for rule, followers in subscribers.items()
        }
    return plan_alerts(
        matched,
        feed,
        rules,
        subscribers=subscribers,
        migrations=migrations,
        console=ctx.console,
        now=now,
        tz=ctx.timezone,
        updated=updated,
    )


async def _queue(
    matched: Sequence[Matched],
    feed: FeedDef,
    rules: RuleSet,
    ctx: PollContext,
    tx: WriteTransaction,
    now: datetime,
    report: PollReport,
) -> None:
    """Inside the poll's transaction: who follows the rules that hit, then the outbox."""
    plan = await _plan(matched, feed, rules, ctx, now)
    edits: list[StoryEdit] = []
    if ctx.stories is not None:
        stories = await ctx.stories.apply(
            [item.new for item in matched],
            plan.alerts,
            {entry_id for _, entry_id, _ in plan.held},
            feed.name,
            ctx.store,
            tx,
            now,
            matched=matched_texts(matched),
        )
        plan.alerts, edits = stories.messages, stories.edits
        plan.held, quiet_edits = await ctx.stories.held_as_edits(
            plan.held, stories.stories, feed.name, ctx.store, tx, now
        )
        edits = [*edits, *quiet_edits]
    # An edit is the alert of its entry to its chat, in the form of an edit: counted, and
    # told, too.
    report.alerts = await tx.enqueue(plan.alerts, now) + len(edits)
    await tx.told(_versions([*plan.alerts, *edits], matched), now)
    for chat, entry_id, held_rules in plan.held:
        await tx.hold(chat, entry_id, held_rules, now)
    report.held = len(plan.held)


def _versions(
    alerts: Sequence[Alert | StoryEdit], matched: Sequence[Matched]
) -> list[tuple[int, int, str]]:
    """PURE: (entry id, chat id, content key) of the version each alert (or edit) tells
    its chat of."""
    contents = {item.new.id: _content_key(item.new.entry) for item in matched}
    return [
        (alert.entry_id, alert.chat_id, contents[alert.entry_id])
        for alert in alerts
        if alert.entry_id in contents
    ]


async def _queue_updates(
    matched: Sequence[Matched],
    feed: FeedDef,
    rules: RuleSet,
    ctx: PollContext,
    tx: WriteTransaction,
    now: datetime,
    report: PollReport,
) -> None:
    """Inside the poll's transaction: alerts about updated entries, marked as updated, to
    the chats that have had no message about the entry yet, and with stories on, to the
    chats that have none about its story (those get an edit naming its outlet).

    With `realert_on_update`, a chat that had the entry (by a message or a digest) gets a
    message too if it was never told of this version of the text: once per version, so a
    feed flipping between two versions is not news at every poll. Not while a digest that
    holds the entry is still to come, and never in a digest. That message is not tied to
    the entry in the outbox, which keeps one row per entry and chat (the first alert's)."""
    plan = await _plan(matched, feed, rules, ctx, now, updated=True)
    had = await tx.alerted_chats([item.new.id for item in matched])
    alerts = [alert for alert in plan.alerts if (alert.entry_id, alert.chat_id) not in had]
    told_again: list[Alert] = []
    again = [alert for alert in plan.alerts if (alert.entry_id, alert.chat_id) in had]
    if ctx.realert_on_update and again:
        untold = await tx.untold(_versions(again, matched))
        told_again = [alert for alert in again if (alert.entry_id, alert.chat_id) in untold]
    held = [
        (chat, entry_id, names)
        for chat, entry_id, names in plan.held
        if (entry_id, chat) not in had
    ]
    edits: list[StoryEdit] = []
    if ctx.stories is not None:
        alerts, edits, held = await _updates_in_stories(
            ctx.stories, matched, alerts, held, feed, ctx, tx, now
        )
    realerts = [replace(alert, entry_id=None) for alert in told_again]
    report.alerts += await tx.enqueue([*alerts, *realerts], now) + len(edits)
    await tx.told(_versions([*alerts, *told_again, *edits], matched), now)
    for chat, entry_id, held_rules in held:
        await tx.hold(chat, entry_id, held_rules, now)
    report.held += len(held)


async def _updates_in_stories(
    tracker: StoryTracker,
    matched: Sequence[Matched],
    alerts: Sequence[Alert],
    held: Sequence[tuple[int, int, tuple[str, ...]]],
    feed: FeedDef,
    ctx: PollContext,
    tx: WriteTransaction,
    now: datetime,
) -> tuple[list[Alert], list[StoryEdit], list[tuple[int, int, tuple[str, ...]]]]:
    """The alerts about updated entries once stories are taken into account: the messages
    to queue, and the edits queued. An entry that alerted nobody before has no
    story: it is placed in one now, as a new entry would be. One that has a story already
    keeps it; while the story goes on (one of its entries is within the window), a chat with
    a message about it gets an edit, not a message. Once the story's window has passed, the
    update is news of its own: a message, not a silent edit of one days old. Alerts held
    for muted or digest chats (`held`: chat, entry, rules) become edits where the chat has a
    message about the story; the rest are returned to hold."""
    stories = await ctx.store.stories_of([item.new.id for item in matched])
    unplaced = [item.new for item in matched if stories.get(item.new.id) is None]
    unplaced_ids = {new.id for new in unplaced}
    placed = await tracker.apply(
        unplaced,
        [alert for alert in alerts if alert.entry_id in unplaced_ids],
        [entry_id for _, entry_id, _ in held if entry_id in unplaced_ids],
        feed.name,
        ctx.store,
        tx,
        now,
        matched=matched_texts(matched),
    )
    in_story = tracker.within_window(
        {entry: story for entry, story in stories.items() if story is not None}, now
    )
    storied = [alert for alert in alerts if alert.entry_id in in_story]
    past = [
        alert
        for alert in alerts
        if alert.entry_id not in unplaced_ids and alert.entry_id not in in_story
    ]
    messages = await ctx.store.story_messages(
        set(in_story.values()), {alert.chat_id for alert in storied}
    )
    plan = tracker.plan(storied, in_story, messages, feed.name)
    await ctx.store.enqueue_edits(tx, plan.edits, now)
    still_held, quiet_edits = await tracker.held_as_edits(
        held, {**placed.stories, **in_story}, feed.name, ctx.store, tx, now
    )
    return (
        [*placed.messages, *plan.messages, *past],
        [*placed.edits, *plan.edits, *quiet_edits],
        still_held,
    )


async def _interval(
    feed: FeedDef, state: FeedState, ctx: PollContext, *, uncommitted: int = 0
) -> int:
    """The feed's interval; with "auto", from its entries of the last week, counting the
    `uncommitted` ones this poll is recording (store reads see only what is committed)."""
    if not feed.auto_interval:
        return feed.interval
    week_ago = ctx.clock() - timedelta(days=7)
    recent = await ctx.store.count_entries_since(state.id, week_ago) + uncommitted
    return auto_interval(recent, min_s=ctx.min_interval_s, max_s=ctx.max_interval_s)


def _next_check(
    now: datetime, interval: int, ctx: PollContext, result: FetchResult, ttl_s: int | None
) -> datetime:
    """Publisher hints (Cache-Control max-age, Expires, RSS <ttl>): the longest wins."""
    hints = [hint for hint in (result.fresh_for_s, ttl_s) if hint is not None]
    return next_check_after_success(
        now,
        interval,
        ctx.rng,
        fresh_for_s=max(hints) if hints else None,
        max_s=ctx.max_interval_s,
    )


async def _record_unchanged(
    feed: FeedDef, state: FeedState, ctx: PollContext, result: FetchResult, report: PollReport
) -> None:
    interval = await _interval(feed, state, ctx)
    now = ctx.clock()
    success = FeedSuccess(
        checked_at=now,
        status=result.status,
        # A 304 may omit the validators; keep the ones we had.
        etag=result.etag or state.etag,
        last_modified=result.last_modified or state.last_modified,
        body_hash=state.body_hash,
        next_check_at=_next_check(now, interval, ctx, result, state.ttl_s),
        ttl_s=state.ttl_s,
    )
    if report.moved_to is None:
        # The common case by far (a 304): batched with other feeds' into one transaction.
        await ctx.store.feed_unchanged(state.id, success)
        return
    async with ctx.store.write() as tx:
        await tx.feed_moved(state.id, report.moved_to)
        await tx.feed_succeeded(state.id, success)


async def record_crash(feed: FeedDef, state: FeedState, ctx: PollContext, error: str) -> PollReport:
    """A poll that raised (a bug, not a feed problem) is recorded as a failure, so the
    feed is neither lost nor retried every tick."""
    if ctx.metrics is not None:
        ctx.metrics.observe_poll("crashed")
    report = PollReport(feed=feed.name)
    await _record_failure(feed, state, ctx, report, None, error, None)
    return report


async def _record_failure(
    feed: FeedDef,
    state: FeedState,
    ctx: PollContext,
    report: PollReport,
    status: int | None,
    error: str,
    retry_after: float | None,
) -> None:
    report.status = status
    report.error = error
    report.recovered = False
    now = ctx.clock()
    errors = state.consecutive_errors + 1
    next_check = next_check_after_failure(now, feed.interval, errors, retry_after, ctx.rng)
    async with ctx.store.write() as tx:
        await tx.feed_failed(
            state.id, now=now, status=status, error=error, next_check_at=next_check
        )
        if errors >= ctx.failing_after and state.failing_since is None:
            await tx.feed_marked_failing(state.id, now)
            report.became_failing = True


async def _record_gone(state: FeedState, ctx: PollContext, report: PollReport, error: str) -> None:
    """410 Gone: the publisher says the feed will not come back. Stop polling it until the
    operator changes its URL."""
    report.status = 410
    report.error = error
    report.disabled = True
    async with ctx.store.write() as tx:
        await tx.feed_disabled(state.id, now=ctx.clock(), status=410, reason=error)
