"""`watcher replay`: run the current rules over the entries recorded lately and show what
would have alerted, grouped by story — how a rule author tunes a rule before deploying it.

Every entry is matched as the daemon matches it: with its feed's name and language (an entry
of a feed no longer configured keeps its name and has no language), so the rules' feed and
language filters hold as they would. The entries that hit go through a fresh story index in
the order they were first seen, each placed as the daemon placed it then (at its date, the
window reckoned back from when it was seen, the words of every rule that hit left out).
Reads the database read-only and sends nothing.

Memory: entries are streamed from the database and only those that hit are kept, without
their summaries; the story index holds the hitting entries of one story window.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from watcher.config import Settings, compiled_rules
from watcher.match_command import highlighted, hits_json
from watcher.model import FeedDef, Hit
from watcher.rules import Matcher
from watcher.store.history import EntryHistory, StoredEntry
from watcher.stories import StoryIndex, StorySettings, hit_texts
from watcher.story_alerts import story_settings


@dataclass(frozen=True, slots=True)
class ReplayedEntry:
    """An entry that would have alerted (its summary is not kept: hits may be many)."""

    id: int
    feed: str
    title: str
    link: str | None
    published: datetime | None
    first_seen: datetime
    at: datetime  # where it stands in time order (see StoredEntry.at)
    hits: tuple[Hit, ...]


@dataclass(slots=True)
class ReplayedStory:
    """The entries of one story in the order they joined it; the first one leads and
    names the story."""

    id: int
    entries: list[ReplayedEntry]

    @property
    def lead(self) -> ReplayedEntry:
        return self.entries[0]


@dataclass(slots=True)
class Replay:
    stories: list[ReplayedStory] = field(default_factory=list)  # by their lead's time
    scanned: int = 0  # entries matched
    alerting: int = 0  # entries with at least one hit
    # Entries each rule hit, the most first (then in configuration order).
    hits_by_rule: dict[str, int] = field(default_factory=dict)


def find_rule(name: str, rule_names: Sequence[str]) -> str | None:
    """The configured rule called `name`, ignoring case (names are unique ignoring case)."""
    if name in rule_names:
        return name
    folded = name.casefold()
    return next((rule for rule in rule_names if rule.casefold() == folded), None)


def unknown_rule(name: str, rule_names: Sequence[str]) -> str:
    """What to tell someone who asked for a rule the config does not have."""
    message = f"no rule named {name!r} in the config"
    if not rule_names:
        return message + " (it has no rules)"
    folded = {rule.casefold(): rule for rule in rule_names}
    close = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.6)
    if close:
        return message + f"; did you mean {folded[close[0]]!r}?"
    return message + "; the rules are: " + ", ".join(rule_names)


def replay_entries(
    entries: Iterable[StoredEntry],
    matcher: Matcher,
    *,
    feeds: Mapping[str, FeedDef],
    stories: StorySettings,
    rule: str | None = None,
) -> Replay:
    """Match `entries` (in the order they were first seen) and cluster those that hit into
    stories; only the hits of `rule` count if it is given."""
    result = Replay(hits_by_rule={rule: 0} if rule is not None else {})
    index = StoryIndex(stories)
    by_id: dict[int, ReplayedStory] = {}
    for entry in entries:
        result.scanned += 1
        feed = feeds.get(entry.feed)
        hits = matcher.match(
            entry.title,
            entry.summary,
            feed=entry.feed,
            language=feed.language if feed is not None else None,
        )
        # As in the daemon, the words of every rule that hit are no evidence of the story,
        # whichever rule is shown.
        matched = hit_texts(hits)
        if rule is not None:
            hits = [hit for hit in hits if hit.rule == rule]
        if not hits:
            continue
        result.alerting += 1
        for hit in hits:
            result.hits_by_rule[hit.rule] = result.hits_by_rule.get(hit.rule, 0) + 1
        # As in the daemon: in the order entries were first seen, keyed by feed name, the
        # rules' words left out, the index kept to the window before the moment it saw them.
        story = index.place(
            entry.id,
            entry.feed,
            entry.at,
            entry.title,
            entry.summary,
            matched=matched,
            now=entry.first_seen,
        )
        replayed = ReplayedEntry(
            id=entry.id,
            feed=entry.feed,
            title=entry.title,
            link=entry.link,
            published=entry.published,
            first_seen=entry.first_seen,
            at=entry.at,
            hits=tuple(hits),
        )
        if story == entry.id:
            by_id[story] = ReplayedStory(story, [replayed])
            result.stories.append(by_id[story])
        else:
            by_id[story].entries.append(replayed)
    order = {name: position for position, name in enumerate(matcher.rule_names)}
    result.hits_by_rule = dict(
        sorted(result.hits_by_rule.items(), key=lambda item: (-item[1], order.get(item[0], 0)))
    )
    return result


def replay(settings: Settings, *, since: datetime, rule: str | None = None) -> Replay:
    """Replay the entries of the configured database first seen since `since`. Raises
    StoreError if there is no database or it cannot be read."""
    with EntryHistory.open(settings.storage.path) as history:
        entries = history.entries_since(since)
        try:
            return replay_entries(
                entries,
                compiled_rules(settings),
                feeds={feed.name: feed for feed in settings.feeds},
                stories=story_settings(settings.stories),
                rule=rule,
            )
        finally:
            entries.close()  # ends the read transaction even if matching failed


# --- output ------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def to_json(result: Replay) -> str:
    """The stories by their lead's time, each with its entries; spans as in
    `watcher match --json`."""
    return json.dumps(
        [
            {"story": story.id, "entries": [_entry_json(entry) for entry in story.entries]}
            for story in result.stories
        ],
        ensure_ascii=False,
        indent=2,
    )


def _entry_json(entry: ReplayedEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "feed": entry.feed,
        "title": entry.title,
        "link": entry.link,
        "published": _iso(entry.published),
        "first_seen": _iso(entry.first_seen),
        "hits": hits_json(entry.hits),
    }


def _title(entry: ReplayedEntry, mark: Callable[[str], str]) -> str:
    spans = [s for hit in entry.hits for s in hit.spans if s.field == "title"]
    return highlighted(entry.title, spans, mark)


def _rule_names(entry: ReplayedEntry) -> tuple[str, ...]:
    return tuple(hit.rule for hit in entry.hits)


def to_text(result: Replay, mark: Callable[[str], str], *, since: datetime, tz: tzinfo) -> str:
    """Per story: the lead's time, feed and title (matched words marked), the words each
    rule hit, then a line for each other outlet's entry; and a summary."""
    lines: list[str] = []
    for story in result.stories:
        lead = story.lead
        when = lead.at.astimezone(tz)
        lines.append(f"{when:%Y-%m-%d %H:%M}  {lead.feed}  {_title(lead, mark)}")
        if lead.link:
            lines.append(f"   {lead.link}")
        for hit in lead.hits:
            words = ", ".join(dict.fromkeys(f'"{s.text}"' for s in hit.spans))
            lines.append(f"   hit {hit.rule}: {words}")
        for other in story.entries[1:]:
            at = other.at.astimezone(tz)
            shown = f"{at:%H:%M}" if at.date() == when.date() else f"{at:%Y-%m-%d %H:%M}"
            rules = _rule_names(other)
            also = f"   also: {shown}  {other.feed}  {_title(other, mark)}"
            if rules != _rule_names(lead):
                also += f"  (hit {', '.join(rules)})"
            lines.append(also)
        lines.append("")
    lines.append(summary(result, since=since, tz=tz))
    return "\n".join(lines)


def summary(result: Replay, *, since: datetime, tz: tzinfo) -> str:
    by_rule = ", ".join(f"{name} {count}" for name, count in result.hits_by_rule.items())
    stories = len(result.stories)
    return (
        f"{result.scanned} {_plural(result.scanned, 'entry')} scanned (first seen since "
        f"{since.astimezone(tz):%Y-%m-%d %H:%M %Z}): {result.alerting} would alert, "
        f"{stories} {_plural(stories, 'story')}" + (f"; by rule: {by_rule}" if by_rule else "")
    )


def _plural(count: int, word: str) -> str:
    if count == 1:
        return word
    return word[:-1] + "ies" if word.endswith("y") else word + "s"
