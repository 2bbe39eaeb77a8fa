"""PURE: which entries from different feeds report the same story.

An entry's *signature* is the set of its terms: the folded words (`watcher.text`, so the rules
and the clustering see the same words) of its title and the start of its summary, each cut to
its first four letters. Cutting words short is a crude stemmer that serves every script alike:
Russian "миротворцы"/"миротворцев", Georgian "გადასცეს"/"გადაცემის" and English
"request"/"requests" become one term. On the benchmark's two sets (bench/stories.py) it did as
well as pymorphy3's lemmas for Russian words and as character 4-grams, and costs nothing; four
letters did better than five on the Georgian headlines (whose words carry long suffixes) and
as well on the English and Russian pairs. The words it confuses ("police"/"policy") are common
ones, which weigh little.

Two entries are compared by the cosine of their terms, each weighted by its rarity (inverse
document frequency) among the entries the index holds, less `number_penalty` when both titles
carry numbers and share none of them: "5.1-magnitude earthquake strikes Shamakhi" and "4.3
magnitude earthquake recorded in Lori", or "1 billion cubic metres" and "13 billion", are two
events however alike the words (only titles: a summary's dates and times are written
differently by every outlet). Two entries whose titles open with the same name-sized
attribution ("Peskov: ...", "ლევან მახაშვილი: ...") and that share no other term are two
statements of one speaker, not one event: their similarity is 0. An opening of three words or
more is as often an event ("Взрыв в порту Баку: есть пострадавшие") and counts as any other
words do. Those are the window's entries, and in
the daemon the entries that alerted, so the words the rules look for weigh little and the
names, places and numbers that tell one event from another weigh much. The index counts the
frequencies again whenever a tenth of its entries have come or gone since it last did. From
the similarity a penalty is taken that grows with the time between the two entries: outlets
report one event within hours, while the developments of a story (a decision and the reaction
to it, preliminary and final results) come a day or more apart. The penalty is `time_penalty`
at `window` apart, proportionally less below; entries further apart never join.

A new entry joins the story it scores best against, on average over the story's entries of the
window, if that average reaches `threshold` (average linkage: one entry that happens to share
words with an unrelated story's latest entry does not chain the two together), and if that
story has no entry from the same feed yet: a story holds at most one entry per feed. A feed
that repeats itself is caught by entry identity (watcher.identity), and an outlet's second
item about an event is a development or another angle that it chose to publish as a separate
item; it also keeps a feed's boilerplate (a summary every item shares) from joining the feed's
unrelated items. A story is named by the id of its first entry.

Everything is deterministic: weights are summed with `math.fsum` (exact, so the order in which
a set yields its terms does not matter) and ties go to the older story.
"""

from __future__ import annotations

import heapq
import math
import re
import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.model import Hit
from watcher.text import html_to_text, words

__all__ = ["FeedKey", "Signature", "StoryIndex", "StorySettings", "hit_texts", "signature"]

STEM_LENGTH = 4
# Only the lead of a summary counts: some feeds put the whole article in the summary, which
# would otherwise outweigh the title and make long entries look unlike everything else.
SUMMARY_WORDS = 60

FeedKey = int | str  # the feed's id in the store, or its name

# A digit group separator: "5 000", "5,000" and "5.000" are 5000; "5,1" is the decimal 5.1.
_DIGIT_GROUPING = re.compile(r"(?<=\d)[ \u00a0\u202f,.](?=\d{3}(?!\d))")
# Not the digits of a word like "G20" or "Su35"; a suffix may follow ("5th", "100-მდე").
_NUMBER = re.compile(r"(?<![^\W_])\d+(?:[.,]\d+)?")
# A title's attribution: a name of one or two words and a colon that a space follows, at its
# start ("Peskov:", "CEC:", "ფოთის მერი:"); not a time ("03:14") or a colon deeper in the
# headline. Three words or more before the colon are as often what happened ("Землетрясение в
# Шамахы: ..."), which two reports of one event share.
_ATTRIBUTION = re.compile(r"\s*([^:\n]{1,60}?)\s*:\s")
ATTRIBUTION_WORDS = 2
_NONE: frozenset[str] = frozenset()  # one object for the many entries without attribution


@dataclass(frozen=True, slots=True)
class Signature:
    """The terms of an entry (see the module doc). Empty for an entry without words: such an
    entry is similar to nothing, itself included, and always starts a story of its own.
    `numbers` are the numbers of its title, written alike ("5,1" and "5.1", "03" and "3");
    `attribution` the terms of the title's opening "Speaker:", if it has one."""

    terms: frozenset[str]
    numbers: frozenset[str] = frozenset()
    attribution: frozenset[str] = frozenset()


