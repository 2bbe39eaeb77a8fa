"""One alert per story and chat: when another outlet reports a story a chat was alerted to,
the message it got is edited to name that outlet ("Also: APA, Trend") instead of a second
message being sent.

`StoryTracker` holds the story index (watcher.stories) of the entries that alerted someone
within the window, and places each new alerted entry in a story inside the poll's write
transaction, where it also records the story (`entries.story_id`) and turns the plan's
messages into edits for the chats that already have one about the story. At start it is
rebuilt from what the store recorded (`load`), so a restart decides nothing anew and a story
begun before it carries on after it.

An alert held for a muted or digest chat (`held_as_edits`) becomes an edit too when the chat
has a message about the story already: an edit makes no sound, so it keeps the mute, and the
chat hears of the story once. Otherwise it stays held: a digest is a message of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from watcher.config import StoriesSettings
from watcher.model import Alert, NewEntry
from watcher.rules import Matcher
from watcher.store import Store, StoryEdit, StoryMessage, WriteTransaction
from watcher.stories import StoryIndex, StorySettings, hit_texts, signature
from watcher.telegram.format import add_sources

log = logging.getLogger(__name__)


def story_settings(config: StoriesSettings) -> StorySettings:
    """The story index's settings from the [stories] table of the config."""
    return StorySettings(threshold=config.threshold, window=timedelta(seconds=config.window))


@dataclass(slots=True)
class StoryPlan:
    """What the outbox gets once stories are taken into account."""

    stories: dict[int, int] = field(default_factory=dict)  # entry id → story id
    messages: list[Alert] = field(default_factory=list)  # chats new to the story
    edits: list[StoryEdit] = field(default_factory=list)  # chats that have a message


def _when(published: datetime | None, now: datetime) -> datetime:
    """The time an entry counts from: its publication, unless missing or in the future."""
    return min(published, now) if published is not None else now


def other_sources(message: StoryMessage, feed: str | None = None) -> list[str]:
    """The feeds to name under `message`: those its edits added, then `feed`, each once,
    its own feed left out."""
    added = [*message.added_feeds, *([feed] if feed is not None else [])]
    return [name for name in dict.fromkeys(added) if name != message.feed]


# The rules as they are now, and each feed's language: what `load` needs to find again the
# words the rules matched in an entry (see `StoryTracker.load`).
CurrentRules = Callable[[], tuple[Matcher, Mapping[str, str | None]]]


class StoryTracker:
    def __init__(
        self, settings: StorySettings | None = None, *, rules: CurrentRules | None = None
    ) -> None:
        self.settings = settings or StorySettings()
        self._rules = rules
        self.index = StoryIndex(self.settings)
        # Entries placed in the index by a transaction not yet known to have committed
        # (entry id → (story, transaction serial)): one rolled back would leave them in the
        # index and not in the store, and SQLite would give their ids to other entries.
        self._unconfirmed: dict[int, tuple[int, int]] = {}

    async def load(
        self,
        store: Store,
        now: datetime,
        *,
        matcher: Matcher | None = None,
        languages: Mapping[str, str | None] | None = None,
    ) -> int:
        """Rebuild the index from the entries the store recorded with a story within the
        window; return how many it holds.

        The words rules matched are no evidence of one story (`place`), and the store does
        not keep them: `matcher` (the rules now, with each feed's language from `languages`;
        by default those the tracker was given as `rules`) finds them again, so each entry
        gets back the signature it was placed with unless the rules changed meanwhile.
        Without any, signatures keep those words: compared with a new entry, which lacks
        them, they only lower the similarity, so a rebuild could miss a join, never make a
        wrong one."""
        if matcher is None and self._rules is not None:
            matcher, languages = self._rules()
        started = time.perf_counter()
        since = now - self.settings.window
        index = StoryIndex(self.settings)
        languages = languages or {}
        for row in await store.story_entries(since):
            matched: list[str] = []
            if matcher is not None:
                hits = matcher.match(
                    row.title, row.summary, feed=row.feed, language=languages.get(row.feed)
                )
                matched = hit_texts(hits)
            index.restore(
                row.id,
                row.feed,
                row.placed_at or _when(row.published, row.first_seen),
                signature(row.title, row.summary, ignore=matched),
                row.story_id,
            )
        index.expire(since)
        self.index = index
        self._unconfirmed.clear()
        log.info(
            "story index loaded entries=%d stories=%d ms=%.0f",
            len(index),
            len(index.stories()),
            (time.perf_counter() - started) * 1000,
        )
        return len(index)

    def place(
        self, new: NewEntry, feed: str, now: datetime, *, matched: Collection[str] = ()
    ) -> tuple[int, datetime]:
        """Put a new alerted entry in the index; return its story (its own id if new) and
        the time the index counts it from. `matched`: the texts the rules matched in it,
        which do not count as evidence."""
        entry = new.entry
        when = _when(entry.published, now)
        story = self.index.place(
            new.id, feed, when, entry.title, entry.summary, matched=matched, now=now
        )
        if story != new.id:
            log.info("entry=%d feed=%s joins story=%d", new.id, feed, story)
        return story, when

    def within_window(self, stories: Mapping[int, int], now: datetime) -> dict[int, int]:
        """Those of `stories` (entry id → its recorded story) whose story the index still
        holds an entry of at `now`: while one of its reports is within the window, the
        story goes on, and its message may still name outlets."""
        self.index.expire(now - self.settings.window)
        return {entry: story for entry, story in stories.items() if self.index.holds_story(story)}

    def plan(
        self,
        alerts: Sequence[Alert],
        stories: Mapping[int, int],
        messages: Mapping[tuple[int, int], StoryMessage],
        feed: str,
    ) -> StoryPlan:
        """PURE: the plan's alerts (about entries of `feed`, placed in `stories`) as new
        messages for chats with no message about the story yet, and as edits of the
        message (`messages`, by story and chat) of those that have one."""
        plan = StoryPlan(stories=dict(stories))
        known = dict(messages)
        new_to: set[tuple[int, int]] = set()
        for alert in alerts:
            entry_id = alert.entry_id
            if entry_id is None or entry_id not in stories:
                plan.messages.append(alert)
                continue
            story = stories[entry_id]
            key = (story, alert.chat_id)
            message = known.get(key)
            if message is None:
                # Two entries of one feed in one story come only after the first's time ran
                # out of the window; in one poll, the chat hears of the story once.
                if key not in new_to:
                    new_to.add(key)
                    plan.messages.append(alert)
                continue
            sources = other_sources(message, feed)
            if sources == other_sources(message):
                # The message names this outlet already: this is its next item about the
                # story (a story takes an outlet again once its items left the window),
                # a development of its own.
                plan.messages.append(alert)
                continue
            plan.edits.append(
                StoryEdit(
                    entry_id=entry_id,
                    chat_id=alert.chat_id,
                    edit_of=message.outbox_id,
                    text=add_sources(message.text, sources),
                    rules=alert.rules,
                )
            )
            known[key] = replace(message, added_feeds=(*message.added_feeds, feed))
        return plan

    async def apply(
        self,
        entries: Sequence[NewEntry],
        alerts: Sequence[Alert],
        held: Collection[int],
        feed: str,
        store: Store,
        tx: WriteTransaction,
        now: datetime,
        *,
        matched: Mapping[int, Collection[str]] | None = None,
    ) -> StoryPlan:
        """Inside the poll's write transaction: place the entries that alert someone (in
        `alerts`, or held for a digest: ids in `held`), oldest first as given, record their
        stories, queue the edits; return the plan, whose `messages` the caller queues.
        `matched`: per entry id, the texts its rules matched (see `place`)."""
        await self._confirm(store, now, tx)
        alerted = {alert.entry_id for alert in alerts} | set(held)
        if any(new.id in self.index for new in entries if new.id in alerted):
            # An id the index holds was given to a new entry: the index has an entry the
            # store lost. Rebuild it rather than fail every poll from now on.
            log.warning("story index holds an entry the store does not: reloading")
            await self.load(store, now)
        placed: dict[int, tuple[int, datetime]] = {}
        for new in entries:
            if new.id in alerted:
                words = (matched or {}).get(new.id, ())
                placed[new.id] = self.place(new, feed, now, matched=words)
                self._unconfirmed[new.id] = (placed[new.id][0], tx.serial)
        await store.assign_stories(tx, placed)
        stories = {entry: story for entry, (story, _) in placed.items()}
        joined = {story for entry, story in stories.items() if story != entry}
        chats = {alert.chat_id for alert in alerts if alert.entry_id in stories}
        messages = await store.story_messages(joined, chats) if joined else {}
        plan = self.plan(alerts, stories, messages, feed)
        await store.enqueue_edits(tx, plan.edits, now)
        return plan

    async def held_as_edits(
        self,
        held: Sequence[tuple[int, int, tuple[str, ...]]],
        stories: Mapping[int, int],
        feed: str,
        store: Store,
        tx: WriteTransaction,
        now: datetime,
    ) -> tuple[list[tuple[int, int, tuple[str, ...]]], list[StoryEdit]]:
        """Inside the poll's write transaction: of the alerts held for muted or digest chats
        ((chat, entry, rules), entries placed in `stories`), those whose chat has a message
        about the entry's story become edits of it, queued; return the ones still to hold
        and the edits."""
        in_story = {entry: stories[entry] for _, entry, _ in held if entry in stories}
        chats = {chat for chat, entry, _ in held if entry in in_story}
        messages = await store.story_messages(set(in_story.values()), chats) if chats else {}
        if not messages:
            return list(held), []
        # Held alerts have no text yet (a digest renders its own): an edit's text is the
        # message's, with the outlet added.
        candidates = [
            Alert(entry, chat, "", rules) for chat, entry, rules in held if entry in in_story
        ]
        edits = self.plan(candidates, in_story, messages, feed).edits
        await store.enqueue_edits(tx, edits, now)
        edited = {(edit.chat_id, edit.entry_id) for edit in edits}
        return [item for item in held if (item[0], item[1]) not in edited], edits

    async def _confirm(self, store: Store, now: datetime, tx: WriteTransaction) -> None:
        """Rebuild the index if an earlier transaction that placed entries in it did not
        commit. Entries of `tx` itself stay unconfirmed: its own uncommitted writes are
        visible to it, and it may still roll back."""
        earlier = {
            entry: story
            for entry, (story, serial) in self._unconfirmed.items()
            if serial != tx.serial
        }
        if not earlier:
            return
        recorded = await store.stories_of(earlier)
        if any(recorded.get(entry) != story for entry, story in earlier.items()):
            log.warning("a poll that placed entries in stories was rolled back: reloading")
            await self.load(store, now)
            self._unconfirmed.clear()
            return
        for entry in earlier:
            del self._unconfirmed[entry]