def _numbers_differ(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether both titles carry numbers and none of them is the same."""
    return bool(a and b and a.isdisjoint(b))


def _only_attribution_shared(
    shared: Collection[str],
    a: Collection[str],
    a_attribution: Collection[str],
    b: Collection[str],
    b_attribution: Collection[str],
) -> bool:
    """Whether entries with the terms `a` and `b` share only terms of the attribution both
    titles open with: what one speaker said twice, about two events as often as one. Not
    when an entry has no term besides its attribution (its other words were a rule's):
    then nothing says what it is about."""
    return (
        len(a) > len(a_attribution) > 0
        and len(b) > len(b_attribution) > 0
        and all(term in a_attribution and term in b_attribution for term in shared)
    )


def _terms(text: str, limit: int | None = None) -> list[str]:
    if "<" in text or "&" in text:
        text = html_to_text(text)
    found = words(text)
    if limit is not None:
        found = found[:limit]
    # Interned: the index holds each term once, however many entries have it.
    return [sys.intern(word.folded[:STEM_LENGTH]) for word in found]


def _numbers(title: str) -> frozenset[str]:
    if "<" in title or "&" in title:
        title = html_to_text(title)
    title = _DIGIT_GROUPING.sub("", title)
    return frozenset(
        sys.intern(found.replace(",", ".").lstrip("0") or "0") for found in _NUMBER.findall(title)
    )


def _attribution(title: str) -> list[str]:
    if "<" in title or "&" in title:
        title = html_to_text(title)
    found = _ATTRIBUTION.match(title)
    if found is None:
        return []
    terms = _terms(found.group(1))
    return terms if len(terms) <= ATTRIBUTION_WORDS else []


def hit_texts(hits: Iterable[Hit]) -> list[str]:
    """The texts rules matched, for `signature(..., ignore=...)`."""
    return [span.text for hit in hits for span in hit.spans]


def signature(title: str, summary: str, *, ignore: Iterable[str] = ()) -> Signature:
    """The signature of an entry from its title and summary (displayed text; markup and
    entities left in by a feed are decoded first, so they make no difference).

    `ignore` holds texts whose words are left out: the words a rule matched. Every entry a
    rule alerts on has them, so they say nothing about which event it reports; counted,
    two short headlines of different events that share only the rule's words would be one
    story (the weights cannot discount them while the index holds few entries)."""
    terms = frozenset(_terms(title) + _terms(summary, SUMMARY_WORDS))
    ignored = {term for text in ignore for term in _terms(text)}
    if ignored:
        terms -= ignored
    attribution = _attribution(title)
    return Signature(terms, _numbers(title), terms.intersection(attribution) or _NONE)


@dataclass(frozen=True, slots=True)
class StorySettings:
    """When two entries are the same story. The defaults come from bench/stories.py."""

    threshold: float = 0.16
    window: timedelta = timedelta(hours=48)  # entries further apart never join
    time_penalty: float = 0.3  # subtracted from the similarity of entries `window` apart
    number_penalty: float = 0.15  # subtracted when both titles have numbers, none shared

    def __post_init__(self) -> None:
        if self.window <= timedelta(0):
            raise ValueError(f"the story window must be positive, not {self.window}")

    def score(self, similarity: float, apart: timedelta) -> float:
        """The similarity of two entries less the penalty for the time between them."""
        share = min(abs(apart) / self.window, 1.0)
        return similarity - self.time_penalty * share


@dataclass(slots=True)
class _Item:
    feed: FeedKey
    published: datetime
    at: float  # `published` as a POSIX timestamp: the candidate search's arithmetic
    terms: tuple[str, ...]  # a tuple takes a sixth of a frozenset's memory
    numbers: frozenset[str]  # of the title
    attribution: tuple[str, ...]  # of the title: at most two terms
    story: int
    norm: float = 0.0  # |terms| under the index's weights


@dataclass(slots=True)
class _Story:
    members: set[int] = field(default_factory=set)
    feeds: set[FeedKey] = field(default_factory=set)


class StoryIndex:
    """The entries of the last `window`, grouped into stories, with an inverted index from
    term to entries. Held in memory; rebuilt at start with `restore` from what the store
    recorded, so a restart decides nothing anew.

    Terms are weighted by their document frequency among the entries held, as counted when
    the weights were last brought up to date: whenever a tenth of the entries have come or
    gone since (so every add while the index is small). Between updates each entry's norm
    is kept, which makes a comparison cost only the terms two entries share."""

    # Weights as if the index held this many more entries, none with the term: a nearly
    # empty index (just after the first start) would otherwise rate every term common.
    _PRIOR = 10
    _UPDATE_SHARE = 0.1

    def __init__(self, settings: StorySettings | None = None) -> None:
        self.settings = settings or StorySettings()
        self._items: dict[int, _Item] = {}
        self._postings: dict[str, set[int]] = {}
        self._stories: dict[int, _Story] = {}
        self._by_time: list[tuple[datetime, int]] = []  # a heap, for expire()
        self._squares: dict[str, float] = {}  # each term's weight², as last counted
        self._unseen = 0.0  # the weight² of a term no entry had then
        self._changes = 0  # entries added or forgotten since the weights were counted
        self._counted = False

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._items

    def holds_story(self, story: int) -> bool:
        """Whether the index holds an entry of `story` (of the window, once expired)."""
        return story in self._stories

    def story_of(self, entry_id: int) -> int:
        """The story of an entry the index holds (KeyError if it holds no such entry)."""
        return self._items[entry_id].story

    def terms_of(self, entry_id: int) -> frozenset[str]:
        """The terms an entry the index holds was placed with (KeyError if none)."""
        return frozenset(self._items[entry_id].terms)

    def stories(self) -> dict[int, frozenset[int]]:
        """Every story the index holds an entry of, with the entries it holds."""
        return {story: frozenset(group.members) for story, group in self._stories.items()}

    def weight(self, term: str) -> float:
        """How much a term counts: the rarer among the entries held, the more."""
        self._update_weights()
        return math.sqrt(self._squares.get(term, self._unseen))

    def similarity(self, a: Signature, b: Signature) -> float:
        """Cosine similarity in [0, 1] of two signatures, each term weighted by its rarity
        among the entries the index holds, less the number penalty if their titles' numbers
        differ (so it may be negative); 0 (less that penalty) when they share nothing but
        their titles' attribution. Symmetric; 1.0 for equal non-empty ones."""
        self._update_weights()
        return self._similarity(a, self._norm(a.terms), b.terms, b.numbers, b.attribution)

    def add(self, entry_id: int, feed: FeedKey, published: datetime, sig: Signature) -> int | None:
        """Record a new entry; return the story it joined, or None if it starts a new one
        (whose id is `entry_id`). `published` must be timezone-aware, like every time given
        to the index."""
        if entry_id in self._items or entry_id in self._stories:
            raise ValueError(f"entry {entry_id} is already in the story index (or names a story)")
        self._update_weights()
        best = self._best_story(feed, published, sig)
        self._insert(entry_id, feed, published, sig, entry_id if best is None else best)
        return best

    def place(
        self,
        entry_id: int,
        feed: FeedKey,
        when: datetime,
        title: str,
        summary: str,
        *,
        matched: Iterable[str] = (),
        now: datetime | None = None,
    ) -> int:
        """Forget what is a window older than `now` (default: `when`), then add the entry
        with the words its rules `matched` left out of its signature (`signature`); return
        its story: the one it joined, or its own id."""
        self.expire((now or when) - self.settings.window)
        joined = self.add(entry_id, feed, when, signature(title, summary, ignore=matched))
        return entry_id if joined is None else joined

    def restore(
        self, entry_id: int, feed: FeedKey, published: datetime, sig: Signature, story: int
    ) -> None:
        """Put back an entry with the story it was given before (at start, from the store),
        in any order. The story's first entry need not be held any more."""
        if entry_id in self._items:
            raise ValueError(f"entry {entry_id} is already in the story index")
        self._insert(entry_id, feed, published, sig, story)

    def expire(self, before: datetime) -> int:
        """Forget the entries published before `before`; return how many. A story lives on
        while the index holds any of its entries, and takes again an entry from the feeds
        of those it forgot (the index restored after a restart, from the entries of the
        window, would not know of them either)."""
        removed = 0
        while self._by_time and self._by_time[0][0] < before:
            _, entry_id = heapq.heappop(self._by_time)
            item = self._items.pop(entry_id)
            for term in item.terms:
                holders = self._postings[term]
                holders.discard(entry_id)
                if not holders:
                    del self._postings[term]
            group = self._stories[item.story]
            group.members.discard(entry_id)
            if group.members:
                group.feeds = {self._items[member].feed for member in group.members}
            else:
                del self._stories[item.story]
            removed += 1
        self._changes += removed
        return removed

    # --- internals ---------------------------------------------------------------------------

    def _update_weights(self) -> None:
        if self._counted and self._changes <= self._UPDATE_SHARE * len(self._items):
            return
        scale = len(self._items) + self._PRIOR + 1
        self._squares = {
            term: math.log(scale / (len(holders) + 1)) ** 2
            for term, holders in self._postings.items()
        }
        self._unseen = math.log(scale) ** 2
        for item in self._items.values():
            item.norm = self._norm(item.terms)
        self._changes = 0
        self._counted = True

    def _norm(self, terms: Collection[str]) -> float:
        squares, unseen = self._squares, self._unseen
        return math.sqrt(math.fsum(squares.get(term, unseen) for term in terms))

    def _similarity(
        self,
        sig: Signature,
        norm: float,
        terms: Collection[str],
        numbers: frozenset[str],
        attribution: Collection[str],
        other_norm: float | None = None,
    ) -> float:
        """The similarity of `sig` (whose norm is `norm`) and another entry's distinct
        `terms`, title `numbers` and `attribution` (see `similarity`)."""
        shared = sig.terms.intersection(terms)
        if not shared:
            cosine = 0.0
        elif len(shared) == len(sig.terms) == len(terms):
            cosine = 1.0
        elif _only_attribution_shared(shared, sig.terms, sig.attribution, terms, attribution):
            cosine = 0.0
        else:
            squares, unseen = self._squares, self._unseen
            dot = math.fsum(squares.get(term, unseen) for term in shared)
            if other_norm is None:
                other_norm = self._norm(terms)
            cosine = min(1.0, dot / (norm * other_norm))
        if _numbers_differ(sig.numbers, numbers):
            return cosine - self.settings.number_penalty
        return cosine

    def _insert(
        self, entry_id: int, feed: FeedKey, published: datetime, sig: Signature, story: int
    ) -> None:
        terms = tuple(sig.terms)
        self._items[entry_id] = _Item(
            feed,
            published,
            published.timestamp(),
            terms,
            sig.numbers,
            tuple(sig.attribution),
            story,
            self._norm(terms),
        )
        for term in sig.terms:
            self._postings.setdefault(term, set()).add(entry_id)
        group = self._stories.setdefault(story, _Story())
        group.members.add(entry_id)
        group.feeds.add(feed)
        heapq.heappush(self._by_time, (published, entry_id))
        self._changes += 1

    def _best_story(self, feed: FeedKey, published: datetime, sig: Signature) -> int | None:
        if not sig.terms:
            return None
        settings = self.settings
        norm = self._norm(sig.terms)
        best: tuple[float, int] | None = None  # (score, -story): the older story wins ties
        seen: set[int] = set()
        # A story scores at least the threshold on average only if one of its entries does:
        # the candidates lead to every story that may.
        for candidate in self._candidates(sig, norm, published):
            story = self._items[candidate].story
            group = self._stories[story]
            if story in seen or feed in group.feeds:
                continue
            seen.add(story)
            scores = []
            for member in group.members:  # fsum is exact: the order does not matter
                item = self._items[member]
                apart = published - item.published
                if abs(apart) <= settings.window:
                    similarity = self._similarity(
                        sig, norm, item.terms, item.numbers, item.attribution, item.norm
                    )
                    scores.append(settings.score(similarity, apart))
            if not scores:
                # The candidate search allows a millisecond for rounding: a story whose
                # entries are all just past the window has nothing to be scored against.
                continue
            score = math.fsum(scores) / len(scores)
            if score >= settings.threshold and (best is None or (score, -story) > best):
                best = (score, -story)
        return None if best is None else -best[1]

    def _candidates(self, sig: Signature, norm: float, published: datetime) -> list[int]:
        """The entries of the window that may score at least the threshold against `sig`,
        in id order.

        With w(x) the sum of squared weights of a set of terms, the cosine of a and b is
        w(a ∩ b) / (|a| |b|), and w(a ∩ b) ≤ |b|², so the cosine is at most √w(a ∩ b) / |a|
        and reaches the threshold t only if w(a ∩ b) ≥ t² |a|². So the most common terms of
        `sig`, up to a weight s < t² |a|², need not be looked up: an entry sharing only those
        cannot reach t (prefix filtering). An entry b found through the others, sharing a
        weight f with `sig` among them, may score t + its time penalty only if f + s reaches
        that times |a| |b|."""
        settings = self.settings
        squares, unseen = self._squares, self._unseen
        weighted = sorted((squares.get(term, unseen), term) for term in sig.terms)
        needed = settings.threshold**2 * norm**2
        skipped = 0.0
        shared: dict[int, float] = {}
        add_to = shared.get
        postings = self._postings
        for square, term in weighted:
            if skipped + square < needed:
                skipped += square
                continue
            for holder in postings.get(term, ()):
                shared[holder] = add_to(holder, 0.0) + square
        # These sums are rounded in an order that depends on set iteration: allow for it.
        # Times as timestamps round too: a millisecond more is allowed for, in both tests.
        base = skipped + 1e-9 * norm**2
        window_s = settings.window.total_seconds()
        threshold, penalty = settings.threshold, settings.time_penalty
        at = published.timestamp()
        items = self._items
        found = []
        for holder, weight in shared.items():
            item = items[holder]
            apart = abs(at - item.at) - 1e-3
            if apart > window_s:
                continue
            least = threshold + penalty * (apart / window_s if apart > 0 else 0.0)
            if weight + base >= least * norm * item.norm:
                found.append(holder)
        found.sort()
        return found
